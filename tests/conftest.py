"""Shared fixtures: the tiny model (built once), a Flask app per test with outputs in tmp_path,
and Socket.IO test clients (Flask-SocketIO-Chat / flaskr style)."""
from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

from server.engine import load_model


@pytest.fixture(scope="session")
def tiny_model():
    return load_model(None, "cpu")


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


@pytest.fixture
def app(tmp_path):
    from server.app import create_app

    application = create_app({"OUTPUTS_DIR": str(tmp_path / "outputs"), "ASYNC_MODE": "threading",
                              "DEVICE": "cpu", "TESTING": True})
    yield application
    application.extensions["studio"].shutdown()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def ready_app(app):
    """The app once its worker has loaded the model."""
    wait_until(lambda: app.extensions["studio"].studio.status.status == "ready", timeout=120)
    return app


@pytest.fixture
def socket_client(ready_app):
    from server.realtime import socketio

    clients = []

    def connect():
        c = socketio.test_client(ready_app, flask_test_client=ready_app.test_client())
        clients.append(c)
        return c

    yield connect
    for c in clients:
        if c.is_connected():
            c.disconnect()


def wait_until(predicate, timeout=30.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")
