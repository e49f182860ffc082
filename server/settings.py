"""The studio's settings: one table drives the CLI flags, the Flask config and the README table."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Setting:
    name: str  # click parameter name
    config_key: str  # Flask config key
    default: Any
    help: str
    type: Any = str
    choices: tuple | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


SETTINGS = [
    Setting("host", "HOST", "127.0.0.1", "Interface to listen on. The default serves this machine only."),
    Setting("port", "PORT", 7860, "Port to listen on.", int),
    Setting("model", "MODEL_PATH", None,
            "A Stable Diffusion 1.x/2.x model folder in diffusers format. Default: the embedded model."),
    Setting("outputs", "OUTPUTS_DIR", "outputs",
            "Folder for generated images, uploads and caches; nothing is written elsewhere."),
    Setting("device", "DEVICE", "auto", "Where torch runs: auto picks cuda, then mps, then cpu.",
            choices=("auto", "cpu", "cuda", "mps")),
    Setting("async_mode", "ASYNC_MODE", "eventlet",
            "Socket server: eventlet (default) or threading (fallback, Werkzeug's server).",
            choices=("eventlet", "threading")),
    Setting("max_queued", "MAX_JOBS_PER_CLIENT", 4, "Unfinished jobs one browser tab may have at once.", int),
    Setting("max_upload_mb", "MAX_UPLOAD_MB", 20, "Largest upload accepted, in megabytes.", int),
    Setting("max_upload_megapixels", "MAX_UPLOAD_MEGAPIXELS", 16.8,
            "Largest upload accepted, in megapixels (guards against decompression bombs).", float),
]

DEFAULTS = {s.config_key: s.default for s in SETTINGS}


def markdown_table() -> str:
    """The README's configuration table, generated so it cannot drift from the code."""
    rows = ["| Flag | Default | What it does |", "|---|---|---|"]
    for s in SETTINGS:
        default = "embedded default" if s.default is None else f"`{s.default}`"
        choices = f" One of: {', '.join(s.choices)}." if s.choices else ""
        rows.append(f"| `{s.flag}` | {default} | {s.help}{choices} |")
    return "\n".join(rows)
