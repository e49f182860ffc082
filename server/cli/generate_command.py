"""`img2img-studio generate`: settings from dream syntax or a saved output -> Studio.run_job.

The same Studio, engine and saving as the web worker, so the same settings give the same pixels;
progress bars on stderr, saved paths and their reproducing commands on stdout.
"""
from __future__ import annotations

import time
from pathlib import Path

import click

from .init_image import find_recorded_init_image, given_init_path, read_init_image
from .model_choice import chosen_loras, chosen_model, warn_if_another_model
from .terminal import LoadBar, StepProgress, quiet_library_progress_bars, warn

GENERATE_HELP = """Generate images from the command line, in InvokeAI's "dream" syntax.

\b
  img2img-studio generate "fire" -s10 -W384 -H384 -S1592514025 -I fire.png -f 0.7
  img2img-studio generate '"fire" -s10 -S42 -I fire.png -f 0.7'
  img2img-studio generate --from outputs/000012.123.png -s20

The prompt may be several words. A whole stored command line (the one printed after each
output, and kept in each output PNG) can be given as the one argument. --from re-runs a saved
output exactly; switches given with it override its settings. The init image it names is used
only when its SHA-256 is the one the PNG records (or give one with -I). Outputs are saved as the
web studio saves them, with the same pixels for the same settings and model.
"""


def run_generate(ctx: click.Context) -> None:
    """The `generate` command: settings -> request -> Studio.run_job, as the web worker runs it."""
    from . import dream
    from ..engine import GenerationRequest
    from .recorded_settings import recorded_init_image, settings_from_metadata

    given, cli = dream.settings_from_context(ctx)
    meta = _read_from(cli["from_output"]) if cli["from_output"] else {}
    settings = {**settings_from_metadata(meta), **given}

    init_path = init_image = None
    if "init_path" in given:  # the person's own file: used as given
        init_path = given_init_path(given["init_path"])
        init_image = read_init_image(init_path, given=True)
    elif (recorded := recorded_init_image(meta)) is not None:
        init_path, init_image = find_recorded_init_image(recorded, cli)

    intermediates = settings.get("save_intermediates", "off")
    # Previews are only drawn for saved intermediates; otherwise they would cost time unseen.
    preview = GenerationRequest.preview if intermediates == "preview" else "off"

    def validate(chosen: dict) -> None:  # before the model loads; the real upload id comes after
        GenerationRequest.from_payload(dream.request_payload(chosen, "0" * 16 if init_image else None, preview))

    try:
        validate(settings)
    except ValueError as exc:
        try:  # a file's own settings that no request takes: say whose they are, in one line
            validate({k: v for k, v in settings.items() if k not in given})
        except ValueError as own:
            raise click.ClickException(f"{cli['from_output']} holds settings that cannot be used: {own}") from None
        raise click.UsageError(str(exc), ctx) from None

    from ..engine.families import Hints
    from ..worker.studio import Studio

    model = chosen_model(cli, meta)
    load_bar = LoadBar()
    studio = Studio(Path(cli["outputs"]), model, cli["device"], announce=load_bar,
                    hints=Hints(cli["prediction_type"], cli["model_variant"]), models_dir=cli["models_dir"])
    settings["loras"] = chosen_loras(studio, given, meta, cli, ctx)
    upload_id = None
    if init_image is not None:
        record = studio.uploads.save(init_image)
        upload_id = record.id
        stored = (meta.get("init_image") or {}).get("sha256")
        if stored and "init_path" in given and stored != record.sha256:
            warn(f"{init_path} is not the image {cli['from_output']} was made from (its SHA-256 "
                 "differs), so the pixels will differ.")
    # What neither the switches nor --from's metadata set comes from the model's recommendations.
    # The LoRAs' recommended settings go over the model's (a few-step LoRA makes a few-step model).
    defaults, _files = studio.job_defaults(studio.models.selection.choice, settings["loras"])
    request = GenerationRequest.from_payload(dream.request_payload(settings, upload_id, preview),
                                             defaults=defaults)

    quiet_library_progress_bars()
    try:
        studio.load()
    except Exception as exc:  # the loader's messages say what is wrong with the folder
        raise click.ClickException(f"Model failed to load: {exc.__cause__ or exc}") from None
    finally:
        load_bar.close()  # after Ctrl+C too, so the cursor comes back
    warn_if_another_model(cli["from_output"], meta, studio.models.use())

    progress = StepProgress(studio.outputs_dir)
    job = _cli_job(request, progress.poll)
    started = time.perf_counter()
    try:
        result = studio.run_job(job, progress.emit)
    except ValueError as exc:  # e.g. an init image too large to use without --fit
        raise click.ClickException(str(exc)) from None
    finally:
        progress.close(complete=False)  # after Ctrl+C too, so the cursor comes back
    outputs = result.get("outputs") or [result]
    for output in outputs:  # those not already reported by their job_output event
        progress.report(output)
    count = f"{len(outputs)} outputs" if len(outputs) > 1 else "1 output"
    click.echo(f"Done: {count} in {time.perf_counter() - started:.1f} s.", err=True)


def _read_from(source: str) -> dict:
    """--from's metadata, checked: a PNG from anywhere must not get further than one line of
    error when its settings are not what img2img studio writes."""
    from ..storage.store import OutputStore
    from .recorded_settings import MalformedMetadata, check_metadata

    meta = OutputStore.read_metadata(Path(source))
    if not meta:
        raise click.ClickException(
            f"{source} holds no img2img studio settings; --from takes an output PNG saved by img2img studio.")
    try:
        check_metadata(meta)
    except MalformedMetadata as exc:
        raise click.ClickException(
            f"{source} has a malformed {exc.field!r} (expected {exc.expected}); it was not saved by "
            "img2img studio or was edited.") from None
    if meta.get("contact_sheet_of"):
        raise click.ClickException(
            f"{source} is a strength sweep's contact sheet; give --from one of its outputs: "
            + ", ".join(meta["contact_sheet_of"]) + ".")
    return meta


def _cli_job(request, on_poll):
    """A worker Job for the CLI: never cancelled (Ctrl+C interrupts instead). The engine asks
    `cancelled()` once before each step, which also drives the progress bar when no
    previews are drawn."""
    import secrets

    from ..worker.jobs import Job

    class PollingFlag:
        def is_set(self) -> bool:
            on_poll()
            return False

        def set(self) -> None:
            pass

    return Job(f"cli-{secrets.token_hex(3)}", "cli", request, PollingFlag())
