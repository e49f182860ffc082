"""The InvokeAI "dream" syntax: `"a prompt" -s10 -W384 -H384 -S42 -I sketch.png -f 0.7`.

Pure functions that turn a command line, a stored one-line command, or an output's metadata
into a *settings* dict, which `request_payload` turns into a GenerationRequest payload. The
`generate` command in cli.py is built from `generation_options` here, so the CLI and
`parse_argv` share one parser (click's) and one set of error messages.

A settings dict holds only what was given: GenerationRequest field names (prompt, steps,
seed, with_variations, ...) plus `init_path`, the init image's file path. Missing keys take
GenerationRequest's defaults. The CLI-only switches (--model, --models-dir, --outputs, --device, --from)
are not settings; `parse_argv` returns them under "cli".
"""
from __future__ import annotations

import math
import re
import shlex
from dataclasses import fields

import click
from click.core import ParameterSource

from ..engine.plan import MAX_STEPS
from ..engine.request import (INTERMEDIATE_DECODERS, LORA_WEIGHT_RANGE, MAX_BATCH, MAX_ITERATIONS, MAX_LORAS,
                             MAX_SEED, MAX_SIDE, MIN_SIDE, GenerationRequest)
from ..engine.samplers import SAMPLERS
from ..storage.metadata import format_variations, requested_size
from ..settings import SETTINGS, DeviceName, LoraSpec
from ..storage.uploads import ID_PATTERN as UPLOAD_ID_PATTERN

# Output modes that start from an init image (and so have a strength); see metadata.py.
_IMAGE_MODES = ("img2img", "inpaint")
REQUEST_FIELDS = tuple(f.name for f in fields(GenerationRequest))
# Settings a stored line records: what `settings_from_metadata` reads back from an output.
_STORED = ("prompt", "negative_prompt", "steps", "exact_steps", "min_taken_steps", "cfg_scale", "seed", "sampler",
           "width", "height", "fit", "strength")
CLI_ONLY = ("model", "models_dir", "prediction_type", "model_variant", "outputs", "device", "from_output")


def parse_variations(text: str) -> tuple[tuple[int, float], ...]:
    """`-V` as InvokeAI writes it: "seed:weight,seed:weight" -> ((seed, weight), ...)."""
    pairs = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        seed_text, sep, weight_text = part.partition(":")
        try:
            seed, weight = int(seed_text), float(weight_text)
        except ValueError:
            seed = weight = None
        if not sep or seed is None or not 0 <= seed <= MAX_SEED or not 0.0 <= weight <= 1.0:
            raise ValueError(f"{part!r} is not seed:weight (a seed from 0 to {MAX_SEED}, a weight from 0 to 1). "
                             "Write variations as seed:weight,seed:weight, e.g. 1234:0.1,5678:0.2.")
        pairs.append((seed, weight))
    if not pairs:
        raise ValueError("give at least one seed:weight pair, e.g. 1234:0.1.")
    return tuple(pairs)


def _variations_option(ctx, param, value):
    if value is None:
        return None
    try:
        return parse_variations(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


def _side_option(ctx, param, value):
    if value is not None and value % 8:
        raise click.BadParameter(f"{value} is not a multiple of 8 (try {value // 8 * 8}).", ctx=ctx, param=param)
    return value


def _setting_help(name: str) -> str:
    return next(s.help for s in SETTINGS if s.name == name)


def generation_options(func):
    """The prompt argument and every dream switch, as click parameters on `func`."""
    options = [
        click.argument("prompt", nargs=-1),
        click.option("-s", "--steps", type=click.IntRange(1, MAX_STEPS),
                     help="Steps (the schedule length; with --exact-steps, the steps taken). "
                          "Default: the model's recommended steps, else 20."),
        click.option("-S", "--seed", type=click.IntRange(0, MAX_SEED), help="Seed. Default: a random one."),
        click.option("-W", "--width", type=click.IntRange(MIN_SIDE, MAX_SIDE), callback=_side_option,
                     help="Width, a multiple of 8 (txt2img, or the box for --fit). Default: the model's native size."),
        click.option("-H", "--height", type=click.IntRange(MIN_SIDE, MAX_SIDE), callback=_side_option,
                     help="Height, a multiple of 8 (like -W)."),
        click.option("-C", "--cfg-scale", type=click.FloatRange(0, 50),
                     help="Classifier-free guidance scale. Default: the model's recommended scale, else 7.5."),
        click.option("-A", "--sampler", type=click.Choice(SAMPLERS),
                     help="Sampler. Default: the model's recommended sampler, else k_lms."),
        click.option("-I", "--init-img", "init_path", type=click.Path(dir_okay=False),
                     help="Init image file: img2img. Without it: txt2img."),
        click.option("-f", "--strength", type=click.FloatRange(0, 1),
                     help="How much of the init image to repaint, 0 to 1. Default: 0.75."),
        click.option("--fit/--no-fit", default=None,
                     help="Shrink the init image to fit inside -W x -H, keeping its aspect ratio."),
        click.option("-v", "--variation-amount", type=click.FloatRange(0, 1),
                     help="Make a variation of the seed's image: 0 (none) to 1 (a new image)."),
        click.option("-V", "--with-variations", type=str, callback=_variations_option, metavar="SEED:WEIGHT,...",
                     help="Variations to apply first, as seed:weight,seed:weight (reproduces a variation)."),
        click.option("-n", "--iterations", type=click.IntRange(1, MAX_ITERATIONS),
                     help="How many outputs to make, each starting from the one before and saved with its own "
                          "reproducing command. Default: 1."),
        click.option("-b", "--batch-size", type=click.IntRange(1, MAX_BATCH),
                     help="How many independent takes to make, all from the same init image, with seeds -S, -S+1, "
                          "... (with -v, variation seeds), each saved with its own reproducing command. Default: 1."),
        click.option("--exact-steps/--no-exact-steps", default=None,
                     help="Take exactly -s steps whatever the strength (img2img)."),
        click.option("--min-taken-steps", type=click.IntRange(0, MAX_STEPS), metavar="N",
                     help="Take at least N steps (img2img): when the strength would skip more, the total is raised "
                          "until N are taken. 0: off. Ignored with --exact-steps. Default: the model's "
                          "recommendation, else 0."),
        click.option("--negative", "negative_prompt", metavar="TEXT", help="Negative prompt."),
        click.option("--save-intermediates", type=click.Choice(INTERMEDIATE_DECODERS),
                     help="Also save each step's image: decoded by the VAE, or by the preview decoder. Default: off."),
        click.option("--lora", "loras", multiple=True, type=LoraSpec(), metavar="NAME-or-PATH[:WEIGHT]",
                     help="A LoRA to apply (repeatable, in order): a name listed under loras/ in --models-dir, else "
                          "a .safetensors file's path; the weight (-4 to 4) is 1 when left out. With --from, given "
                          "--lora switches replace the output's LoRAs."),
        click.option("--from", "from_output", type=click.Path(exists=True, dir_okay=False),
                     help="Re-run a saved output's settings (read from its PNG); other switches override them."),
        click.option("--model", default=None, metavar="NAME-or-PATH",
                     help=_setting_help("model").replace("to start with", "to run") + " With --from and no --model: "
                          "the model the output records, when the models folder has it."),
        click.option("--models-dir", default="models", show_default=True, help=_setting_help("models_dir")),
        click.option("--prediction-type", default="auto", show_default=True,
                     type=click.Choice(next(s.choices for s in SETTINGS if s.name == "prediction_type")),
                     help=_setting_help("prediction_type")),
        click.option("--model-variant", default="auto", show_default=True,
                     type=click.Choice(next(s.choices for s in SETTINGS if s.name == "model_variant")),
                     help=_setting_help("model_variant")),
        click.option("--outputs", default="outputs", show_default=True, help=_setting_help("outputs")),
        click.option("--device", default="auto", show_default=True, type=DeviceName(), help=_setting_help("device")),
    ]
    for option in reversed(options):
        func = option(func)
    return func


class DreamCommand(click.Command):
    """A click command that also takes a whole dream line as its one argument."""

    def parse_args(self, ctx, args):
        return super().parse_args(ctx, expand_line(args))


@click.command(add_help_option=False)
@generation_options
def _parser(**_params):
    """Parses only: `parse_argv` and `parse_line` use it without running anything."""


def _option_names() -> tuple[set[str], set[str]]:
    """(switches that take a value, switches that do not)."""
    valued, flags = set(), set()
    for param in _parser.params:
        if isinstance(param, click.Option):
            (flags if param.is_flag else valued).update(param.opts + param.secondary_opts)
    return valued, flags


VALUE_SWITCHES, FLAG_SWITCHES = _option_names()


def _is_switch(token: str) -> bool:
    if token in VALUE_SWITCHES or token in FLAG_SWITCHES:
        return True
    if token.startswith("--"):
        return token.split("=", 1)[0] in VALUE_SWITCHES
    return len(token) > 2 and token[:2] in VALUE_SWITCHES  # -s10: a short switch with its value attached


def _positional_indexes(args: list[str]) -> list[int]:
    """Where the positional tokens are, walking the switches as click's parser does."""
    found, i = [], 0
    while i < len(args):
        token = args[i]
        if token == "--":
            return found + list(range(i + 1, len(args)))
        if token.startswith("-") and token != "-":
            if token in VALUE_SWITCHES:
                i += 1  # the value is the next token
        else:
            found.append(i)
        i += 1
    return found


def expand_line(args: list[str]) -> list[str]:
    """A whole dream line given as the one positional argument -> its tokens, then the rest.

    `generate '"fire" -s10 -S42'` is parsed as `generate fire -s10 -S42`. Switches given outside
    the line come after it, so they win. A single argument that is just a prompt is left alone:
    one with no switches in it, unbalanced quotes (as in "it's") or words after its switches
    (a line has its prompt first). After `--` nothing is expanded.
    """
    args = list(args)
    positional = _positional_indexes(args)
    if len(positional) != 1 or "--" in args:
        return args
    index = positional[0]
    try:
        tokens = shlex.split(args[index])
    except ValueError:
        return args
    switches = [i for i, token in enumerate(tokens) if _is_switch(token)]
    if not switches or any(i > switches[0] for i in _positional_indexes(tokens)):
        return args
    return tokens + args[:index] + args[index + 1:]


def settings_from_context(ctx: click.Context) -> tuple[dict, dict]:
    """(settings, cli options) from a parsed context, keeping only what the command line gave."""
    params = ctx.params
    settings = {}
    for name, value in params.items():
        if name in CLI_ONLY or ctx.get_parameter_source(name) != ParameterSource.COMMANDLINE:
            continue
        if name == "prompt":
            value = " ".join(value)
        settings[name] = value
    cli = {name: params[name] for name in CLI_ONLY if name in params}
    return settings, cli


def parse_argv(argv: list[str]) -> tuple[dict, dict]:
    """argv after `generate` -> (settings, cli options), as the CLI reads them (a whole line as
    the one argument included). Raises click.UsageError (a BadParameter or NoSuchOption, say)
    with the message the CLI would print."""
    ctx = _parser.make_context("generate", expand_line(argv))
    return settings_from_context(ctx)


def parse_line(line: str) -> dict:
    """A stored dream line (as `dream_command` writes it) -> settings."""
    return settings_from_context(_parser.make_context("generate", shlex.split(line)))[0]


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


def with_defaults(settings: dict) -> dict:
    """Every GenerationRequest field (defaults where not set) plus init_path."""
    full = dict(GenerationRequest().to_dict(), init_path=None)
    full.update(settings)
    return full


def request_payload(settings: dict, init_image: str | None, preview: str = "off") -> dict:
    """A GenerationRequest.from_payload dict: the settings, with the init image as an upload id."""
    payload = {k: v for k, v in settings.items() if k in REQUEST_FIELDS and k != "init_image"}
    if isinstance(payload.get("with_variations"), tuple):
        payload["with_variations"] = [list(pair) for pair in payload["with_variations"]]
    payload["init_image"] = init_image
    payload["preview"] = preview
    return payload


__all__ = ["DreamCommand", "MalformedMetadata", "check_metadata", "expand_line", "format_variations", "generation_options", "parse_argv",
           "parse_line", "parse_variations", "recorded_init_image", "request_payload", "settings_from_context",
           "settings_from_metadata", "with_defaults"]
