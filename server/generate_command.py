"""`img2img-studio generate`: settings from dream syntax or a saved output -> Studio.run_job.

The same Studio, engine and saving as the web worker, so the same settings give the same pixels;
progress bars on stderr, saved paths and their reproducing commands on stdout.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import click

GENERATE_HELP = """Generate images from the command line, in InvokeAI's "dream" syntax.

\b
  img2img-studio generate "fire" -s10 -W384 -H384 -S1592514025 -I fire.png -f 0.7
  img2img-studio generate '"fire" -s10 -S42 -I fire.png -f 0.7'
  img2img-studio generate --from outputs/000012.123.png -s20

The prompt may be several words. A whole stored command line (the one printed after each
output, and kept in each output PNG) can be given as the one argument. --from re-runs a saved
output exactly; switches given with it override its settings. Outputs are saved as the web
studio saves them, with the same pixels for the same settings and model.
"""


def run_generate(ctx: click.Context) -> None:
    """The `generate` command: settings -> request -> Studio.run_job, as the web worker runs it."""
    from . import dream
    from .engine import GenerationRequest
    from .store import OutputStore

    given, cli = dream.settings_from_context(ctx)
    meta = {}
    if cli["from_output"]:
        meta = OutputStore.read_metadata(Path(cli["from_output"]))
        if not meta:
            raise click.ClickException(
                f"{cli['from_output']} holds no img2img studio settings; --from takes an output PNG "
                "saved by img2img studio.")
        if meta.get("contact_sheet_of"):
            raise click.ClickException(
                f"{cli['from_output']} is a strength sweep's contact sheet; give --from one of its outputs: "
                + ", ".join(meta["contact_sheet_of"]) + ".")
    settings = {**dream.settings_from_metadata(meta), **given}

    init_path = None
    if settings.get("init_path"):
        init_path = _init_image_path(settings["init_path"], "init_path" in given, meta, cli)
    init_image = _read_init_image(init_path, "init_path" in given) if init_path else None

    intermediates = settings.get("save_intermediates", "off")
    # Previews are only drawn for saved intermediates; otherwise they would cost time unseen.
    preview = GenerationRequest.preview if intermediates == "preview" else "off"
    try:  # validate before the model loads; the real upload id comes after
        GenerationRequest.from_payload(
            dream.request_payload(settings, "0" * 16 if init_image else None, preview))
    except ValueError as exc:
        raise click.UsageError(str(exc), ctx) from None

    from .studio import Studio

    load_bar = LoadBar()
    studio = Studio(Path(cli["outputs"]), cli["model"], cli["device"], announce=load_bar)
    upload_id = None
    if init_image is not None:
        record = studio.uploads.save(init_image)
        upload_id = record.id
        stored = (meta.get("init_image") or {}).get("sha256")
        if stored and "init_path" not in given and stored != record.sha256:
            _warn(f"{init_path} is not the image {cli['from_output']} was made from (its SHA-256 "
                  "differs), so the pixels will differ.")
    # What neither the switches nor --from's metadata set comes from the model's recommendations.
    request = GenerationRequest.from_payload(dream.request_payload(settings, upload_id, preview),
                                             defaults=studio.model_defaults)

    _quiet_library_progress_bars()
    try:
        studio.load()
    except Exception as exc:  # the loader's messages say what is wrong with the folder
        raise click.ClickException(f"Model failed to load: {exc}") from None
    finally:
        load_bar.close()  # after Ctrl+C too, so the cursor comes back
    if meta.get("model") and meta["model"] != studio.model.name:
        _warn(f"{cli['from_output']} was made with the model {meta['model']!r}; this run uses "
              f"{studio.model.name!r}, so the pixels will differ.")

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


def _quiet_library_progress_bars() -> None:
    """transformers and diffusers draw their own bars while loading; ours says it already."""
    for name in ("transformers", "diffusers"):
        try:
            __import__(f"{name}.utils.logging", fromlist=["disable_progress_bar"]).disable_progress_bar()
        except (ImportError, AttributeError):
            pass


def _warn(message: str) -> None:
    click.secho(f"Warning: {message}", fg="yellow", err=True)


def _init_image_path(text: str, given: bool, meta: dict, cli: dict) -> Path:
    """The init image file. One from --from's metadata may have been saved relative to another
    working directory; the upload then is still in the outputs folder, under its id."""
    path = Path(text).expanduser()
    if path.is_file():
        return path
    if given:
        raise click.BadParameter(f"{text} does not exist or is not a file.", param_hint="'-I' / '--init-img'")
    upload_id = (meta.get("init_image") or {}).get("id")
    if upload_id:
        origin = Path(cli["from_output"]).parent
        for folder in (origin / "uploads", Path(cli["outputs"]) / "uploads"):
            candidate = folder / f"{upload_id}.png"
            if candidate.is_file():
                return candidate
    raise click.ClickException(
        f"The init image of {cli['from_output']}, {text}, is gone (looked for it in the uploads "
        "folders too). Give one with -I.")


def _read_init_image(path: Path, given: bool):
    from .images import ImageRejected, decode_upload

    try:
        return decode_upload(path.read_bytes())
    except ImageRejected as exc:
        message = f"{path} cannot be used: {exc.message}"
    except OSError as exc:
        message = f"{path} cannot be read: {exc.strerror or exc}"
    if given:
        raise click.BadParameter(message, param_hint="'-I' / '--init-img'")
    raise click.ClickException(message)


def _cli_job(request, on_poll):
    """A worker Job for the CLI: never cancelled (Ctrl+C interrupts instead). The engine asks
    `cancelled()` once before each step, which also drives the progress bar when no
    previews are drawn."""
    import secrets

    from .jobs import Job

    class PollingFlag:
        def is_set(self) -> bool:
            on_poll()
            return False

        def set(self) -> None:
            pass

    return Job(f"cli-{secrets.token_hex(3)}", "cli", request, PollingFlag())


class LoadBar:
    """Model loading progress (Studio's announce callback) as a progress bar on stderr."""

    def __init__(self):
        self.bar = None
        self.message = ""
        self.shown = 0

    def __call__(self, status) -> None:
        if status.status == "loading":
            if self.bar is None:
                self.bar = click.progressbar(length=100, label=f"Loading {status.model}", file=sys.stderr,
                                             item_show_func=lambda _: self.message)
                self.bar.__enter__()
            self.message = status.message
            target = int(status.progress * 100)
            self.bar.update(max(0, target - self.shown))
            self.shown = max(self.shown, target)
        else:
            self.close(complete=status.status == "ready")

    def close(self, complete: bool = False) -> None:
        if self.bar is not None:
            if complete:
                self.bar.update(100 - self.shown)
            self.bar.__exit__(None, None, None)
            self.bar = None


class StepProgress:
    """A progress bar per output from the job's events; prints each saved output as it comes."""

    def __init__(self, outputs_dir: Path):
        self.outputs_dir = outputs_dir
        self.bar = None
        self.taken = self.done = self.polls = 0
        self.reported: set[str] = set()

    def emit(self, event: str, payload: dict, latest: bool = False) -> None:
        if event == "job_plan":
            self.close()
            self.taken, self.done, self.polls = payload["taken"], 0, 0
            items = payload.get("items") or 1
            label = "Generating" if items == 1 else f"Generating {payload.get('item', 0) + 1}/{items}"
            label += f" ({payload['taken']} of {payload['steps_total']} steps)"
            self.bar = click.progressbar(length=max(self.taken, 1), label=label, file=sys.stderr)
            self.bar.__enter__()
        elif event == "job_step" and payload.get("index", -1) >= 0:
            self._advance(payload["index"] + 1)
        elif event == "job_output":
            self.close()
            self.report(payload)

    def poll(self) -> None:
        """The engine checks for cancel before each step and before decoding."""
        if self.bar is not None:
            self.polls += 1
            self._advance(self.polls - 1)

    def _advance(self, done: int) -> None:
        done = min(done, self.taken)
        if self.bar is not None and done > self.done:
            self.bar.update(done - self.done)
            self.done = done

    def close(self, complete: bool = True) -> None:
        if self.bar is not None:
            if complete:
                self._advance(self.taken)
            self.bar.__exit__(None, None, None)
            self.bar = None

    def report(self, output: dict) -> None:
        """The saved file and the command that reproduces it (stdout, one output each)."""
        from .metadata import dream_command

        if output["name"] in self.reported:
            return
        self.reported.add(output["name"])
        metadata = output.get("metadata") or {}
        for warning in metadata.get("warnings") or ():
            _warn(warning)
        click.echo(str(self.outputs_dir / output["name"]))
        click.echo(f"  img2img-studio generate {dream_command(metadata)}")
        if output.get("intermediates_dir"):
            click.echo(f"Intermediates saved in {output['intermediates_dir']}", err=True)
