"""Who may talk to the studio: host allowlist, Origin, token and headers, on every route and on
the Socket.IO handshake (both transports). Each case is an attack a web page or a network peer
could make against a studio left running next to a browser."""
import io
import socket as pysocket

import pytest

from server.web.security import AccessPolicy
from tests.helpers import png_bytes, sketch


def post_upload(client, headers=None):
    return client.post("/api/uploads", data={"image": (io.BytesIO(png_bytes(sketch())), "x.png")},
                       content_type="multipart/form-data", headers=headers or {})


def stored_uploads(app):
    folder = app.extensions["studio"].studio.uploads.root
    return sorted(folder.iterdir()) if folder.exists() else []


ROUTES = ["/", "/readme", "/api/health", "/api/outputs", "/api/plan", "/frontend/main.js",
          "/outputs/000001.1.png", "/socket.io/?EIO=4&transport=polling"]


@pytest.mark.parametrize("path", ROUTES)
def test_a_rebound_host_name_is_refused_on_every_route(client, path):
    response = client.get(path, headers={"Host": "evil.example:7860"})
    assert response.status_code == 400
    assert "--allow-host evil.example" in response.json["error"]
    assert "evil.example" not in response.headers.get("Access-Control-Allow-Origin", "")


def test_a_rebound_host_cannot_upload(app, client):
    response = post_upload(client, {"Host": "evil.example:7860"})
    assert response.status_code == 400 and stored_uploads(app) == []


@pytest.mark.parametrize("host", ["127.0.0.1:7860", "localhost:7860", "[::1]:7860", "LOCALHOST:7860"])
def test_loopback_names_are_served(client, host):
    assert client.get("/api/health", headers={"Host": host}).status_code == 200


def test_allow_host_and_host_add_names(tmp_path, tiny_model):
    from server.web.app import create_app

    app = create_app({"OUTPUTS_DIR": str(tmp_path / "o"), "ASYNC_MODE": "threading", "DEVICE": "cpu",
                      "ALLOWED_HOSTS": ("studio.lan",), "HOST": "192.168.7.7"}, model=tiny_model)
    try:
        client = app.test_client()
        for host in ("studio.lan", "studio.lan:443", "192.168.7.7:7860"):
            assert client.get("/api/health", headers={"Host": host}).status_code == 200, host
        assert client.get("/api/health", headers={"Host": "other.lan"}).status_code == 400
    finally:
        app.extensions["studio"].shutdown()


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://127.0.0.1:3000", "http://localhost:7860",
                                    "file://", "chrome-extension://abc"])
def test_cross_site_uploads_are_refused(app, client, origin):
    # The studio is at 127.0.0.1:7860; a multipart POST is a "simple request" browsers send
    # without asking first, from any site, Origin: null included.
    response = post_upload(client, {"Host": "127.0.0.1:7860", "Origin": origin})
    assert response.status_code == 403 and "another site" in response.json["error"]
    assert stored_uploads(app) == []


def test_the_studios_own_page_and_scripts_may_upload(app, client):
    assert post_upload(client, {"Host": "127.0.0.1:7860", "Origin": "http://127.0.0.1:7860"}).status_code == 201
    assert post_upload(client, {"Host": "127.0.0.1:7860"}).status_code == 201  # curl sends no Origin
    assert len(stored_uploads(app)) == 1  # the same pixels twice: one file


def test_socketio_polling_handshake_from_another_origin_is_refused(client):
    handshake = "/socket.io/?EIO=4&transport=polling"
    refused = client.get(handshake, headers={"Host": "127.0.0.1:7860", "Origin": "http://evil.example"})
    assert refused.status_code == 403
    assert "Access-Control-Allow-Origin" not in refused.headers
    own = client.get(handshake, headers={"Host": "127.0.0.1:7860", "Origin": "http://127.0.0.1:7860"})
    assert own.status_code == 200 and own.data.startswith(b"0{")  # an Engine.IO open packet
    assert own.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:7860"


def test_every_response_carries_the_security_headers(ready_app, client):
    for path in ("/", "/readme", "/api/health", "/frontend/main.js", "/nope"):
        headers = client.get(path).headers
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert headers["Referrer-Policy"] == "no-referrer", path
        assert headers["X-Frame-Options"] == "DENY", path
        csp = headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-eval" not in csp
        assert "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
    upload = post_upload(client).json
    for path in (f"/api/uploads/{upload['id']}",):
        headers = client.get(path).headers
        assert headers["Cross-Origin-Resource-Policy"] == "same-origin"
        assert headers["X-Content-Type-Options"] == "nosniff"


def test_the_page_has_no_inline_script(client):
    page = client.get("/").data.decode()
    assert page.count("<script") == page.count("<script type=\"module\" src=")


def test_too_many_form_parts_says_so_not_too_large(client):
    fields = {f"f{i}": "x" for i in range(1000)}
    fields["image"] = (io.BytesIO(png_bytes(sketch())), "x.png")
    response = client.post("/api/uploads", data=fields, content_type="multipart/form-data")
    assert response.status_code == 413
    assert "form parts" in response.json["error"] and "8" in response.json["error"]
    assert "MB" not in response.json["error"]


# -- the token ------------------------------------------------------------------------------------

@pytest.fixture
def token_app(tmp_path, tiny_model):
    from server.web.app import create_app

    app = create_app({"OUTPUTS_DIR": str(tmp_path / "o"), "ASYNC_MODE": "threading", "DEVICE": "cpu",
                      "TOKEN": "s3cret-token"}, model=tiny_model)
    yield app
    app.extensions["studio"].shutdown()


def test_without_the_token_nothing_is_served(token_app):
    client = token_app.test_client()
    for path in ("/", "/api/health", "/api/outputs", "/socket.io/?EIO=4&transport=polling"):
        response = client.get(path)
        assert response.status_code == 401 and "token" in response.json["error"], path
    assert post_upload(client).status_code == 401
    assert client.get("/api/health", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/?token=wrong").status_code == 401


def test_the_printed_url_trades_the_token_for_a_strict_cookie(token_app):
    client = token_app.test_client()
    response = client.get("/?token=s3cret-token")
    assert response.status_code == 303 and response.headers["Location"] == "/"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("studio_token_7860=s3cret-token") and "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    # The browser keeps the cookie: the page, the API and the socket handshake now answer.
    assert client.get("/").status_code == 200
    assert client.get("/api/health").status_code == 200
    assert client.get("/socket.io/?EIO=4&transport=polling").status_code == 200


def test_scripts_send_the_token_as_a_bearer(token_app):
    client = token_app.test_client()
    assert client.get("/api/health", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200


def test_a_studio_off_loopback_always_has_a_token(monkeypatch, tmp_path):
    """`serve --host 0.0.0.0` without --token makes one and prints it in the URL."""
    from click.testing import CliRunner

    import server.web.app
    import server.cli
    import server.web.realtime

    seen = {}

    class Stop(Exception):
        pass

    def fake_run(app, **kwargs):
        seen["policy"] = app.extensions["access_policy"]
        raise Stop

    monkeypatch.setattr(server.web.realtime.socketio, "run", fake_run)
    monkeypatch.setattr(server.cli, "_check_port_free", lambda host, port: None)
    monkeypatch.setattr(server.web.app.Studio, "load", lambda self: None)
    monkeypatch.setattr(server.web.app.JobManager, "start", lambda self: None)
    result = CliRunner().invoke(server.cli.main, ["--host", "0.0.0.0", "--async-mode", "threading",
                                                  "--outputs", str(tmp_path / "o")])
    assert isinstance(result.exception, Stop), result.output
    token = seen["policy"].token
    assert token and len(token) >= 24
    assert f"http://127.0.0.1:7860/?token={token}" in result.output


def test_loopback_needs_no_token_and_ip_literals_pass_only_on_a_wildcard_bind():
    assert not AccessPolicy("127.0.0.1", 7860).needs_token
    wildcard, loopback = AccessPolicy("0.0.0.0", 7860, token="t"), AccessPolicy("127.0.0.1", 7860)
    # An address typed into a browser cannot be rebound; a name can.
    assert wildcard.host_allowed("192.168.1.5:7860") and not wildcard.host_allowed("evil.example:7860")
    assert not loopback.host_allowed("192.168.1.5:7860")


# -- the websocket transport, on a real server ------------------------------------------------------

def websocket_handshake(port: int, host: str, origin: str | None) -> str:
    """The status line a raw websocket upgrade request gets."""
    lines = [f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1", f"Host: {host}", "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"]
    if origin:
        lines.append(f"Origin: {origin}")
    with pysocket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return conn.recv(4096).split(b"\r\n", 1)[0].decode()


def test_websocket_upgrades_from_a_rebound_host_or_foreign_origin_are_refused(server):
    url, _, _ = server
    port = int(url.rsplit(":", 1)[1])
    assert " 400 " in websocket_handshake(port, "evil.example:%d" % port, "http://evil.example:%d" % port)
    assert " 403 " in websocket_handshake(port, "127.0.0.1:%d" % port, "http://evil.example")
    assert " 403 " in websocket_handshake(port, "127.0.0.1:%d" % port, "null")
    assert " 101 " in websocket_handshake(port, "127.0.0.1:%d" % port, "http://127.0.0.1:%d" % port)


from tests.test_real_server import server  # noqa: E402,F401 - the real-server fixture, both async modes


def test_the_token_redirect_cannot_smuggle_a_header(token_app):
    client = token_app.test_client()
    response = client.get("/a%0d%0aX-Injected:%20yes?token=s3cret-token")
    assert response.status_code == 303 and "X-Injected" not in response.headers
    assert response.headers["Location"] == "/a%0D%0AX-Injected%3A%20yes"


def test_refusals_carry_the_security_headers_too(client):
    headers = client.get("/", headers={"Host": "evil.example"}).headers
    assert headers["X-Frame-Options"] == "DENY" and "frame-ancestors 'none'" in headers["Content-Security-Policy"]
