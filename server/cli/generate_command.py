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
output exactly; switches given with it override its settings. The init image it names is used
only when its SHA-256 is the one the PNG records (or give one with -I). Outputs are saved as the
web studio saves them, with the same pixels for the same settings and model.
"""


def run_generate(ctx: click.Context) -> None:
    """The `generate` command: settings -> request -> Studio.run_job, as the web worker runs it."""
    from . import dream
    from ..engine import GenerationRequest

    given, cli = dream.settings_from_context(ctx)
    meta = _read_from(cli["from_output"]) if cli["from_output"] else {}
    settings = {**dream.settings_from_metadata(meta), **given}

    init_path = init_image = None
    if "init_path" in given:  # the person's own file: used as given
        init_path = _given_init_path(given["init_path"])
        init_image = _read_init_image(init_path, given=True)
    elif (recorded := dream.recorded_init_image(meta)) is not None:
        init_path, init_image = _recorded_init_image(recorded, cli)

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

    model = _chosen_model(cli, meta)
    load_bar = LoadBar()
    studio = Studio(Path(cli["outputs"]), model, cli["device"], announce=load_bar,
                    hints=Hints(cli["prediction_type"], cli["model_variant"]), models_dir=cli["models_dir"])
    settings["loras"] = _chosen_loras(studio, given, meta, cli, ctx)
    upload_id = None
    if init_image is not None:
        record = studio.uploads.save(init_image)
        upload_id = record.id
        stored = (meta.get("init_image") or {}).get("sha256")
        if stored and "init_path" in given and stored != record.sha256:
            _warn(f"{init_path} is not the image {cli['from_output']} was made from (its SHA-256 "
                  "differs), so the pixels will differ.")
    # What neither the switches nor --from's metadata set comes from the model's recommendations.
    # The LoRAs' recommended settings go over the model's (a few-step LoRA makes a few-step model).
    defaults, _files = studio.job_defaults(studio.models.selection.choice, settings["loras"])
    request = GenerationRequest.from_payload(dream.request_payload(settings, upload_id, preview),
                                             defaults=defaults)

    _quiet_library_progress_bars()
    try:
        studio.load()
    except Exception as exc:  # the loader's messages say what is wrong with the folder
        raise click.ClickException(f"Model failed to load: {exc.__cause__ or exc}") from None
    finally:
        load_bar.close()  # after Ctrl+C too, so the cursor comes back
    _warn_if_another_model(cli["from_output"], meta, studio.models.use())

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


def _chosen_model(cli: dict, meta: dict) -> str | None:
    """The model to run: --model (a name listed in --models-dir first, else a path); with --from
    and no --model, the model the output records when the models folder has it (the file whose
    SHA-256 the studio already knows to match, else the one listed under the recorded name), else
    the embedded default, with a warning that the pixels will differ."""
    from ..engine.loading import DEMO_MODEL_NAME
    from ..storage.metadata import model_record
    from ..storage.model_library import ModelLibrary, UnknownModel

    library = ModelLibrary(cli["models_dir"], Path(cli["outputs"]))
    given = cli["model"]
    if given is not None:
        try:
            listed = library.find(given) is not None
        except UnknownModel:  # not a name (an absolute path, say)
            listed = False
        if listed or Path(given).expanduser().exists():
            return given
        raise click.BadParameter(f"{given} does not exist: it is neither a model in {library.root.name}/ "
                                 "(--models-dir) nor a file or folder.", param_hint="'--model'")
    name, sha256 = model_record(meta)
    if name is None or name == DEMO_MODEL_NAME:
        return None
    found = library.find_recorded(name, sha256)
    if found is not None:
        click.echo(f"Using {library.root.name}/{found.name}, the model {cli['from_output']} was made with.", err=True)
        return found.name
    _warn(f"{cli['from_output']} was made with the model {name!r}"
          + (f" (SHA-256 {sha256[:10]}…)" if sha256 else "")
          + f", which is not in {library.root.name}/ (--models-dir); this run uses the embedded default model, "
          "so the pixels will differ. Put the model there, or give --model.")
    return None


def _chosen_loras(studio, given: dict, meta: dict, cli: dict, ctx) -> tuple:
    """(name, weight) pairs for the run: --lora switches (a name listed under loras/, else a file,
    registered under its file name), else the LoRAs --from's output records, each found in the models
    folder by SHA-256, then name; one that is missing is left out with a warning."""
    from ..worker.job_loras import LoraFlagError

    if "loras" in given:
        try:
            return studio.loras.register(given["loras"])
        except LoraFlagError as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param_hint="'--lora'") from None
    from ..storage.metadata import lora_records

    pairs = []
    folder = f"{studio.library.root.name}/loras/"
    for record, name in studio.loras.find_recorded(lora_records(meta)):
        sha = record.get("sha256")
        if name is None:
            _warn(f"{cli['from_output']} was made with the LoRA {record['name']!r} at weight {record['weight']:g}"
                  + (f" (SHA-256 {sha[:10]}…)" if sha else "") + f", which is not in {folder} (--models-dir); "
                  "this run goes without it, so the pixels will differ. Put it there, or give --lora.")
            continue
        if name != record["name"]:
            click.echo(f"Using {folder}{name} for the LoRA {record['name']!r} (the same SHA-256).", err=True)
        pairs.append((name, float(record["weight"])))
    return tuple(pairs)


def _warn_if_another_model(source: str | None, meta: dict, held) -> None:
    """Warn when the run's model is not the one --from's output records (by SHA-256 when both
    are known, else by name)."""
    from ..storage.metadata import model_record

    name, sha256 = model_record(meta)
    if source is None or name is None:
        return
    ran = held.identity()
    same = sha256 == ran["sha256"] if sha256 and ran["sha256"] else name == ran["name"]
    if not same:
        what = "a different file (its SHA-256 differs)" if name == ran["name"] else repr(ran["name"])
        _warn(f"{source} was made with the model {name!r}; this run uses {what}, so the pixels will differ.")


def _quiet_library_progress_bars() -> None:
    """transformers and diffusers draw their own bars while loading; ours says it already."""
    for name in ("transformers", "diffusers"):
        try:
            __import__(f"{name}.utils.logging", fromlist=["disable_progress_bar"]).disable_progress_bar()
        except (ImportError, AttributeError):
            pass


def _warn(message: str) -> None:
    click.secho(f"Warning: {message}", fg="yellow", err=True)


def _read_from(source: str) -> dict:
    """--from's metadata, checked: a PNG from anywhere must not get further than one line of
    error when its settings are not what img2img studio writes."""
    from . import dream
    from ..storage.store import OutputStore

    meta = OutputStore.read_metadata(Path(source))
    if not meta:
        raise click.ClickException(
            f"{source} holds no img2img studio settings; --from takes an output PNG saved by img2img studio.")
    try:
        dream.check_metadata(meta)
    except dream.MalformedMetadata as exc:
        raise click.ClickException(
            f"{source} has a malformed {exc.field!r} (expected {exc.expected}); it was not saved by "
            "img2img studio or was edited.") from None
    if meta.get("contact_sheet_of"):
        raise click.ClickException(
            f"{source} is a strength sweep's contact sheet; give --from one of its outputs: "
            + ", ".join(meta["contact_sheet_of"]) + ".")
    return meta


def _given_init_path(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.is_file():
        raise click.BadParameter(f"{text} does not exist or is not a file.", param_hint="'-I' / '--init-img'")
    return path


# An upload is a PNG of at most MAX_UPLOAD_MEGAPIXELS; no file near this size is one.
_MAX_INIT_BYTES = 512 * 1024 * 1024


def _recorded_init_image(recorded: dict, cli: dict):
    """(path, image) of the init image --from's metadata names, used only when the file's SHA-256
    is the recorded one: by upload id in the uploads folder beside the PNG, then in --outputs',
    then at the recorded path. The metadata comes from a file, so from anyone: its path may name
    any file at all, so each candidate is hashed first and decoded only after it matches (the
    same bytes that were hashed, so nothing can change between the two)."""
    import hashlib

    source = cli["from_output"]
    upload_id, digest, recorded_path = recorded.get("id"), recorded.get("sha256"), recorded.get("path")
    shown = f"{recorded_path!r}" if recorded_path else f"upload {upload_id}"  # repr: one line
    if not digest:
        raise click.ClickException(
            f"{source} records no SHA-256 for its init image ({shown}), so it cannot be checked; give "
            "the image with -I PATH.")
    candidates = []
    if upload_id:  # checked: 16 hex characters, so no separators or dots
        for folder in (Path(source).parent / "uploads", Path(cli["outputs"]) / "uploads"):
            candidates.append(folder / f"{upload_id}.png")
    if recorded_path:
        candidates.append(Path(recorded_path))
    for candidate in candidates:
        data = _regular_file_bytes(candidate)
        if data is not None and hashlib.sha256(data).hexdigest() == digest:
            return candidate, _decode_init_image(data, candidate, given=False)
    raise click.ClickException(
        f"The init image recorded in {source} ({shown}) is not on this machine or its SHA-256 differs "
        "from the one recorded; give the image with -I PATH.")


def _regular_file_bytes(path: Path) -> bytes | None:
    """A regular file's bytes, or None for anything else: missing, unreadable, a folder, a pipe
    or a device (opened without blocking, and checked once open), or too large to be an upload."""
    import os
    import stat

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except (OSError, ValueError):  # ValueError: an embedded NUL
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > _MAX_INIT_BYTES:
            return None
        with os.fdopen(fd, "rb", closefd=False) as file:
            data = file.read(_MAX_INIT_BYTES + 1)
        return data if len(data) <= _MAX_INIT_BYTES else None
    except OSError:
        return None
    finally:
        os.close(fd)


def _read_init_image(path: Path, given: bool):
    try:
        data = path.read_bytes()
    except OSError as exc:
        _init_image_error(f"{path} cannot be read: {exc.strerror or exc}", given)
    return _decode_init_image(data, path, given)


def _decode_init_image(data: bytes, path: Path, given: bool):
    from ..storage.images import ImageRejected, decode_upload

    try:
        return decode_upload(data)
    except ImageRejected as exc:
        _init_image_error(f"{path} cannot be used: {exc.message}", given)


def _init_image_error(message: str, given: bool):
    if given:
        raise click.BadParameter(message, param_hint="'-I' / '--init-img'")
    raise click.ClickException(message)


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
        from ..storage.metadata import dream_command

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
