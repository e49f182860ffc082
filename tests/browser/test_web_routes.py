"""server/web/web.py on a bare Flask app: the page, the module files it may serve, the socket.io client."""
from __future__ import annotations

import pytest
from flask import Flask

from server.web import web


@pytest.fixture
def client():
    app = Flask(__name__, template_folder=str(web.ROOT / "templates"), static_folder=str(web.ROOT / "static"))
    app.config.update(MODEL_NAME="tiny-test", MODEL_IS_DEMO=True)
    app.register_blueprint(web.bp)
    return app.test_client()


def test_index_renders_with_model_context(client):
    page = client.get("/").get_data(as_text=True)
    assert "tiny-test" in page
    assert 'id="demo-badge"' in page and "#using-a-real-checkpoint" in page
    badge = page[page.index('id="demo-badge"'):]
    assert badge[: badge.index(">")].count("hidden") == 0
    assert '<script type="module" src="/frontend/main.js">' in page


def test_index_tolerates_missing_model_config():
    app = Flask(__name__, template_folder=str(web.ROOT / "templates"), static_folder=str(web.ROOT / "static"))
    app.register_blueprint(web.bp)
    response = app.test_client().get("/")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    badge = page[page.index('id="demo-badge"'):]
    assert "hidden" in badge[: badge.index(">")]


def test_frontend_modules_are_served_as_javascript(client):
    response = client.get("/frontend/main.js")
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert b"import" in response.data


@pytest.mark.parametrize("path", [
    "/frontend/package.json",
    "/frontend/package-lock.json",
    "/frontend/test/strip.test.js",
    "/frontend/node_modules/socket.io-client/dist/socket.io.esm.min.js",
    "/frontend/../server/web/web.py",
    "/frontend/%2e%2e/server/web/web.py",
    "/frontend/missing.js",
])
def test_frontend_serves_nothing_else(client, path):
    assert client.get(path).status_code == 404


def test_socketio_client_from_node_modules(client):
    if not (web.SOCKETIO_DIST / web.SOCKETIO_FILE).is_file():
        pytest.fail("frontend/node_modules is missing: run `npm ci --prefix frontend`")
    response = client.get("/vendor/socket.io.esm.min.js")
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"


def test_socketio_client_missing_says_how_to_fix(client, monkeypatch, tmp_path):
    monkeypatch.setattr(web, "SOCKETIO_DIST", tmp_path)
    response = client.get("/vendor/socket.io.esm.min.js")
    assert response.status_code == 500
    assert b"npm ci --prefix frontend" in response.data


def test_readme_sections_are_linkable(client, monkeypatch, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# Studio\n\nIntro <b>text</b>\n\n## Using a real checkpoint\n\nSteps.\n```\n# not a heading\n```\n")
    monkeypatch.setattr(web, "README", readme)
    page = client.get("/readme").get_data(as_text=True)
    assert "<h2 id='using-a-real-checkpoint'>Using a real checkpoint</h2>" in page
    assert "&lt;b&gt;text&lt;/b&gt;" in page
    assert "id='not-a-heading'" not in page
