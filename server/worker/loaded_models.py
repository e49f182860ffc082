"""The models in memory, the one new jobs use, and switching between them on the worker.

- A *choice* names a model: one listed in the models folder, the `--model` path the studio
  started with, or the embedded demo. A job records its choice when it is queued: the model it
  named, else the one selected then, so a later switch never changes what a queued job runs on.
- The *selection* is what a job that names no model gets (the page's picker). `select_model`
  changes it at once, with the new model's recommended settings read from its file (no weights),
  and queues the load behind the jobs already waiting, so they finish on the model they were
  queued for and the jobs queued after wait for the new one.
- Loading runs on the worker only, with the same progress reports as start-up. At most
  `--keep-models` models stay in memory (least recently used goes first); a freed model's
  references are dropped, then `gc.collect()` and, on CUDA, `torch.cuda.empty_cache()`. The old
  model stays in memory until the new one has loaded, so a failed load changes nothing: the
  previous model keeps running, `model_status` says "ready" with it again, and a `model_error`
  message says what failed. Jobs queued for a model whose load failed get that error without
  loading it again (until the file changes or someone selects it again).
"""
from __future__ import annotations

import gc
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from .. import payloads
from ..engine.families import Hints
from ..engine.loading import DEMO_MODEL_NAME, LoadedModel, ModelLoadError, ModelSummary, summarize_model
from ..storage.model_entries import ModelEntry
from ..storage.model_library import ModelLibrary, UnknownModel

HASHING_SHARE = 0.1  # of the progress bar, when the file's SHA-256 is not known yet


@dataclass(frozen=True)
class ModelStatus:
    status: str  # "loading" | "ready" | "error"
    progress: float
    message: str
    model: str  # the model loaded or loading now
    current: str | None = None  # the selected model: what a generate without `model` runs on

    def payload(self) -> dict:
        """The `model_status` message."""
        return payloads.model_status(self.status, self.progress, self.message, self.model, self.current)


class ModelUnavailable(ValueError):
    """A job's model could not be loaded. A ValueError, so the job layer shows the message as is."""


@dataclass(frozen=True)
class ModelChoice:
    name: str  # as listed by GET /api/models
    path: Path | None  # None: the embedded demo model
    hints: Hints = Hints()  # --prediction-type / --model-variant: for the --model one only
    entry: ModelEntry | None = field(default=None, compare=False)  # when it is in the models folder

    @property
    def key(self) -> str:
        return str(self.path) if self.path else ""


@dataclass(frozen=True)
class Selection:
    """A choice with what is known of it before (or after) loading."""

    choice: ModelChoice
    defaults: dict
    family: str | None
    scheduler_config: dict | None
    native_size: int | None


@dataclass
class HeldModel:
    choice: ModelChoice
    model: LoadedModel
    sha256: str | None  # of a single-file checkpoint

    def identity(self) -> dict:
        """What an output records of the model that made it."""
        return {"name": self.choice.name, "sha256": self.sha256}


def startup_choice(library: ModelLibrary, model_path: str | None, hints: Hints,
                   preloaded: LoadedModel | None = None) -> ModelChoice:
    """`--model`: a name listed in the models folder, else a path (the demo when none)."""
    if preloaded is not None and model_path is None:
        return ModelChoice(preloaded.name, None, hints)
    if model_path is None:
        return ModelChoice(DEMO_MODEL_NAME, None, hints)
    for name in (model_path, library.name_of(model_path)):
        try:
            entry = library.find(name) if name else None
        except UnknownModel:  # not a name at all (an absolute path, say)
            entry = None
        if entry is not None:
            return ModelChoice(entry.name, entry.path, hints, entry)
    path = Path(model_path).expanduser().absolute()
    try:
        taken = library.find(path.name) is not None  # a listed model of the same name
    except UnknownModel:
        taken = False
    return ModelChoice(f"{path.name} (--model)" if taken else path.name, path, hints)


class LoadedModels:
    def __init__(self, library: ModelLibrary, startup: ModelChoice, loader: Callable, device: str,
                 cache_dir: Path, keep: int = 1, announce: Callable | None = None,
                 on_error: Callable | None = None, preloaded: LoadedModel | None = None, lock=None):
        if not isinstance(keep, int) or keep < 1:
            raise ValueError(f"--keep-models must be 1 or more, got {keep!r}.")
        self.library, self.startup, self.keep = library, startup, keep
        self._loader, self._device, self._cache_dir = loader, device, cache_dir
        self._announce = announce or (lambda status: None)
        self._on_error = on_error or (lambda payload: None)
        self._preloaded = preloaded
        self._lock = lock or threading.Lock()
        self._held: OrderedDict[str, HeldModel] = OrderedDict()  # least recently used first
        self._summaries: dict[str, ModelSummary | None] = {}
        self._failures: dict[str, tuple] = {}  # key -> (file version, message)
        self.current: HeldModel | None = None
        self.selection = self._selection_for(startup)
        self.status = ModelStatus("loading", 0.0, "waiting to load", startup.name, startup.name)

    # -- socket side (off the loop: these may read the models folder) --------------------------
    def choose(self, name) -> ModelChoice:
        """The choice a `model` field names; None: the selection. Raises UnknownModel."""
        if name is None:
            return self.selection.choice
        for known in self.builtins():
            if name == known.name:
                return known
        entry = self.library.entry(name)
        return ModelChoice(entry.name, entry.path, Hints(), entry)

    def builtins(self) -> list[ModelChoice]:
        """Choices outside the models folder: the start-up model, and the embedded demo."""
        return [self.startup] + ([ModelChoice(DEMO_MODEL_NAME, None)] if self.startup.key else [])

    def selection_for(self, choice: ModelChoice) -> Selection:
        return self.selection if choice == self.selection.choice else self._selection_for(choice)

    def select(self, choice: ModelChoice) -> Selection:
        """Make `choice` what jobs naming no model get; the worker loads it (see `switch`)."""
        selection = self._selection_for(choice)  # may read the file's header: callers run this off the loop
        with self._lock:
            self.selection = selection
        self._set_status()  # tells pages the new `current` at once
        return self.selection

    # -- worker side ---------------------------------------------------------------------------
    def switch(self, choice: ModelChoice) -> None:
        """A queued select_model: load it (again, even after a failure); on failure the
        selection goes back to the model still running."""
        try:
            self.use(choice, retry=True)
        except ModelUnavailable:
            with self._lock:
                if self.selection.choice == choice and self.current is not None:
                    self.selection = self._selection_for(self.current.choice)
            self._set_status()

    def use(self, choice: ModelChoice | None = None, retry: bool = False) -> HeldModel:
        """The model in memory for `choice` (the selection when None), loading it if needed."""
        choice = choice or self.selection.choice
        with self._lock:
            held = self._held.get(choice.key)
            if held is not None:
                self._held.move_to_end(choice.key)
        if held is not None:
            if held is not self.current:
                self.current = held
                self._set_status(ModelStatus("ready", 1.0, "ready", choice.name))
            return held
        failed = self._failures.get(choice.key)
        if failed is not None and not retry and failed[0] == _version(choice.path):
            raise ModelUnavailable(f"The model {choice.name} could not be loaded: {failed[1]}")
        return self._load(choice)

    def held(self, key: str) -> HeldModel | None:
        return self._held.get(key)

    def loaded_names(self) -> list[str]:
        return [h.choice.name for h in list(self._held.values())]

    def _load(self, choice: ModelChoice) -> HeldModel:
        previous = self.current
        is_file = choice.path is not None and choice.path.is_file()
        hashing = HASHING_SHARE if is_file and not self.library.hashes.known(choice.path) else 0.0

        def progress(fraction: float, message: str) -> None:
            self._set_status(ModelStatus("loading", fraction * (1 - hashing), message, choice.name))

        progress(0.0, "starting")
        try:
            if choice.entry is not None:
                self.library.check_inside(choice.path)
            if self._preloaded is not None and choice.key == self.startup.key:
                model = self._preloaded
            else:
                model = self._loader(choice.path, self._device, self._cache_dir, progress, choice.hints)
            sha = self.library.hashes.compute(choice.path, lambda f: self._set_status(ModelStatus(
                "loading", 1 - hashing + f * hashing, "computing its SHA-256", choice.name))) if is_file else None
        except Exception as exc:  # noqa: BLE001 - any failure leaves the previous model running
            self._failed(choice, previous, str(exc))
            raise ModelUnavailable(f"The model {choice.name} could not be loaded: {exc}") from exc
        held = HeldModel(choice, model, sha)
        if choice.entry is not None:  # a .ckpt's family is known now; later listings show it
            self.library.remember_loaded(choice.entry.path, _summary_of(model))
        with self._lock:
            self._held[choice.key] = held
            evicted = []
            while len(self._held) > self.keep:
                evicted.append(self._held.popitem(last=False)[1])
            self.current = held
            if self.selection.choice == choice:
                self.selection = self._selection_for(choice)
        self._failures.pop(choice.key, None)
        previous = None  # the last reference outside _held, when it was evicted
        self._free(evicted)
        self._set_status(ModelStatus("ready", 1.0, "ready", choice.name))
        return held

    def _failed(self, choice: ModelChoice, previous: HeldModel | None, message: str) -> None:
        self._failures[choice.key] = (_version(choice.path), message)
        if previous is not None:
            status = ModelStatus("ready", 1.0, f"{choice.name} could not be loaded; still using "
                                                f"{previous.choice.name}", previous.choice.name)
        else:
            status = ModelStatus("error", 0.0, message, choice.name)
        self._set_status(status)
        self._on_error(payloads.model_error(choice.name, message, previous.choice.name if previous else None))

    def _free(self, evicted: list[HeldModel]) -> None:
        """Drop the last references to evicted models and hand their memory back."""
        if not evicted:
            return
        devices = {h.model.device.type for h in evicted}
        evicted.clear()
        gc.collect()
        if "cuda" in devices:
            import torch

            torch.cuda.empty_cache()

    def _set_status(self, status: ModelStatus | None = None) -> None:
        """Announce `status` (None: the present one, with the present selection). Under the lock,
        so progress on the worker and a selection on the socket side are announced in the order
        they happened (a newer announcement replaces one not yet delivered)."""
        with self._lock:
            self.status = replace(status or self.status, current=self.selection.choice.name)
            self._announce(self.status)

    def _selection_for(self, choice: ModelChoice) -> Selection:
        held = self._held.get(choice.key)
        if held is not None:
            summary = _summary_of(held.model)
        elif choice.entry is not None:
            summary = choice.entry.summary
        else:
            if choice.key not in self._summaries:
                self._summaries[choice.key] = _summary_or_none(choice)
            summary = self._summaries[choice.key]
        if summary is None:
            return Selection(choice, {}, None, None, None)
        return Selection(choice, dict(summary.defaults), summary.family, summary.scheduler_config,
                         summary.native_size)


def _summary_of(model: LoadedModel) -> ModelSummary:
    return ModelSummary(model.scheduler_config, model.defaults, model.family, model.native_size)


def _summary_or_none(choice: ModelChoice) -> ModelSummary | None:
    """Read without loading weights, so /api/plan answers and queued jobs get the model's
    settings while it is still loading; None when it cannot be read (loading will say why)."""
    try:
        return summarize_model(choice.path, choice.hints)
    except ModelLoadError:
        return None


def _version(path: Path | None) -> tuple | None:
    """A file's (size, mtime_ns), a folder's index's: a failed load is retried once it changes."""
    if path is None:
        return None
    try:
        info = (path / "model_index.json" if path.is_dir() else path).stat()
    except OSError:
        return None
    return (info.st_size, info.st_mtime_ns)
