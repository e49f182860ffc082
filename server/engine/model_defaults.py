"""A model folder's recommended settings: `studio_defaults.json` beside `model_index.json`.

Small or distilled models often need settings far from SD's usual ones (the demo model keeps a
sketch's layout at low strength only at a low CFG scale). Like InvokeAI's per-model default
settings, the folder can say so; they fill in whatever a request leaves out, so the page starts
at them and the CLI uses them unless a switch says otherwise. They are read without loading
any weights, so the page can use them while the model is still loading.

    {"cfg_scale": 2.0}
"""
from __future__ import annotations

import json
from pathlib import Path

DEFAULTS_FILE = "studio_defaults.json"
ALLOWED = ("cfg_scale", "steps", "sampler")  # what a model may recommend; the rest is the user's


def read_model_defaults(folder: Path | None) -> dict:
    """The folder's recommended settings ({} when it has none), validated like a request.

    Raises ValueError naming the file when it is not valid JSON, names an unknown setting, or
    holds a value a request would refuse."""
    if folder is None:
        return {}
    path = Path(folder) / DEFAULTS_FILE
    if not path.is_file():
        return {}
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}).") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path} must hold a JSON object such as {{\"cfg_scale\": 2.0}}.")
    unknown = sorted(set(values) - set(ALLOWED))
    if unknown:
        raise ValueError(f"{path} names settings a model cannot recommend: {', '.join(unknown)} "
                         f"(allowed: {', '.join(ALLOWED)}).")
    from .request import GenerationRequest

    try:
        GenerationRequest.from_payload(values)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    return dict(values)
