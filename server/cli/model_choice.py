"""Which model and LoRAs a `generate` run uses: the --model and --lora switches, else what
--from's output records, found again in the models folder (by SHA-256, then name); a warning
whenever the pixels will differ from the recorded output's."""
from __future__ import annotations

from pathlib import Path

import click

from .terminal import warn


def chosen_model(cli: dict, meta: dict) -> str | None:
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
    warn(f"{cli['from_output']} was made with the model {name!r}"
         + (f" (SHA-256 {sha256[:10]}…)" if sha256 else "")
         + f", which is not in {library.root.name}/ (--models-dir); this run uses the embedded default model, "
         "so the pixels will differ. Put the model there, or give --model.")
    return None


def chosen_loras(studio, given: dict, meta: dict, cli: dict, ctx) -> tuple:
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
            warn(f"{cli['from_output']} was made with the LoRA {record['name']!r} at weight {record['weight']:g}"
                 + (f" (SHA-256 {sha[:10]}…)" if sha else "") + f", which is not in {folder} (--models-dir); "
                 "this run goes without it, so the pixels will differ. Put it there, or give --lora.")
            continue
        if name != record["name"]:
            click.echo(f"Using {folder}{name} for the LoRA {record['name']!r} (the same SHA-256).", err=True)
        pairs.append((name, float(record["weight"])))
    return tuple(pairs)


def warn_if_another_model(source: str | None, meta: dict, held) -> None:
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
        warn(f"{source} was made with the model {name!r}; this run uses {what}, so the pixels will differ.")
