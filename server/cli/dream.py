"""The InvokeAI "dream" syntax: `"a prompt" -s10 -W384 -H384 -S42 -I sketch.png -f 0.7`.

Pure functions that turn a command line or a stored one-line command into a *settings* dict,
which `request_payload` turns into a GenerationRequest payload (an output's metadata becomes one
in recorded_settings.py). The `generate` command (cli/__init__.py) is built from
`generation_options` here, so the CLI and `parse_argv` share one parser (click's) and one set of
error messages.

A settings dict holds only what was given: GenerationRequest field names (prompt, steps,
seed, with_variations, ...) plus `init_path`, the init image's file path. Missing keys take
GenerationRequest's defaults. The CLI-only switches (--model, --models-dir, --outputs, --device, --from)
are not settings; `parse_argv` returns them under "cli".
"""
from __future__ import annotations

import shlex
from dataclasses import fields

import click
from click.core import ParameterSource

from ..engine.plan import MAX_STEPS
from ..engine.request import (INTERMEDIATE_DECODERS, MAX_BATCH, MAX_ITERATIONS, MAX_SEED, MAX_SIDE, MIN_SIDE,
                             GenerationRequest)
from ..engine.samplers import SAMPLERS
from ..storage.metadata import format_variations
from ..settings import SETTINGS, DeviceName, LoraSpec

REQUEST_FIELDS = tuple(f.name for f in fields(GenerationRequest))
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


__all__ = ["DreamCommand", "expand_line", "format_variations", "generation_options", "parse_argv", "parse_line",
           "parse_variations", "request_payload", "settings_from_context", "with_defaults"]
