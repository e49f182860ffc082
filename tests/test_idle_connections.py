"""Idle half-open connections from one address cannot lock the studio out (eventlet, real sockets).

Before the per-address cap, about 1,100 connections that never sent a request filled eventlet's
pool of 1,024 green threads and /api/health stopped answering for everyone.
"""
import socket

import requests

from tests.helpers import StudioProcess

FLOOD = 1100  # past eventlet's pool of 1,024
CAP = 4 * 4  # --max-connections-per-address 4, times the 4 TCP connections a tab may hold


def test_a_flood_of_idle_connections_from_one_address_leaves_the_studio_serving(tmp_path):
    idle = []
    with StudioProcess(tmp_path / "outputs", tmp_path / "server.log", "--max-connections-per-address", 4) as studio:
        try:
            for _ in range(FLOOD):
                conn = socket.socket()
                conn.bind(("127.0.0.2", 0))  # another loopback address: the flooding peer
                conn.settimeout(10)
                conn.connect(("127.0.0.1", studio.port))
                idle.append(conn)
            # Everyone else (here 127.0.0.1) is still served, however many the flood holds open.
            assert requests.get(studio.url + "/api/health", timeout=30).status_code == 200
            # The server closed the flood's connections past the cap.
            closed = 0
            for conn in idle[CAP:]:
                try:
                    closed += conn.recv(1) == b""
                except ConnectionResetError:
                    closed += 1
                except socket.timeout:
                    pass  # still open: not closed by the server
            assert closed >= FLOOD - CAP - 50, closed  # a few may still wait in the kernel's backlog
        finally:
            for conn in idle:
                conn.close()
