"""The page: index.html, the frontend's ES modules, the vendored socket.io client, the README.

No build step: the browser loads frontend/*.js as modules straight from the repo, and the
socket.io client straight from frontend/node_modules (installed by `npm ci --prefix frontend`).
"""
from __future__ import annotations

import html
import re
from pathlib import Path

from flask import Blueprint, Response, abort, current_app, render_template, send_from_directory

ROOT = Path(__file__).resolve().parents[2]  # the checkout: server/web/ is two folders down
FRONTEND_DIR = ROOT / "frontend"
SOCKETIO_DIST = FRONTEND_DIR / "node_modules" / "socket.io-client" / "dist"
SOCKETIO_FILE = "socket.io.esm.min.js"
README = ROOT / "README.md"

# Only the page's own modules are served: not the npm tree, not the tests, not package files.
_PRIVATE_PARTS = {"node_modules", "test", "tests"}

bp = Blueprint("web", __name__)


@bp.get("/")
def index():
    return render_template(
        "index.html",
        model_name=current_app.config.get("MODEL_NAME") or "",
        is_demo=bool(current_app.config.get("MODEL_IS_DEMO")),
    )


@bp.get("/frontend/<path:path>")
def frontend(path: str):
    parts = Path(path).parts
    if (
        not path.endswith(".js")
        or any(part in _PRIVATE_PARTS or part.startswith(".") for part in parts)
        or path.endswith(".test.js")
    ):
        abort(404)
    # send_from_directory refuses paths that escape the folder.
    response = send_from_directory(FRONTEND_DIR, path, mimetype="text/javascript", max_age=0)
    response.headers["Cache-Control"] = "no-cache"  # revalidate: no build step means no hashed names
    return response


@bp.get("/vendor/socket.io.esm.min.js")
def socketio_client():
    if not (SOCKETIO_DIST / SOCKETIO_FILE).is_file():
        return Response(
            "The socket.io client is not installed. Run `npm ci --prefix frontend` in the repository root "
            "(Node 18+), then reload the page.\n",
            status=500,
            mimetype="text/plain",
        )
    return send_from_directory(SOCKETIO_DIST, SOCKETIO_FILE, mimetype="text/javascript", max_age=3600)


@bp.get("/readme")
def readme():
    """README.md as a plain page, so the demo badge can link to one of its sections."""
    if not README.is_file():
        abort(404)
    return render_markdown_outline(README.read_text(encoding="utf-8"), title="img2img studio: README")


def render_markdown_outline(text: str, title: str) -> str:
    """Headings become anchored <h1>-<h6> (GitHub-style ids); everything else stays preformatted text.

    Deliberately not a Markdown renderer: enough to read the README and to link to its sections.
    """
    out = [
        "<!doctype html><meta charset='utf-8'><meta name='color-scheme' content='dark'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font:15px/1.55 system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;"
        "background:#111318;color:#d8dbe2}pre{white-space:pre-wrap;font:inherit;margin:0 0 1rem}"
        "h1,h2,h3{color:#fff}:target{outline:2px solid #7c8cff;outline-offset:4px}a{color:#9aa6ff}</style>",
    ]
    block: list[str] = []
    seen: dict[str, int] = {}
    in_code = False

    def flush():
        if block and "".join(block).strip():
            out.append(f"<pre>{html.escape(chr(10).join(block).strip(chr(10)))}</pre>")
        block.clear()

    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        heading = None if in_code else re.match(r"(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if heading:
            flush()
            level, name = len(heading.group(1)), heading.group(2)
            slug = _slug(name)
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            anchor = slug if count == 0 else f"{slug}-{count}"
            out.append(f"<h{level} id='{anchor}'>{html.escape(name)}</h{level}>")
        else:
            block.append(line)
    flush()
    return "\n".join(out)


def _slug(heading: str) -> str:
    """GitHub's anchor rule: lower case, drop punctuation except - and _, spaces become -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
