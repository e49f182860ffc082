"""Browser fixtures: the real server in a subprocess on a free port (Datasette style) and
Debian's Chromium driven by Playwright.

Playwright's own browser download is never used: tests launch /usr/bin/chromium
(`apt-get install chromium`), and FAIL when it is missing, so a broken set-up cannot pass as skipped.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("STUDIO_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
READY_TIMEOUT_S = 120
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _health(base_url: str, headers: dict | None = None) -> dict | None:
    try:
        request = urllib.request.Request(f"{base_url}/api/health", headers=headers or {})
        with urllib.request.urlopen(request, timeout=2) as response:
            return json.load(response)
    except (OSError, ValueError):
        return None


class ServerProcess:
    def __init__(self, base_url: str, outputs: Path, process: subprocess.Popen, log_path: Path):
        self.base_url = base_url
        self.outputs = outputs
        self.process = process
        self.log_path = log_path
        self.health: dict = {}
        self.port = int(base_url.rsplit(":", 1)[1])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def saved_files(self) -> list[Path]:
        """Finished images (outputs sit directly in the folder; uploads live in a subfolder)."""
        return sorted(self.outputs.glob("*.png"))


def launch_server(tmp_path_factory, *extra_args: str, outputs: Path | None = None) -> ServerProcess:
    """Start `python -m server` on a free loopback port with a fresh outputs folder (or `outputs`, one a
    test has filled); returns at once (see wait_until_ready). extra_args go to the command line, e.g.
    "--token", "T"."""
    outputs = outputs or tmp_path_factory.mktemp("outputs")
    log_path = tmp_path_factory.mktemp("server-log") / "server.log"
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "server", "--port", str(port), "--outputs", str(outputs), *extra_args],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )
    return ServerProcess(base_url, outputs, process, log_path)


def wait_until_ready(srv: ServerProcess, headers: dict | None = None) -> ServerProcess:
    """Poll /api/health until the model is ready; fail the test (with the server's output) otherwise.
    headers go with each poll (e.g. an Authorization header for a studio started with --token)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    health = None
    while time.monotonic() < deadline:
        if srv.process.poll() is not None:
            break
        health = _health(srv.base_url, headers)
        if health and health.get("status") in ("ready", "error"):
            break
        time.sleep(0.5)
    if not health or health.get("status") != "ready":
        if srv.process.poll() is None:
            srv.process.kill()
        srv.process.wait(timeout=10)
        print(f"--- server output (exit {srv.process.returncode}) ---\n{srv.log()}", file=sys.stderr)
        pytest.fail(f"The server did not become ready within {READY_TIMEOUT_S} s (last health: {health}).")
    srv.health = health
    return srv


def stop_server(srv: ServerProcess) -> None:
    if srv.process.poll() is not None:
        return
    srv.process.terminate()
    try:
        srv.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        srv.process.kill()
        srv.process.wait(timeout=10)


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    srv = wait_until_ready(launch_server(tmp_path_factory))
    yield srv
    stop_server(srv)


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing. Install it with `apt-get install -y chromium` "
                    "(Playwright's own browser download is not used).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def launch_chromium(browser):
    """launch_chromium(*extra_args): another Chromium with CHROMIUM_ARGS plus extra_args (e.g.
    --host-resolver-rules), from the same Playwright; closed when the module's tests are done."""
    launched = []

    def launch(*extra_args: str):
        other = browser.browser_type.launch(executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, *extra_args])
        launched.append(other)
        return other

    yield launch
    for other in launched:
        other.close()


@pytest.fixture
def studio(browser, server, request):
    """A fresh page (fresh localStorage) on the studio, wrapped in the page object."""
    from studio_page import StudioPage

    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on("console", lambda msg: errors.append(f"console.{msg.type}: {msg.text}") if msg.type == "error" else None)
    studio_page = StudioPage(page, server)
    studio_page.open()
    yield studio_page
    context.close()
    # Uncaught exceptions in our modules are bugs even when the scenario passed.
    own = [e for e in errors if e.startswith("pageerror")]
    assert not own, "\n".join(errors)


@pytest.fixture(scope="session")
def screenshots_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
