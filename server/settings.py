"""The studio's settings: one table drives the CLI flags, the Flask config and the README table."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import click


class DeviceName(click.ParamType):
    """auto, cpu, mps, cuda or cuda:N; whether it exists is checked when the model loads."""

    name = "device"

    def convert(self, value, param, ctx):
        if isinstance(value, str) and re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
            return value
        self.fail(f"{value!r} is not a device: use auto, cpu, mps, cuda or cuda:N (e.g. cuda:1).", param, ctx)


def parse_lora_spec(text: str) -> tuple[str, float]:
    """`NAME-or-PATH[:WEIGHT]` -> (name or path, weight), the weight 1 when left out. Only a tail that
    reads as a number is a weight, so `C:\\loras\\ink.safetensors` keeps its drive letter. The
    weight's range is checked with the request's (engine/request.py), once the engine is imported."""
    head, sep, tail = text.rpartition(":")
    try:
        weight = float(tail) if sep and head else None
    except ValueError:
        weight = None
    if weight is None:
        head, weight = text, 1.0
    if not head or weight != weight or weight in (float("inf"), float("-inf")):
        raise ValueError(f"{text!r} is not NAME-or-PATH[:WEIGHT] (e.g. ink.safetensors:0.8).")
    return head, weight


class LoraSpec(click.ParamType):
    """`--lora NAME-or-PATH[:WEIGHT]`; whether the LoRA exists is checked when the studio starts.
    Pure text work: `serve` parses its flags before eventlet patches, so nothing heavy is imported."""

    name = "lora"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            return parse_lora_spec(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


@dataclass(frozen=True)
class Setting:
    name: str  # click parameter name
    config_key: str  # Flask config key
    default: Any
    help: str
    type: Any = str
    choices: tuple | None = None
    multiple: bool = False  # a repeatable flag; its value is a tuple

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


SETTINGS = [
    Setting("host", "HOST", "127.0.0.1", "Interface to listen on. The default serves this machine only."),
    Setting("port", "PORT", 7860, "Port to listen on.", int),
    Setting("allow_host", "ALLOWED_HOSTS", (),
            "Another host name the studio answers to (repeatable), e.g. the name a reverse proxy serves it as. "
            "127.0.0.1, localhost and [::1] are always allowed; requests for any other name are refused "
            "(DNS rebinding).", multiple=True),
    Setting("token", "TOKEN", None,
            "Access token for HTTP and Socket.IO. Required, and generated if not given, when --host is not "
            "loopback; the printed URL carries it once and the page keeps it in a cookie."),
    Setting("model", "MODEL_PATH", None,
            "The model to start with: a name listed in --models-dir, or the path of a single .safetensors or .ckpt "
            "checkpoint (SD 1.x, SD 2.x, SDXL, their inpainting and Turbo models) or of a diffusers folder. "
            "Default: the embedded model."),
    Setting("models_dir", "MODELS_DIR", "models",
            "Folder of checkpoints, diffusers folders and loras/ that the page's picker and generate's model "
            "choose from; relative to where the studio starts, like --outputs, so by default beside outputs/. "
            "Only read, never written; a missing folder lists nothing."),
    Setting("keep_models", "KEEP_MODELS", 1,
            "Models kept in memory at once: switching back to one still kept is instant. With 1, each switch "
            "frees the previous model.", click.IntRange(1, 16)),
    Setting("lora", "LORAS", (),
            "A LoRA applied to every job whose generate gives no loras (repeatable, applied in order): "
            "NAME-or-PATH[:WEIGHT], a name listed under loras/ in --models-dir, else a .safetensors file's "
            "path; the weight (-4 to 4) is 1 when left out, e.g. --lora ink.safetensors:0.8. A generate "
            "with a loras list, [] included, uses that list instead.", LoraSpec(), multiple=True),
    Setting("prediction_type", "PREDICTION_TYPE", "auto",
            "What an SD 2.x checkpoint's UNet predicts; auto tells it from the file (see \"Using a real "
            "checkpoint\").", choices=("auto", "epsilon", "v_prediction")),
    Setting("model_variant", "MODEL_VARIANT", "auto",
            "turbo: the checkpoint is SD-Turbo or SDXL-Turbo (few steps, CFG off, trailing timesteps); auto "
            "reads it from the file's header.", choices=("auto", "base", "turbo")),
    Setting("outputs", "OUTPUTS_DIR", "outputs",
            "Folder for generated images, uploads and caches; nothing is written elsewhere."),
    Setting("device", "DEVICE", "auto",
            "Where torch runs: auto picks cuda, then mps, then cpu; cuda:1 picks the second GPU. Float16 on "
            "CUDA, float32 elsewhere.", DeviceName()),
    Setting("async_mode", "ASYNC_MODE", "eventlet",
            "Socket server: eventlet (default) or threading (fallback, Werkzeug's server).",
            choices=("eventlet", "threading")),
    Setting("broker", "BROKER_URL", None,
            "Redis URL (redis://HOST:PORT/0): run as one web process of a cluster. It loads no model; jobs go through "
            "Celery to `img2img-studio worker` processes on the same Redis, and their messages come back through it. "
            "Left out: one process with its own worker (no Redis)."),
    Setting("max_queued", "MAX_JOBS_PER_CLIENT", 4, "Unfinished jobs one browser tab may have at once.", int),
    Setting("max_queued_total", "MAX_JOBS_TOTAL", 32, "Unfinished jobs all clients together may have at once.", int),
    Setting("max_connections_per_address", "MAX_CONNECTIONS_PER_ADDRESS", 16,
            "Open Socket.IO connections one remote address may hold at once. Under eventlet its TCP "
            "connections are capped at 4 times this, and a connection idle for 20 s without a request is closed.",
            int),
    Setting("max_variations", "MAX_VARIATIONS", 64, "Longest with_variations list a job may give.", int),
    Setting("max_form_parts", "MAX_FORM_PARTS", 8, "Most multipart parts an upload request may have.", int),
    Setting("max_upload_mb", "MAX_UPLOAD_MB", 20, "Largest upload accepted, in megabytes.", int),
    Setting("max_upload_megapixels", "MAX_UPLOAD_MEGAPIXELS", 16.8,
            "Largest upload accepted, in megapixels (guards against decompression bombs).", float),
]

DEFAULTS = {s.config_key: s.default for s in SETTINGS}


def markdown_table() -> str:
    """The README's configuration table, generated so it cannot drift from the code."""
    rows = ["| Flag | Default | What it does |", "|---|---|---|"]
    for s in SETTINGS:
        default = ("embedded default" if s.config_key == "MODEL_PATH" else "none" if s.default in (None, ())
                   else f"`{s.default}`")
        choices = f" One of: {', '.join(s.choices)}." if s.choices else ""
        rows.append(f"| `{s.flag}` | {default} | {s.help}{choices} |")
    return "\n".join(rows)
