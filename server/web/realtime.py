"""The Socket.IO server object and the green/native bridge that delivers worker messages."""
from __future__ import annotations

import logging

from flask_socketio import SocketIO

log = logging.getLogger(__name__)

# Same-origin only: cors_allowed_origins stays at its default (never "*"), so another web page
# cannot drive the studio from a person's browser.
socketio = SocketIO()


def start_delivery(channel, runtime, stopping) -> None:
    """Drain the worker's channel on the socket side and emit each message.

    Under eventlet this is a green thread whose blocking wait happens in eventlet's thread pool,
    so the hub stays free; under threading it is a plain thread.
    """

    def deliver() -> None:
        while not stopping.is_set():
            for message in runtime.wait_off_loop(channel.take, 0.5):
                try:
                    # A broadcast (model_status) is this process's own news: in a cluster it stays
                    # off the message queue, so other web processes' tabs do not get it twice.
                    socketio.emit(message.event, message.payload, to=message.to, ignore_queue=message.to is None)
                except Exception:  # a client that vanished mid-emit must not stop delivery
                    log.exception("Could not deliver %s", message.event)

    socketio.start_background_task(deliver)
