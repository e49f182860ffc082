"""Where the socket loop and the native worker threads meet.

Under eventlet the socket side is green threads on one hub, and torch must never run there
(GUIDE §3: a job in a green task blocked /api/health for the whole job). So the worker is a real
OS thread, the primitives it shares with the socket side are the unpatched originals, and the
socket side waits on them through eventlet's thread pool so the hub keeps serving.
"""
from __future__ import annotations

from typing import Callable


class Runtime:
    def __init__(self, async_mode: str):
        self.async_mode = async_mode
        if async_mode == "eventlet":
            from eventlet import patcher, tpool

            self._threading = patcher.original("threading")
            self._queue = patcher.original("queue")
            self._tpool = tpool
        else:
            import queue
            import threading

            self._threading, self._queue, self._tpool = threading, queue, None

    # Native primitives, safe to share between the worker and the socket side.
    def lock(self):
        return self._threading.Lock()

    def event(self):
        return self._threading.Event()

    def condition(self):
        return self._threading.Condition(self._threading.Lock())

    def queue(self):
        return self._queue.Queue()

    @property
    def queue_empty(self) -> type[Exception]:
        return self._queue.Empty

    def start_native_thread(self, target: Callable[[], None], name: str):
        thread = self._threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        return thread

    def wait_off_loop(self, blocking_call: Callable, *args):
        """Run a blocking call without stalling the socket loop."""
        if self._tpool is not None:
            return self._tpool.execute(blocking_call, *args)
        return blocking_call(*args)
