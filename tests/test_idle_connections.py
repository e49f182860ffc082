"""Idle half-open connections from one address cannot lock the studio out (eventlet, real sockets).

Before the per-address cap, about 1,100 connections that never sent a request filled eventlet's
pool of 1,024 green threads and /api/health stopped answering for everyone.
"""
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.test_real_server import free_port

ROOT = Path(__file__).resolve().parent.parent
FLOOD = 1100  # past eventlet's pool of 1,024


@pytest.fixture
def eventlet_server(tmp_path):
    port = free_port()
    log = open(tmp_path / "server.log", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "--port", str(port), "--outputs", str(tmp_path / "outputs"),
         "--device", "cpu", "--max-connections-per-address", "4"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    try:
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"server did not start; its output:\n{(tmp_path / 'server.log').read_text()}")
            try:
                requests.get(url + "/api/health", timeout=2)
                break
            except (requests.ConnectionError, requests.Timeout):
                time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_a_flood_of_idle_connections_from_one_address_leaves_the_studio_serving(eventlet_server):
    port = eventlet_server
    idle = []
    try:
        for _ in range(FLOOD):
            conn = socket.socket()
            conn.bind(("127.0.0.2", 0))  # another loopback address: the flooding peer
            conn.settimeout(10)
            conn.connect(("127.0.0.1", port))
            idle.append(conn)
        # Everyone else (here 127.0.0.1) is still served, however many the flood holds open.
        answer = requests.get(f"http://127.0.0.1:{port}/api/health", timeout=30)
        assert answer.status_code == 200
        # The server closed the flood's connections past the cap (4 Socket.IO x 4 TCP = 16).
        closed = 0
        for conn in idle[16:]:
            conn.settimeout(10)
            try:
                closed += conn.recv(1) == b""
            except (ConnectionResetError, socket.timeout):
                closed += 1
        assert closed >= FLOOD - 16 - 50, closed  # a few may still be queued in the kernel's backlog
    finally:
        for conn in idle:
            conn.close()
