"""Shared fixtures: the tiny model (built once), a Flask app per test with outputs in tmp_path,
and Socket.IO test clients (Flask-SocketIO-Chat / flaskr style)."""
from __future__ import annotations

import pytest

from tests.tiny_model import load_tiny_model
from tests.helpers import wait_until


@pytest.fixture(scope="session")
def tiny_model():
    """A tiny random-weights SD built from config: fast, and the same in every process."""
    return load_tiny_model("cpu")


@pytest.fixture(scope="session")
def demo_model():
    """The studio's default: the shipped demo weights, trained, so colours and shapes mean
    something (the tiny model's random VAE cannot show that a colour survived)."""
    from server.engine import load_model

    return load_model(None, "cpu")


@pytest.fixture
def app(tmp_path, tiny_model):
    from server.web.app import create_app

    application = create_app({"OUTPUTS_DIR": str(tmp_path / "outputs"), "ASYNC_MODE": "threading",
                              "DEVICE": "cpu", "TESTING": True}, model=tiny_model)
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
    from server.web.realtime import socketio

    clients = []

    def connect():
        c = socketio.test_client(ready_app, flask_test_client=ready_app.test_client())
        clients.append(c)
        return c

    yield connect
    for c in clients:
        if c.is_connected():
            c.disconnect()
