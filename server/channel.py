"""The hand-off of socket messages from the worker thread to the socket loop.

Preview frames are latest-wins: while the socket side has not picked a job's frame up yet, a
newer frame of the same job replaces it, so a slow consumer sees fewer, fresher frames and the
worker never waits. Everything else (plans, results, errors, cancellations) is delivered in
order and never dropped.

`deliver` is the consumer's side: the embedded studio's socket loop and a worker process emit
through it alike, so both measure preview latency the same way.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

log = logging.getLogger(__name__)


@dataclass
class Message:
    event: str
    payload: Any
    to: str | None  # a client sid, or None to broadcast
    latest_key: str | None = None  # messages sharing a key replace each other until taken
    created: float = field(default_factory=time.monotonic)  # when it was put: preview latency starts here


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


def deliver(messages: Iterable[Message], emit: Callable[..., Any], metrics=None) -> None:
    """Hand each message to `emit(event, payload, to=...)` in order. A job_step's latency, from
    its put to the moment emit gets it, goes to `metrics` (a WorkerMetrics) once emit has taken it
    without error; a message emit fails on (a client gone mid-emit) is logged and the rest go on."""
    for message in messages:
        handed_at = time.monotonic()
        try:
            emit(message.event, message.payload, to=message.to)
        except Exception:  # noqa: BLE001 - one vanished client must not stop delivery to the others
            log.exception("Could not deliver %s", message.event)
            continue
        if metrics is not None and message.event == "job_step":
            metrics.preview_delivered(handed_at - message.created)
