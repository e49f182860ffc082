"""An output's recorded settings (the JSON in its PNG) -> the settings that reproduce it.

`generate --from` reads them. The metadata comes from a file, so from anyone: `check_metadata`
refuses what img2img studio cannot have written before any of it is used, and
`settings_from_metadata` turns the rest into a settings dict as dream.py describes it.
"""
from __future__ import annotations

import math
import re

from ..engine.plan import MAX_STEPS
from ..engine.request import LORA_WEIGHT_RANGE, MAX_LORAS, MAX_SEED, MAX_SIDE, MIN_SIDE
from ..engine.samplers import SAMPLERS
from ..storage.metadata import requested_size
from ..storage.uploads import ID_PATTERN as UPLOAD_ID_PATTERN

# Output modes that start from an init image (and so have a strength); see metadata.py.
_IMAGE_MODES = ("img2img", "inpaint")
# Settings a stored line records: what `settings_from_metadata` reads back from an output.
_STORED = ("prompt", "negative_prompt", "steps", "exact_steps", "min_taken_steps", "cfg_scale", "seed", "sampler",
           "width", "height", "fit", "strength")


class MalformedMetadata(ValueError):
    """An output's metadata that img2img studio cannot have written: `field` (a key, or a dotted
    path into init_image) does not hold `expected`."""

    def __init__(self, field: str, expected: str):
        super().__init__(f"malformed {field!r} (expected {expected})")
        self.field, self.expected = field, expected


_SHA256 = re.compile(r"[0-9a-f]{64}", re.ASCII)
_SIDE_TEXT = f"a whole number of pixels from 8 to {MAX_SIDE}, a multiple of 8"


def _is_whole(value, lo, hi, integral_floats=False) -> bool:
    if isinstance(value, float) and integral_floats and math.isfinite(value) and value.is_integer():
        value = int(value)
    return not isinstance(value, bool) and isinstance(value, int) and lo <= value <= hi


def _is_number(value, lo, hi) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and lo <= value <= hi


def _is_side(value, lo=8) -> bool:
    return _is_whole(value, lo, MAX_SIDE) and value % 8 == 0


def _is_pair(pair) -> bool:
    return (isinstance(pair, list) and len(pair) == 2 and _is_whole(pair[0], 0, MAX_SEED, integral_floats=True)
            and _is_number(pair[1], 0.0, 1.0))


def _is_lora_record(record) -> bool:
    return (isinstance(record, dict) and isinstance(record.get("name"), str) and 0 < len(record["name"]) <= 1024
            and "\0" not in record["name"] and _is_number(record.get("weight"), *LORA_WEIGHT_RANGE)
            and (record.get("sha256") is None or isinstance(record["sha256"], str)
                 and bool(_SHA256.fullmatch(record["sha256"])))
            and (record.get("a1111_hash") is None or isinstance(record["a1111_hash"], str)
                 and bool(re.fullmatch(r"[0-9a-f]{1,64}", record["a1111_hash"]))))


# What each stored field must hold when present and not null: (test, what it expects). Written
# by Studio from a validated request, so a value outside these was not written by it. Output
# sides may be below MIN_SIDE (an img2img init keeps its own size); the request says so itself.
_FIELD_CHECKS = {
    "prompt": (lambda v: isinstance(v, str), "text"),
    "negative_prompt": (lambda v: isinstance(v, str), "text"),
    "steps": (lambda v: _is_whole(v, 1, MAX_STEPS), f"a whole number from 1 to {MAX_STEPS}"),
    "exact_steps": (lambda v: isinstance(v, bool), "true or false"),
    "min_taken_steps": (lambda v: _is_whole(v, 0, MAX_STEPS), f"a whole number from 0 to {MAX_STEPS}"),
    "cfg_scale": (lambda v: _is_number(v, 0.0, 50.0), "a number from 0 to 50"),
    "seed": (lambda v: _is_whole(v, 0, MAX_SEED, integral_floats=True), f"a whole number from 0 to {MAX_SEED}"),
    "sampler": (lambda v: isinstance(v, str) and v in SAMPLERS, "one of " + ", ".join(SAMPLERS)),
    "width": (_is_side, _SIDE_TEXT),
    "height": (_is_side, _SIDE_TEXT),
    "fit": (lambda v: isinstance(v, bool), "true or false"),
    "fit_box": (lambda v: isinstance(v, list) and len(v) == 2 and all(s is None or _is_side(s, MIN_SIDE) for s in v),
                f"[width, height], each null or a multiple of 8 from {MIN_SIDE} to {MAX_SIDE}"),
    "strength": (lambda v: _is_number(v, 0.0, 1.0), "a number from 0 to 1"),
    "mode": (lambda v: isinstance(v, str), "text such as img2img"),
    "with_variations": (lambda v: isinstance(v, list) and all(_is_pair(p) for p in v),
                        f"[[seed, weight], ...], seeds from 0 to {MAX_SEED}, weights from 0 to 1"),
    "contact_sheet_of": (lambda v: isinstance(v, list) and all(
        isinstance(n, str) and n and n.isprintable() and "/" not in n and "\\" not in n for n in v),
        "a list of output file names"),
    "model": (lambda v: isinstance(v, str) or (
        isinstance(v, dict) and isinstance(v.get("name"), str) and v["name"] != ""
        and (v.get("sha256") is None or isinstance(v["sha256"], str) and bool(_SHA256.fullmatch(v["sha256"])))),
        "{name, sha256}: the model's name and its file's SHA-256 (64 lowercase hex characters) or null"),
    "init_image": (lambda v: isinstance(v, dict), "an object naming the init image's id, sha256 and path"),
    "loras": (lambda v: isinstance(v, list) and len(v) <= MAX_LORAS and all(_is_lora_record(r) for r in v),
              f"[{{name, weight, sha256}}, ...]: at most {MAX_LORAS}, weights from {LORA_WEIGHT_RANGE[0]:g} to "
              f"{LORA_WEIGHT_RANGE[1]:g}, SHA-256s of 64 lowercase hex characters"),
}
_INIT_CHECKS = {
    "id": (lambda v: isinstance(v, str) and bool(UPLOAD_ID_PATTERN.fullmatch(v)), "16 lowercase hex characters"),
    "sha256": (lambda v: isinstance(v, str) and bool(_SHA256.fullmatch(v)), "64 lowercase hex characters"),
    "path": (lambda v: isinstance(v, str) and v != "" and "\0" not in v, "a file path"),
}


def check_metadata(meta) -> None:
    """Raise MalformedMetadata for the first field (of those `settings_from_metadata` and the
    generate command read) that does not hold what img2img studio writes there. An output's
    metadata comes from a file, so from anyone: check it before any of it is used."""
    if not isinstance(meta, dict):
        raise MalformedMetadata("img2img-studio", "a JSON object of settings")
    for checks, values, prefix in ((_FIELD_CHECKS, meta, ""), (_INIT_CHECKS, meta.get("init_image"), "init_image.")):
        if not isinstance(values, dict):
            continue
        for key, (test, expected) in checks.items():
            value = values.get(key)
            if value is not None and not test(value):
                raise MalformedMetadata(prefix + key, expected)


def _image_mode(meta: dict) -> bool:
    return meta.get("mode", "img2img") in _IMAGE_MODES


def recorded_init_image(meta: dict) -> dict | None:
    """The init image record (id, sha256, path) of an output made from one, else None."""
    init = meta.get("init_image")
    if _image_mode(meta) and isinstance(init, dict) and (init.get("path") or init.get("id")):
        return init
    return None


def settings_from_metadata(meta: dict) -> dict:
    """The settings that reproduce one saved output, from its metadata (the PNG's JSON).

    Each output's metadata is its reproducing form: `seed` and the full `with_variations` list
    give its noise, so a variation amount or iteration count does not carry over. Raises
    MalformedMetadata (a ValueError) for metadata img2img studio cannot have written.
    """
    check_metadata(meta)
    image_mode = _image_mode(meta)
    settings = {key: meta[key] for key in _STORED if meta.get(key) is not None}
    for key, value in requested_size(meta).items():  # a --fit box, or none (the native size)
        if value is None:
            settings.pop(key, None)
        else:
            settings[key] = value
    if not image_mode:
        settings.pop("strength", None)
    if isinstance(settings.get("seed"), float):
        settings["seed"] = int(settings["seed"])  # integral: checked
    variations = meta.get("with_variations") or ()
    if variations:
        settings["with_variations"] = tuple((int(seed), float(weight)) for seed, weight in variations)
    init = meta.get("init_image") or {}
    if image_mode and init.get("path"):
        settings["init_path"] = str(init["path"])
    if meta.get("loras"):  # as recorded; the generate command finds each file again (by SHA-256, then name)
        settings["loras"] = tuple((r["name"], float(r["weight"])) for r in meta["loras"])
    return settings

