"""Test helpers: images a person might upload, and waiting on background work."""
from __future__ import annotations

import io
import time

import numpy as np
from PIL import Image


def sketch(width=128, height=128, seed=0, mode="RGB") -> Image.Image:
    """A flat-colour 'sketch': sky, ground and a disc, like a person would draw."""
    rng = np.random.default_rng(seed)
    arr = np.zeros((height, width, 3), np.uint8)
    arr[: height // 2] = rng.integers(0, 255, 3)
    arr[height // 2 :] = rng.integers(0, 255, 3)
    yy, xx = np.mgrid[0:height, 0:width]
    cx, cy, r = rng.integers(width // 4, 3 * width // 4), rng.integers(height // 4, 3 * height // 4), width // 6
    arr[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.integers(0, 255, 3)
    return Image.fromarray(arr, "RGB").convert(mode)


def png_bytes(image: Image.Image, fmt="PNG", **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def wait_until(predicate, timeout=30.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def collect_events(socket_client, until, timeout=60.0):
    """Socket.IO events (name, payload) received by a test client until `until(events)` holds."""
    events = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events += [(m["name"], m["args"][0] if m["args"] else None) for m in socket_client.get_received()]
        if until(events):
            return events
        time.sleep(0.02)
    raise AssertionError(f"timed out; got {[name for name, _ in events]}")


def job_ended(job_id):
    """`until` predicate: the job's terminal event has arrived."""
    terminal = {"job_done", "job_cancelled", "job_error"}
    return lambda events: any(n in terminal and p.get("job_id") == job_id for n, p in events)


def upload(client, image, name="sketch.png"):
    response = client.post("/api/uploads", data={"image": (io.BytesIO(png_bytes(image)), name)},
                           content_type="multipart/form-data")
    assert response.status_code == 201, response.json
    return response.json


def as_a_person_gets_it(model, **settings):
    """A request as the page and the CLI fill it in: the model's recommended settings first."""
    from server.engine import GenerationRequest

    return GenerationRequest.from_payload(settings, defaults=model.defaults)


# -- real servers and big uploads (tests/test_load_and_faults.py, benchmarks/socket_loop_stall.py) --

def free_loopback_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ChildProcess:
    """A process a test started (`self.proc`), logging to `self.log_path`: read its log, stop it
    gently (SIGTERM, then SIGKILL after `stop_timeout`), or kill it as `kill -9` would."""

    stop_timeout = 15.0
    proc = None
    log_path = None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def kill9(self) -> None:
        import os
        import signal

        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        import subprocess

        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(15)


class StudioProcess(ChildProcess):
    """`python -m server` as a person starts it, on a free loopback port (eventlet by default).

    Its output goes to a log file: a pipe nobody reads fills up and stalls a busy server. `root`
    is the source tree to run (another checkout, for before/after figures)."""

    def __init__(self, outputs, log_path, *flags, root=None):
        from pathlib import Path

        self.root = Path(root) if root else Path(__file__).resolve().parent.parent
        self.outputs, self.log_path, self.flags = Path(outputs), Path(log_path), [str(f) for f in flags]
        self.port = free_loopback_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self, timeout: float = 180.0) -> "StudioProcess":
        import os
        import subprocess
        import sys

        import requests

        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server", "--port", str(self.port), "--outputs", str(self.outputs),
             "--device", "cpu", *self.flags],
            cwd=self.root, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        log.close()
        deadline, status = time.monotonic() + timeout, None
        while status != "ready":
            if self.proc.poll() is not None or status == "error" or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"The studio did not become ready (exit code {self.proc.poll()}, status "
                                     f"{status!r}). Its output:\n{self.log()}")
            time.sleep(0.2)
            try:
                status = requests.get(self.url + "/api/health", timeout=5).json().get("status")
            except (requests.RequestException, ValueError):
                status = None
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def big_upload_png(size: int = 4000, seed: int = 0) -> bytes:
    """A `size`² (16 MP at 4000) PNG a person might upload: a smooth gradient with faint noise in
    its top quarter, about 3 MB, so it stays under the 20 MB upload limit while decoding and
    re-encoding it on the server still takes a while."""
    ramp = np.arange(size, dtype=np.int32) * 255 // (size - 1)
    arr = np.empty((size, size, 3), np.uint8)
    arr[..., 0] = ramp[None, :]
    arr[..., 1] = ramp[:, None]
    arr[..., 2] = np.add.outer(ramp, ramp) // 2
    noisy = arr[: size // 4, :, 0]
    noisy += (np.random.default_rng(seed).integers(0, 2, noisy.shape, dtype=np.uint8) & (noisy < 255))
    return png_bytes(Image.fromarray(arr, "RGB"), compress_level=1)


def studio_app(tmp_path, models_dir, model, **config):
    """A studio app (threading mode, CPU) on a models folder, started on `model` and ready."""
    from server.web.app import create_app

    app = create_app({"OUTPUTS_DIR": str(tmp_path / "outputs"), "MODELS_DIR": str(models_dir), "MODEL_PATH": model,
                      "ASYNC_MODE": "threading", "DEVICE": "cpu", "TESTING": True, "MAX_JOBS_PER_CLIENT": 8,
                      **config})
    wait_until(lambda: app.extensions["studio"].studio.status.status == "ready", timeout=120)
    return app


def preloaded_app(tmp_path, model):
    """A studio app (threading mode, CPU) serving an already loaded model, ready. Shut it down after."""
    from server.web.app import create_app

    app = create_app({"OUTPUTS_DIR": str(tmp_path / "outputs"), "ASYNC_MODE": "threading", "DEVICE": "cpu",
                      "TESTING": True}, model=model)
    wait_until(lambda: app.extensions["studio"].studio.status.status == "ready", timeout=120)
    return app


def connect(app):
    """A Socket.IO test client on the app."""
    from server.web.realtime import socketio

    return socketio.test_client(app, flask_test_client=app.test_client())
