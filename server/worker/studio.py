"""The studio's state on the worker side: the model, the stores, and running one job.

`Studio.run_job` is what the worker thread executes: engine -> previews -> store. Its messages are
built by `payloads` (the socket contract); it knows nothing of Flask or Socket.IO.
"""
from __future__ import annotations

import logging
import time
from collections import OrderedDict
from pathlib import Path

from PIL import Image

from .. import payloads
from ..storage.contact_sheet import contact_sheet
from ..engine import GenerationRequest, LoadedModel, load_model
from ..engine.batch import output_items
from ..engine.generate import Generation, StepFrame
from ..engine.families import Hints
from ..engine.loading import DEMO_MODEL_DIR, pick_device
from ..engine.loras import apply_loras
from ..engine.plan import StepPlan
from ..storage.intermediates import save_intermediates
from .job_loras import JobLoras, recommended_settings
from .job_previews import JobPreviews
from ..metrics import WorkerMetrics
from .latent_cache import LatentCache, StepsEvicted
from .loaded_models import LoadedModels, ModelStatus, ModelUnavailable, startup_choice  # noqa: F401 - re-exported
from ..storage.model_library import ModelLibrary
from .output_records import contact_sheet_record, init_image_record, output_record
from ..storage.safe_files import shown_path, sweep_stale_temp_files
from ..storage.store import OutputStore
from ..storage.uploads import UploadStore

log = logging.getLogger(__name__)


class Studio:
    def __init__(self, outputs_dir: Path, model_path: str | None, device: str, announce=None,
                 preloaded: LoadedModel | None = None, hints: Hints | None = None,
                 models_dir: str | Path = "models", keep_models: int = 1, on_model_error=None, lock=None,
                 loras=(), metrics: WorkerMetrics | None = None):
        self.outputs_dir = Path(outputs_dir)
        self.metrics = metrics or WorkerMetrics()  # this worker's step times, for GET /metrics
        self.outputs_dir.mkdir(parents=True, exist_ok=True)
        self.uploads = UploadStore(self.outputs_dir / "uploads", outputs_root=self.outputs_dir)
        self.outputs = OutputStore(self.outputs_dir)
        sweep_stale_temp_files(self.outputs_dir)  # what a killed process left half-written
        self.latents = LatentCache()  # recent jobs' step latents, for "full decode" of a strip cell
        self._job_models: OrderedDict[str, str] = OrderedDict()  # job id -> its model's key, for promote
        self.model_path = model_path
        self._picked_device = str(pick_device(device)) if device == "auto" else device
        self.library = ModelLibrary(models_dir, self.outputs_dir)
        startup = startup_choice(self.library, model_path, hints or Hints(), preloaded)
        self.loras = JobLoras(self.library)
        # serve's --lora [(NAME-or-PATH, weight)]: applied to every job whose generate gives no `loras`.
        self.loras.server_defaults = self.loras.register(loras)
        # load_model is looked up when called, so tests can stand a shared model in for it.
        self.models = LoadedModels(self.library, startup, lambda *args: load_model(*args), device,
                                   self.outputs_dir / ".cache", keep_models, announce, on_model_error,
                                   preloaded, lock)

    # -- model -------------------------------------------------------------------------------
    def load(self) -> None:
        """Load the start-up model (on the worker, before the first job); raises when it fails."""
        self.models.use(self.models.startup, retry=True)

    @property
    def model(self) -> LoadedModel | None:
        """The model in memory that ran (or is about to run) the latest job."""
        held = self.models.current
        return held.model if held else None

    @property
    def status(self) -> ModelStatus:
        return self.models.status

    # What a job naming no model gets: the selected model's recommended settings, family and
    # scheduler (known from its file before it loads).
    @property
    def model_defaults(self) -> dict:
        return self.models.selection.defaults

    def job_defaults(self, choice, loras=None) -> tuple[dict, list]:
        """(what fills in a request's left-out settings, the LoRAs resolved) for a job on `choice` with
        `loras` ((name, weight) pairs; None: the request gives none, so serve's --lora ones). The
        model's recommended settings, then its LoRAs' over them, and `loras` itself. Reads the
        models folder: off the socket loop. Raises ValueError naming an unusable LoRA."""
        pairs = self.loras.server_defaults if loras is None else tuple(loras)
        files = self.loras.resolve(pairs)
        defaults = {**self.models.selection_for(choice).defaults, **recommended_settings(files), "loras": pairs}
        return defaults, files

    @property
    def scheduler_config(self) -> dict | None:
        return self.models.selection.scheduler_config

    @property
    def family(self) -> str | None:
        return self.models.selection.family

    @property
    def native_size(self) -> int | None:
        return self.models.selection.native_size

    def model_listing(self) -> dict:
        """GET /api/models: the folder's models and LoRAs, plus the start-up model and the demo
        when they are not in it (they can be switched back to). A directory walk: off the loop."""
        listing = self.library.listing()
        extra = []
        for choice in self.models.builtins():
            if choice.entry is not None:
                continue
            held = self.models.held(choice.key)
            path = choice.path or DEMO_MODEL_DIR
            entry = {"name": choice.name, "family": self.models.selection_for(choice).family,
                     "kind": "file" if path.is_file() else "folder", "size": _size(path),
                     "source": "--model" if choice.path else "embedded"}
            sha = held.sha256 if held else (self.library.hashes.known(path) if path.is_file() else None)
            extra.append({**entry, **({"sha256": sha} if sha else {})})
        return {"current": self.models.selection.choice.name, "loaded": self.models.loaded_names(),
                "models_dir": self.library.root.name, "models": extra + listing["models"],
                "loras": listing["loras"] + self.loras.listing()}

    @property
    def is_demo(self) -> bool:
        held = self.models.held(self.models.selection.choice.key)
        return held.model.is_demo if held else self.models.selection.choice.path is None

    @property
    def device_name(self) -> str:
        return str(self.model.device) if self.model is not None else self._picked_device

    # -- one job -----------------------------------------------------------------------------
    def run_job(self, job, emit) -> dict:
        """Run a job's outputs (one, a batch, n iterations, or a sweep), saving each as it is done.
        Returns the job_done payload: the last output, plus all of them."""
        started = time.perf_counter()  # job_elapsed_s: the whole job, as the person waited for it
        request: GenerationRequest = job.request
        live = bool(getattr(job, "live", False))  # the page's Live mode: saved outside the gallery
        held = self.models.use(getattr(job, "model", None))  # loads it first when it is not in memory
        model = held.model
        self._remember_model_of(job.id, held.choice.key)
        # Every job sets the model's LoRAs, [] included, so a job without LoRAs gets the base model's
        # exact pixels; the same set as the last job's loads nothing. A LoraError names the file.
        lora_set = apply_loras(model, self.loras.resolve(request.loras))
        loras = [{**record, "a1111_hash": self.loras.a1111_hash(lora)[:12]}
                 for record, lora in zip(lora_set.records(), lora_set.files)]
        for record, lora in zip(loras, lora_set.files):  # so /api/models lists it, and a renamed file is found
            self.loras.library.hashes.remember(lora.path, record["sha256"])
        init_record = init_image = None
        if request.init_image is not None:
            init_record = self.uploads.record(request.init_image)
            init_image = self.uploads.load(request.init_image)
        items = output_items(request)
        generation = Generation(model, request, init_image)  # shared by a sweep's or a batch's items
        # Which decoder draws which picture; "auto" may time the model once here, before step one.
        previews = JobPreviews(model, request, generation.width, generation.height, job.id)
        extra_warnings = list(lora_set.warnings) + previews.warnings
        frames: list[StepFrame] = []  # this item's, for saved intermediates

        def on_plan(plan: StepPlan, mode: str, seed: int, item: int) -> None:
            frames.clear()
            emit("job_plan", payloads.job_plan(job.id, mode, plan.steps_total, plan.skipped, plan.taken,
                                               plan.timesteps, plan.sigmas, seed, item, len(items),
                                               items[item].strength if mode != "txt2img" else None,
                                               previews.plan_info()))

        def on_step(frame: StepFrame) -> None:
            if frame.step_s is not None:  # None: the init frame, which is no step
                self.metrics.step(frame.step_s)
            self.latents.put(job.id, frame.item, frame.index, frame.latents)
            if request.save_intermediates != "off":
                frames.append(frame)
            if not previews.on:
                return
            # One message per step (x_t and x0 together with "both"): latest-wins drops whole steps.
            emit("job_step", previews.step_payload(frame), latest=True)

        outputs, images = [], []  # saved_output payloads, and their images
        for item in items:
            if item.index > 0 and request.iterations > 1:
                # Iterations feed each output back as the next init (keeping an inpainting mask).
                init_record = self.uploads.save(_with_mask_of(images[-1], generation.mask))
                generation = Generation(model, request, self.uploads.load(init_record.id))
            result = generation.run(item.strength, item.seed, item.with_variations, on_plan, on_step,
                                    job.cancelled, item.index)
            metadata = output_record(request, result, init_image_record(init_record, self.outputs_dir),
                                     extra_warnings, {"item": item.index, "items": len(items)}, held.identity(),
                                     loras, live)
            saved = self.outputs.save(result.image, metadata, live=live)
            intermediates_dir = None
            if request.save_intermediates != "off":
                render_decoder = "vae" if request.save_intermediates == "vae" else previews.frame_decoder
                # Beside the PNG's own folder (a Live result's in outputs/live/), so a Live result
                # and a gallery output that share a name never share a folder.
                folder = save_intermediates(saved.path.parent, saved.name, frames,
                                            lambda latents: model.previews.render(latents, render_decoder))
                # Relative (outputs/intermediates/...): payloads never carry an absolute path.
                intermediates_dir = shown_path(folder, self.outputs_dir)
            output = payloads.saved_output(saved.name, saved.url, result.seed, metadata["elapsed_s"], metadata,
                                           intermediates_dir)
            emit("job_output", payloads.job_output(job.id, output, item.index, len(items)))
            outputs.append(output)
            images.append(result.image)

        sheet = None
        if request.strengths:
            sheet = self._save_contact_sheet(request, generation.init_image, outputs, images, held.identity(),
                                             loras, live)
        return payloads.job_done(job.id, outputs, round(time.perf_counter() - started, 3), sheet)

    def _remember_model_of(self, job_id: str, key: str) -> None:
        self._job_models[job_id] = key
        while len(self._job_models) > 4 * self.latents.max_jobs:
            self._job_models.popitem(last=False)

    def _save_contact_sheet(self, request, init_image: Image.Image, outputs: list[dict], images: list,
                            model: dict, loras: list, live: bool) -> dict:
        """The sweep as one PNG: the init image as the job used it (fitted), then each output.
        `contact_sheet_of` names the outputs, so listings can tell a sheet from an output."""
        labels = ["init"] + [f"strength {o['metadata']['strength']:g} · {o['metadata']['taken']} taken / "
                             f"{o['metadata']['skipped']} skipped" for o in outputs]
        sheet = contact_sheet([init_image] + images, labels)
        saved = self.outputs.save(sheet, contact_sheet_record(request, sheet.size, outputs, model, loras, live),
                                  live=live)
        return payloads.saved_file(saved.name, saved.url)

    # -- promoting a strip step ----------------------------------------------------------------
    def promote(self, job_id: str, item: int, index: int) -> Image.Image:
        """The full-VAE decode of a step's cached latents (no re-run). Raises StepsEvicted."""
        latents = self.latents.get(job_id, item, index)
        key = self._job_models.get(job_id)
        held = self.models.held(key) if key is not None else self.models.current
        if held is None:
            raise StepsEvicted(f"The model that made job {job_id} is no longer in memory (another model was "
                               "loaded since); select it again to decode this job's steps.")
        return held.model.previews.render(latents.to(held.model.device), "vae")


def _size(path: Path) -> int:
    try:
        if path.is_file():
            return path.stat().st_size
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    except OSError:
        return 0


def _with_mask_of(image: Image.Image, mask: Image.Image | None) -> Image.Image:
    """`image`, transparent again where `mask` says to repaint (the RGB underneath kept)."""
    if mask is None:
        return image
    alpha = mask.point(lambda m: 0 if m else 255)
    rgba = image.convert("RGB")
    rgba.putalpha(alpha)
    return rgba
