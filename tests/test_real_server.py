"""The studio as a person starts it (`python -m server`), in both async modes, over real sockets."""
import io
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import socketio
from PIL import Image

from tests.helpers import png_bytes, sketch

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(params=["eventlet", "threading"])
def server(request, tmp_path):
    port = free_port()
    outputs = tmp_path / "outputs"
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "--port", str(port), "--outputs", str(outputs), "--device", "cpu",
         "--async-mode", request.param],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    try:
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"server did not become ready; its output:\n{proc.stdout.read()}")
            try:
                if requests.get(url + "/api/health", timeout=2).json()["status"] == "ready":
                    break
            except (requests.ConnectionError, requests.Timeout, ValueError):
                pass
            time.sleep(0.2)
        yield url, outputs, request.param
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


class Recorder:
    """A python-socketio client that keeps every contract event it receives."""

    def __init__(self, url, **connect_kwargs):
        self.sio = socketio.Client(reconnection=False)
        self.events = []
        self.ended = threading.Event()
        for name in ("job_plan", "job_step", "job_done", "job_cancelled", "job_error", "model_status"):
            self.sio.on(name, self._keeper(name))
        self.sio.connect(url, transports=["websocket"], **connect_kwargs)

    def _keeper(self, name):
        def keep(payload):
            self.events.append((name, payload))
            if name in ("job_done", "job_cancelled", "job_error"):
                self.ended.set()
        return keep

    def run(self, settings, timeout=120):
        self.ended.clear()
        ack = self.sio.call("generate", settings, timeout=10)
        assert "job_id" in ack, ack
        assert self.ended.wait(timeout), "job did not end"
        return ack["job_id"], [(n, p) for n, p in self.events if isinstance(p, dict) and p.get("job_id") == ack["job_id"]]


def test_seed_step_counts_and_a_reproducible_png(server):
    url, outputs, _ = server
    response = requests.post(url + "/api/uploads", files={"image": ("s.png", png_bytes(sketch(seed=4)), "image/png")})
    assert response.status_code == 201
    settings = {"prompt": "fire", "init_image": response.json()["id"], "steps": 10, "strength": 0.7, "seed": 1592514025}
    client = Recorder(url)
    try:
        _, events = client.run(settings)
        _, again = client.run(settings)
    finally:
        client.sio.disconnect()
    plan = events[0][1]
    assert (plan["skipped"], plan["taken"]) == (3, 7)
    assert [p["index"] for n, p in events if n == "job_step"] == list(range(-1, 7))
    assert isinstance(events[1][1]["image"], bytes)
    first, second = events[-1][1], again[-1][1]
    assert first["name"] != second["name"]
    images = [np.asarray(Image.open(io.BytesIO(requests.get(url + d["url"]).content))) for d in (first, second)]
    assert np.array_equal(images[0], images[1])
    assert sorted(p.name for p in outputs.glob("*.png")) == sorted([first["name"], second["name"]])


def test_health_answers_while_a_job_runs(server):
    url, _, mode = server
    client = Recorder(url)
    answered, running = [], threading.Event()

    def poll():
        while not client.ended.is_set():
            if running.is_set():
                started = time.perf_counter()
                try:
                    status = requests.get(url + "/api/health", timeout=10).status_code
                except requests.RequestException as exc:
                    status = repr(exc)
                answered.append((time.perf_counter() - started, status))
            time.sleep(0.02)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        client.sio.on("job_plan", lambda p: (client.events.append(("job_plan", p)), running.set()))
        _, events = client.run({"prompt": "hill", "steps": 60, "seed": 1, "width": 256, "height": 256})
    finally:
        poller.join()
        client.sio.disconnect()
    assert events[-1][0] == "job_done"
    # Health kept answering during the job: the worker is a native thread, not on the socket loop.
    assert len(answered) >= 5, answered
    assert {status for _, status in answered} == {200}, [s for _, s in answered if s != 200]
    worst = max(t for t, _ in answered)
    print(f"{mode}: {len(answered)} health answers during the job, slowest {worst * 1000:.1f} ms")


def test_other_origins_cannot_open_a_socket(server):
    url, _, _ = server
    with pytest.raises(socketio.exceptions.ConnectionError):
        Recorder(url, headers={"Origin": "http://evil.example"})
    # The page's own origin is accepted (websocket-client sends the server's origin by default).
    same = Recorder(url)
    same.sio.disconnect()
