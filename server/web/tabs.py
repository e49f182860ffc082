"""Which browser tab each socket belongs to, and how many sockets each address holds.

Jobs belong to a tab, not to a socket: the page sends a random per-tab `client_id` when it
connects (`auth: {client_id}`), so a reconnect keeps its jobs, their events reach it in the tab's
room, and only that tab may cancel or full-decode them. A client that sends no id (a script) is
its own tab. Lives on the socket side only; every call is quick bookkeeping.
"""
from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass

CLIENT_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,64}", re.ASCII)  # fullmatch


class ConnectionRefused(Exception):
    """A socket the studio will not take; the message is shown to the person."""


@dataclass(frozen=True)
class Socket:
    tab: str  # the room the tab's job events go to
    address: str


class TabRegistry:
    def __init__(self, max_per_address: int):
        self.max_per_address = max_per_address
        self._lock = threading.Lock()
        self._sockets: dict[str, Socket] = {}
        self._per_address: Counter = Counter()

    def connect(self, sid: str, auth, address: str) -> Socket:
        client_id = auth.get("client_id") if isinstance(auth, dict) else None
        if client_id is not None and not (isinstance(client_id, str) and CLIENT_ID_PATTERN.fullmatch(client_id)):
            raise ConnectionRefused("client_id must be 16-64 letters, digits, '-' or '_'.")
        with self._lock:
            if self._per_address[address] >= self.max_per_address:
                raise ConnectionRefused(
                    f"Too many open connections from {address} (the limit is {self.max_per_address}, "
                    "--max-connections-per-address). Close some studio tabs and reload.")
            socket = Socket(f"tab:{client_id}" if client_id else sid, address)
            self._sockets[sid] = socket
            self._per_address[address] += 1
        return socket

    def disconnect(self, sid: str) -> Socket | None:
        with self._lock:
            socket = self._sockets.pop(sid, None)
            if socket is not None:
                self._per_address[socket.address] -= 1
                if self._per_address[socket.address] <= 0:
                    del self._per_address[socket.address]
        return socket

    def tab_of(self, sid: str) -> str:
        with self._lock:
            socket = self._sockets.get(sid)
        return socket.tab if socket else sid

    def is_open(self, tab: str) -> bool:
        """Whether any socket of the tab is connected (a reconnect may have come in)."""
        with self._lock:
            return any(s.tab == tab for s in self._sockets.values())
