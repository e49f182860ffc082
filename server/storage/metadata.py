"""Text forms of one output's metadata dict, for PNG chunks and for people.

The metadata dict is what the engine records about a finished image (prompt, steps,
strength, seed, ...). Extra keys are ignored and optional ones may be missing, so these
functions also work on metadata written by older versions.
"""

from __future__ import annotations

import json
import shlex

# Modes that start from an init image, and so have a denoising strength.
_IMAGE_MODES = ("img2img", "inpaint")


def a1111_parameters(meta: dict) -> str:
    """The AUTOMATIC1111 "parameters" text, which many image viewers and tools can parse."""
    loras = lora_records(meta)
    # A1111 reads LoRAs from the prompt: `<lora:alias:weight>`, alias the file name without extension.
    tags = " ".join(f"<lora:{_lora_alias(r['name'])}:{_number(r['weight'])}>" for r in loras)
    lines = [" ".join(part for part in (str(meta.get("prompt", "")), tags) if part)]
    negative = meta.get("negative_prompt")
    if negative:
        lines.append(f"Negative prompt: {negative}")

    # A1111's img2img takes int(Steps × strength) steps, so its "Steps" is our schedule
    # length, not the number the user typed when exact_steps was on.
    steps = meta.get("steps_total", meta.get("steps"))
    fields = [
        ("Steps", steps),
        ("Sampler", meta.get("sampler")),
        ("CFG scale", meta.get("cfg_scale")),
        ("Seed", meta.get("seed")),
        ("Size", _size(meta)),
    ]
    name, sha256 = model_record(meta)
    fields.append(("Model hash", sha256[:10] if sha256 else None))  # A1111's short form of the file's SHA-256
    fields.append(("Model", name.rsplit("/", 1)[-1].removesuffix(_suffix(name)) if name else None))
    if meta.get("mode", "img2img") in _IMAGE_MODES:
        fields.append(("Denoising strength", meta.get("strength")))
    # As A1111's built-in Lora extension writes it (extensions-builtin/Lora/extra_networks_lora.py):
    # `Lora hashes: "alias: shorthash, …"`, alias without ":" and ",", shorthash the first 12 hex of
    # its hash of the file's tensor bytes (job_loras.JobLoras.a1111_hash); quoted as its values are.
    hashes = [f"{_lora_alias(r['name']).replace(':', '').replace(',', '')}: {r['a1111_hash']}"
              for r in loras if isinstance(r.get("a1111_hash"), str) and r["a1111_hash"]]
    fields.append(("Lora hashes", ", ".join(hashes) or None))
    lines.append(", ".join(f"{key}: {_a1111_value(value)}" for key, value in fields
                           if value is not None and value != ""))
    return "\n".join(lines)


def model_record(meta: dict) -> tuple[str | None, str | None]:
    """(name, sha256) of the model an output records: `{name, sha256}`, or a bare name as
    outputs made before models could be switched recorded it."""
    model = meta.get("model")
    if isinstance(model, dict):
        name, sha256 = model.get("name"), model.get("sha256")
        return (name if isinstance(name, str) else None), (sha256 if isinstance(sha256, str) else None)
    return (model if isinstance(model, str) else None), None


def lora_records(meta: dict) -> list[dict]:
    """The LoRAs an output records ([{name, weight, sha256, …}]); [] for outputs made without (or
    before) LoRAs, and entries that are not {name, weight} are left out."""
    loras = meta.get("loras")
    if not isinstance(loras, list):
        return []
    return [r for r in loras if isinstance(r, dict) and isinstance(r.get("name"), str)
            and isinstance(r.get("weight"), (int, float)) and not isinstance(r.get("weight"), bool)]


def _lora_alias(name: str) -> str:
    """A1111's name for a LoRA in `<lora:…>`: the file name without folders or extension."""
    base = name.rsplit("/", 1)[-1]
    return base[: -len(".safetensors")] if base.lower().endswith(".safetensors") else base


def _suffix(name: str) -> str:
    for suffix in (".safetensors", ".ckpt", ".pt", ".pth"):
        if name.lower().endswith(suffix):
            return name[-len(suffix):]
    return ""


def dream_command(meta: dict) -> str:
    """The one-line InvokeAI "dream" command that reproduces this output.

    `-s` is the step count the user asked for; with `--exact-steps` that is the number of
    steps taken, otherwise the schedule length (InvokeAI's own meaning), which
    `--min-taken-steps` may have raised when the run was planned (the same plan again). `-V` lists the
    variations applied to the seed's noise (`with_variations`, the output's full list), so the
    line reproduces this one output; `-v` and `-n`, which make new outputs, are never written.
    """
    parts = [_quote_prompt(str(meta.get("prompt", "")))]
    for flag, key in (("-s", "steps"), ("-W", "width"), ("-H", "height"), ("-C", "cfg_scale")):
        value = requested_size(meta).get(key, meta.get(key))
        if value is not None:
            parts.append(f"{flag}{_number(value)}")
    if meta.get("sampler"):
        parts += ["-A", shlex.quote(str(meta["sampler"]))]
    if meta.get("seed") is not None:
        parts.append(f"-S{int(meta['seed'])}")
    if meta.get("with_variations"):
        try:
            parts += ["-V", format_variations(meta["with_variations"])]
        except (TypeError, ValueError):
            pass  # not [[seed, weight], ...]: leave it out rather than fail the save

    init = meta.get("init_image") or {}
    if init.get("path") and meta.get("mode", "img2img") in _IMAGE_MODES:
        parts += ["-I", shlex.quote(str(init["path"]))]
        if meta.get("strength") is not None:
            parts += ["-f", _number(meta["strength"])]
    if meta.get("fit"):
        parts.append("--fit")
    if meta.get("exact_steps"):
        parts.append("--exact-steps")
    min_taken = meta.get("min_taken_steps")
    if isinstance(min_taken, int) and not isinstance(min_taken, bool) and min_taken > 0:
        parts.append(f"--min-taken-steps {min_taken}")
    if meta.get("negative_prompt"):
        parts += ["--negative", _quote_prompt(str(meta["negative_prompt"]))]
    for record in lora_records(meta):
        parts += ["--lora", shlex.quote(f"{record['name']}:{_number(record['weight'])}")]
    return " ".join(parts)


def format_variations(pairs) -> str:
    """[[seed, weight], ...] -> "seed:weight,seed:weight", InvokeAI's `-V` syntax."""
    return ",".join(f"{int(seed)}:{_number(float(weight))}" for seed, weight in pairs)


def requested_size(meta: dict) -> dict:
    """With --fit, -W/-H name the box the init image was shrunk into, not the output's size
    (re-fitting into the output's own size can shrink it again). `fit_box` records the box."""
    box = meta.get("fit_box")
    if meta.get("fit") and isinstance(box, (list, tuple)) and len(box) == 2:
        return {"width": box[0], "height": box[1]}
    return {}


def _size(meta: dict) -> str | None:
    if meta.get("width") is None or meta.get("height") is None:
        return None
    return f"{meta['width']}x{meta['height']}"


def _number(value) -> str:
    """7.0 -> "7", 0.7 -> "0.7": how people write these numbers, exact for floats."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _a1111_value(value) -> str:
    # A1111 JSON-quotes values that would break its "key: value, ..." parsing.
    text = _number(value) if isinstance(value, (int, float)) else str(value)
    if any(ch in text for ch in ",\n:"):
        return json.dumps(text, ensure_ascii=False)
    return text


def _quote_prompt(text: str) -> str:
    """Double quotes as InvokeAI users write them when that is safe, else shlex.quote.

    Either way `shlex.split` gives back exactly `text`, and so does a POSIX shell.
    """
    if not any(ch in text for ch in '"\\$`!'):
        return f'"{text}"'
    return shlex.quote(text)
