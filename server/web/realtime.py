"""The Socket.IO server object and the green/native bridge that delivers worker messages."""
from __future__ import annotations

from flask_socketio import SocketIO

from ..channel import deliver

# Same-origin only: cors_allowed_origins stays at its default (never "*"), so another web page
# cannot drive the studio from a person's browser.
socketio = SocketIO()


def _emit(event: str, payload, to: str | None = None) -> None:
    # A broadcast (model_status) is this process's own news: in a cluster it stays off the message
    # queue, so other web processes' tabs do not get it twice.
    socketio.emit(event, payload, to=to, ignore_queue=to is None)


def start_delivery(channel, runtime, stopping, metrics=None) -> None:
    """Drain the worker's channel on the socket side and emit each message; each job_step's
    latency goes to `metrics` (the embedded worker's WorkerMetrics).

    Under eventlet this is a green thread whose blocking wait happens in eventlet's thread pool,
    so the hub stays free; under threading it is a plain thread.
    """

    def deliver_until_stopped() -> None:
        while not stopping.is_set():
            deliver(runtime.wait_off_loop(channel.take, 0.5), _emit, metrics)

    socketio.start_background_task(deliver_until_stopped)
