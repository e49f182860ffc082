"""The hand-off of socket messages from the worker thread to the socket loop.

Preview frames are latest-wins: while the socket side has not picked a job's frame up yet, a
newer frame of the same job replaces it, so a slow consumer sees fewer, fresher frames and the
worker never waits. Everything else (plans, results, errors, cancellations) is delivered in
order and never dropped.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Message:
    event: str
    payload: Any
    to: str | None  # a client sid, or None to broadcast
    latest_key: str | None = None  # messages sharing a key replace each other until taken


class MessageChannel:
    def __init__(self, runtime):
        self._ready = runtime.condition()
        self._pending: list[Message] = []
        self.dropped = 0  # stale frames replaced before delivery, for the benchmark and tests

    def put(self, event: str, payload: Any, to: str | None = None, latest_key: str | None = None) -> None:
        message = Message(event, payload, to, latest_key)
        with self._ready:
            if latest_key is not None:
                for i, waiting in enumerate(self._pending):
                    if waiting.latest_key == latest_key:
                        del self._pending[i]
                        self.dropped += 1
                        break
            self._pending.append(message)
            self._ready.notify()

    def take(self, timeout: float) -> list[Message]:
        """Everything waiting, in order; blocks up to `timeout` seconds when nothing is."""
        with self._ready:
            if not self._pending:
                self._ready.wait(timeout)
            taken, self._pending = self._pending, []
        return taken
