"""The eventlet listener, with limits on what one remote address can hold open.

eventlet's WSGI server gives every accepted connection a green thread from a pool of 1,024 and,
by default, waits for its request line forever: about 1,100 idle half-open connections were enough
to lock /api/health out. So idle connections are closed after IDLE_TIMEOUT_S (eventlet's
`keepalive` timeout, which covers only the wait for a request, not an open websocket), and one
address may hold at most `per_address` connections; the ones past that are closed at accept.
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict

log = logging.getLogger(__name__)

IDLE_TIMEOUT_S = 20
# A browser tab holds a websocket plus up to six keep-alive HTTP connections.
TCP_PER_SOCKETIO_CONNECTION = 4


class CappedListener:
    """A listening socket whose accept() drops connections past a per-address cap."""

    def __init__(self, sock, per_address: int):
        self._sock = sock
        self.per_address = per_address
        self._open: dict[str, list] = defaultdict(list)
        self._last_warned: dict[str, float] = {}

    def accept(self):
        while True:
            conn, addr = self._sock.accept()
            host = addr[0] if isinstance(addr, tuple) else str(addr)
            alive = [c for c in self._open[host] if c.fileno() != -1]  # closed sockets report -1
            if len(alive) < self.per_address:
                alive.append(conn)
                self._open[host] = alive
                return conn, addr
            self._open[host] = alive
            conn.close()
            now = time.monotonic()
            if now - self._last_warned.get(host, -60.0) >= 60:  # a flood must not flood the log too
                self._last_warned[host] = now
                log.warning("Refusing connections from %s past %d open ones (--max-connections-per-address).",
                            host, self.per_address)

    def __getattr__(self, name):
        return getattr(self._sock, name)


def serve_eventlet(app, host: str, port: int, max_socketio_per_address: int) -> None:
    import eventlet
    import eventlet.green.socket
    import eventlet.wsgi

    family, _, _, _, address = eventlet.green.socket.getaddrinfo(host, port)[0]
    listener = CappedListener(eventlet.listen(address, family),
                              max_socketio_per_address * TCP_PER_SOCKETIO_CONNECTION)
    eventlet.wsgi.server(listener, app, log_output=False, keepalive=IDLE_TIMEOUT_S)
