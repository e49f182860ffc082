"""Attacks a real browser can make on a studio running on this machine, made by Debian's Chromium.

Each scenario is what another website (or a page that rebinds its DNS name to 127.0.0.1) could do
to a studio left running, and each asserts what the user would notice: nothing stored, no studio in
someone else's frame, a refusal page instead of the studio, the token traded for a cookie.

The attacker is a plain HTTP server on another loopback port (another origin); DNS rebinding is
played by Chromium's --host-resolver-rules, which maps evil.example to 127.0.0.1. No traffic leaves
127.0.0.0/8.
"""
from __future__ import annotations

import base64
import functools
import http.server
import json
import re
import threading
import time

import pytest
from playwright.sync_api import expect

from conftest import ServerProcess, launch_server, stop_server, wait_until_ready
from studio_page import StudioPage, sketch_png

EVIL = "evil.example"
TOKEN = "secret-test-token"
CONNECTED_MS = 20_000


# --- servers ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """The module's three studios, started together so their model loads overlap: a plain one (the
    attacks' target), one that answers to evil.example on purpose, and one that wants a token.
    Each test waits only for its own, so one that cannot start fails only its own tests."""
    servers = {
        "plain": launch_server(tmp_path_factory),
        "allowed": launch_server(tmp_path_factory, "--allow-host", EVIL),
        "token": launch_server(tmp_path_factory, "--token", TOKEN),
    }
    yield servers
    for srv in servers.values():
        stop_server(srv)


@functools.cache
def _ready(srv: ServerProcess, headers: tuple = ()) -> ServerProcess:
    return wait_until_ready(srv, dict(headers))


@pytest.fixture(scope="module")
def plain(launched):
    return _ready(launched["plain"])


@pytest.fixture(scope="module")
def allowed(launched):
    return _ready(launched["allowed"])


@pytest.fixture(scope="module")
def tokened(launched):
    return _ready(launched["token"], (("Authorization", f"Bearer {TOKEN}"),))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest's output for failures
        pass


@pytest.fixture(scope="module")
def attacker(tmp_path_factory):
    """Another origin on this machine: a plain static server on its own loopback port, serving the
    files a test writes into `attacker.root`; `attacker.url(name)` is a page's address."""
    root = tmp_path_factory.mktemp("attacker-site")
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()

    class Site:
        origin = f"http://127.0.0.1:{httpd.server_address[1]}"

        def page(self, name: str, html: str) -> str:
            (root / name).write_text(html)
            return f"{self.origin}/{name}"

    yield Site()
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def rebinding_browser(launch_chromium):
    """A Chromium for which evil.example resolves to 127.0.0.1: what a DNS-rebinding attack achieves."""
    return launch_chromium(f"--host-resolver-rules=MAP {EVIL} 127.0.0.1")


@pytest.fixture
def page_errors():
    """Pages opened through `watch(page)` collect uncaught exceptions; they fail the test."""
    errors: list[str] = []

    def watch(page):
        page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
        return page

    yield watch
    assert not errors, "\n".join(errors)


def _uploads(srv: ServerProcess) -> list[str]:
    folder = srv.outputs / "uploads"
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def _body_text(page) -> str:
    return page.locator("body").inner_text()


# --- 1. another site posts an upload -------------------------------------------------------------

_UPLOAD_PAGE = """<!doctype html>
<html><head><title>Free wallpapers</title></head><body>
<h1>Free wallpapers</h1>
<form id="form" method="post" enctype="multipart/form-data" action="{target}">
  <input type="file" name="image" id="file"> <button id="send">Download</button>
</form>
<script>
  // A cross-site "simple" request: no preflight, the browser sends it and hides the answer.
  const png = Uint8Array.from(atob("{png_b64}"), (c) => c.charCodeAt(0));
  window.fetchOutcome = (async () => {{
    const body = new FormData();
    body.append("image", new Blob([png], {{ type: "image/png" }}), "wallpaper.png");
    try {{
      const response = await fetch("{target}", {{ method: "POST", mode: "no-cors", body }});
      return "resolved " + response.type;
    }} catch (err) {{
      return "rejected " + err;
    }}
  }})();
</script>
</body></html>
"""


def test_another_site_cannot_upload_to_the_studio(plain, attacker, browser, page_errors):
    target = f"{plain.base_url}/api/uploads"
    url = attacker.page("upload.html", _UPLOAD_PAGE.format(target=target,
                                                           png_b64=base64.b64encode(sketch_png(64)).decode()))
    assert _uploads(plain) == [], "the studio's uploads folder is not empty before the attack"
    context = browser.new_context()
    try:
        page = page_errors(context.new_page())
        # The no-cors fetch runs as the page loads. The studio's 403 carries Cross-Origin-Resource-Policy:
        # same-origin, so Chromium may even withhold the opaque answer (the fetch rejects); either way
        # the request was refused, which the uploads folder below confirms.
        with page.expect_request(lambda r: r.url == target and r.method == "POST", timeout=15_000) as sent:
            page.goto(url)
        outcome = page.evaluate("window.fetchOutcome")
        assert outcome == "resolved opaque" or outcome.startswith("rejected"), outcome
        answer = sent.value.response()
        assert answer is None or answer.status == 403, f"the studio answered the cross-site fetch with {answer.status}"

        # A real form post, as a click on the attacker's "Download" button sends it: a top-level navigation.
        page.set_input_files("#file", {"name": "wallpaper.png", "mimeType": "image/png", "buffer": sketch_png(64)})
        with page.expect_navigation(timeout=15_000) as navigation:
            page.click("#send")
        response = navigation.value
        assert response is not None and response.url == target
        assert response.status == 403, f"the studio answered the cross-site form post with {response.status}"
        assert "Requests from another site" in _body_text(page)

        # What the user would notice: nothing arrived in the studio's uploads.
        time.sleep(0.5)  # an upload that got through would be stored before its 201 anyway
        assert _uploads(plain) == [], f"a cross-site request stored an upload: {_uploads(plain)}"
    finally:
        context.close()


# --- 2. another site frames the studio -----------------------------------------------------------

_FRAME_PAGE = """<!doctype html>
<html><head><title>Win a prize</title></head><body>
<h1>Click the button to win</h1>
<iframe id="victim" src="{target}" width="900" height="600" style="opacity: 0.9"></iframe>
</body></html>
"""


def test_another_site_cannot_frame_the_studio(plain, attacker, browser, page_errors, screenshots_dir):
    url = attacker.page("frame.html", _FRAME_PAGE.format(target=f"{plain.base_url}/"))
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = page_errors(context.new_page())
        console: list[str] = []
        page.on("console", lambda msg: console.append(msg.text))
        page.goto(url)
        victim = page.frame_locator("#victim")
        studio_ui = victim.get_by_test_id("connection")
        # Either Chromium refuses the frame (and says so on the console) or the studio shows up in it.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if any("frame-ancestors" in text for text in console) or studio_ui.count() > 0:
                break
            time.sleep(0.2)
        assert studio_ui.count() == 0, "the studio rendered inside another site's frame"
        assert any("frame-ancestors 'none'" in text for text in console), \
            f"Chromium reported no frame-ancestors refusal; console: {console}"
        children = [f for f in page.frames if f != page.main_frame]
        assert len(children) == 1
        # The refused frame holds Chromium's error page, not the studio's document.
        assert children[0].evaluate("() => document.querySelector('[data-testid]') === null")
        assert children[0].evaluate("() => !document.title.includes('studio')")
        page.screenshot(path=str(screenshots_dir / "attack-framing-refused-1280x800.png"))
    finally:
        context.close()


# --- 3. DNS rebinding ------------------------------------------------------------------------------

def test_a_rebound_name_is_refused(plain, rebinding_browser, page_errors, screenshots_dir):
    evil_base = f"http://{EVIL}:{plain.port}"
    context = rebinding_browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = page_errors(context.new_page())
        response = page.goto(evil_base + "/")
        assert response is not None and response.status == 400, f"got {response and response.status}"
        body = _body_text(page)
        assert f"--allow-host {EVIL}" in body and "DNS rebinding" in body, body
        assert page.get_by_test_id("connection").count() == 0, "the studio's page loaded under a rebound name"
        page.screenshot(path=str(screenshots_dir / "attack-dns-rebinding-refused-1280x800.png"))

        # The rebinding page's own same-origin requests: the outputs list and the socket handshake.
        answers = page.evaluate("""async () => {
          const get = async (path) => { const r = await fetch(path); return [r.status, await r.text()]; };
          return { outputs: await get("/api/outputs"), socket: await get("/socket.io/?EIO=4&transport=polling") };
        }""")
        status, text = answers["outputs"]
        assert status == 400 and not isinstance(json.loads(text), list), f"/api/outputs answered {status}: {text}"
        assert "--allow-host" in json.loads(text)["error"]
        status, text = answers["socket"]
        assert status == 400, f"the Socket.IO handshake under a rebound name answered {status}: {text}"

        response = page.goto(evil_base + "/api/outputs")
        assert response is not None and response.status == 400
        assert not isinstance(response.json(), list)
    finally:
        context.close()


def test_an_allowed_name_serves_the_studio(allowed, rebinding_browser, page_errors):
    """The same name, started with --allow-host evil.example: the page loads, connects and uploads."""
    as_named = ServerProcess(f"http://{EVIL}:{allowed.port}", allowed.outputs, allowed.process, allowed.log_path)
    as_named.health = allowed.health
    context = rebinding_browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = page_errors(context.new_page())
        studio = StudioPage(page, as_named)
        studio.open()  # connection "connected", model ready, a plan shown
        assert page.url.startswith(f"http://{EVIL}:{allowed.port}/")
        # A state-changing request from the page itself (Origin == Host) goes through.
        studio.upload_sketch()
        assert len(_uploads(allowed)) == 1
    finally:
        context.close()


# --- 4. the token -------------------------------------------------------------------------------

def test_the_token_is_traded_for_an_http_only_cookie(tokened, attacker, browser, page_errors, screenshots_dir):
    base = tokened.base_url
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = page_errors(context.new_page())
        response = page.goto(base + "/")
        assert response is not None and response.status == 401, f"got {response and response.status}"
        assert "needs its access token" in _body_text(page)
        assert page.get_by_test_id("connection").count() == 0

        response = page.goto(f"{base}/?token={TOKEN}")
        assert response is not None and response.status == 200
        redirect = response.request.redirected_from
        assert redirect is not None and redirect.response().status == 303
        assert page.url == base + "/", f"the token stayed in the address bar: {page.url}"
        studio = StudioPage(page, tokened)
        expect(studio.connection).to_have_attribute("data-state", "connected", timeout=CONNECTED_MS)
        expect(studio.by_testid("model-status")).to_have_attribute("data-status", "ready", timeout=CONNECTED_MS)
        expect(studio.plan_summary).to_contain_text("taken", timeout=10_000)
        studio.screenshot(screenshots_dir / "attack-token-studio-1280x800.png")

        cookies = [c for c in context.cookies(base) if c["name"] == f"studio_token_{tokened.port}"]
        assert len(cookies) == 1, context.cookies()
        cookie = cookies[0]
        assert cookie["value"] == TOKEN
        assert cookie["httpOnly"] is True
        assert cookie["sameSite"] == "Strict"
        assert TOKEN not in page.evaluate("document.cookie"), "the page's scripts can read the token"

        # A reload (no token in the URL) still gets the studio, by the cookie.
        response = page.reload()
        assert response is not None and response.status == 200
        assert page.url == base + "/"
        expect(studio.connection).to_have_attribute("data-state", "connected", timeout=CONNECTED_MS)
        expect(studio.plan_summary).to_contain_text("taken", timeout=10_000)

        # Cookies ignore ports and 127.0.0.1:<other port> is the same site, so this browser now sends
        # the (SameSite=Strict) cookie with another local origin's requests too: its upload must
        # still be refused, by its Origin.
        target = f"{base}/api/uploads"
        url = attacker.page("upload-tokened.html", _UPLOAD_PAGE.format(
            target=target, png_b64=base64.b64encode(sketch_png(64)).decode()))
        with page.expect_request(lambda r: r.url == target and r.method == "POST", timeout=15_000) as sent:
            page.goto(url)
        answer = sent.value.response()
        assert answer is None or answer.status == 403, f"the studio answered with {answer.status}"
        assert _uploads(tokened) == [], f"another local origin stored an upload: {_uploads(tokened)}"

        # Another browser profile (no cookie) is still refused, the API included.
        stranger = browser.new_context()
        try:
            answer = stranger.request.get(base + "/api/outputs")
            assert answer.status == 401
            assert not re.search(r"^\s*\[", answer.text())
        finally:
            stranger.close()
    finally:
        context.close()
