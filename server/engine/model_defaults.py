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
ALLOWED = ("cfg_scale", "steps", "sampler", "min_taken_steps")  # what a model may recommend; the rest is the user's


def read_model_defaults(folder: Path | None) -> dict:
    """The folder's recommended settings ({} when it has none), validated like a request.

    Raises ValueError naming the file when it is not valid JSON, names an unknown setting, or
    holds a value a request would refuse."""
    if folder is None:
        return {}
    path = Path(folder) / DEFAULTS_FILE
    if not path.is_file():
        return {}
    return _checked_settings(path, _read_json_object(path))


def _read_json_object(path: Path) -> dict:
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}).") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path} must hold a JSON object such as {{\"cfg_scale\": 2.0}}.")
    return values


def _checked_settings(path: Path, values: dict) -> dict:
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


# What a file beside a single-file checkpoint may say about the model itself, which its keys
# cannot tell (families.py): SD 2.x's prediction type, and whether it is a Turbo model.
MODEL_KEYS = {"prediction_type": ("auto", "epsilon", "v_prediction"), "model_variant": ("auto", "base", "turbo")}


def read_checkpoint_defaults(checkpoint: Path) -> tuple[dict, dict]:
    """(recommended settings, model facts) for a single-file checkpoint, from
    `<name>.studio_defaults.json` beside it, else the folder's `studio_defaults.json`."""
    checkpoint = Path(checkpoint)
    path = checkpoint.with_name(checkpoint.stem + "." + DEFAULTS_FILE)
    if not path.is_file():
        path = checkpoint.with_name(DEFAULTS_FILE)
    if not path.is_file():
        return {}, {}
    values = _read_json_object(path)
    facts = {k: values.pop(k) for k in list(values) if k in MODEL_KEYS}
    for key, value in facts.items():
        if value not in MODEL_KEYS[key]:
            raise ValueError(f"{path}: {key} must be one of {', '.join(MODEL_KEYS[key])}, got {value!r}.")
    return _checked_settings(path, values), facts
