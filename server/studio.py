"""The studio's state on the worker side: the model, the stores, and running one job.

`Studio.run_job` is what the worker thread executes: engine -> previews -> store. It knows the
socket contract's payload shapes but nothing of Flask or Socket.IO.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from .engine import GenerationRequest, LoadedModel, generate, load_model
from .engine.generate import StepFrame
from .engine.loading import DEMO_MODEL_NAME, pick_device
from .engine.plan import StepPlan
from .store import OutputStore
from .uploads import UploadStore

log = logging.getLogger(__name__)


@dataclass
class ModelStatus:
    status: str  # "loading" | "ready" | "error"
    progress: float
    message: str
    model: str

    def to_dict(self) -> dict:
        return {"status": self.status, "progress": round(self.progress, 3), "message": self.message,
                "model": self.model}


def scheduler_config_for(model_path: str | None):
    """The model's scheduler config, read without loading weights, so /api/plan answers while
    the model is still loading."""
    from .engine.loading import DEMO_MODEL_DIR, read_scheduler_config

    try:
        return read_scheduler_config(Path(model_path).expanduser() if model_path else DEMO_MODEL_DIR)
    except (OSError, ValueError):
        return None  # not a model folder: loading will say why, and /api/plan answers 503


def _shown_path(path: Path) -> str:
    """The init image's path as the reproduce command should name it: relative to the working
    directory when it lies below it (the usual `outputs/uploads/...`), else absolute."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(Path(path).resolve())


class Studio:
    def __init__(self, outputs_dir: Path, model_path: str | None, device: str, announce=None,
                 preloaded: LoadedModel | None = None):
        self.outputs_dir = Path(outputs_dir)
        self.outputs_dir.mkdir(parents=True, exist_ok=True)
        self.uploads = UploadStore(self.outputs_dir / "uploads")
        self.outputs = OutputStore(self.outputs_dir)
        self.model_path = model_path
        self.device_name = str(pick_device(device)) if device == "auto" else device
        self._device_request = device
        self.model: LoadedModel | None = None
        self._preloaded = preloaded  # tests share one loaded model across apps
        self.scheduler_config = scheduler_config_for(model_path)
        name = Path(model_path).name if model_path else DEMO_MODEL_NAME
        self.status = ModelStatus("loading", 0.0, "waiting to load", name)
        self._announce = announce or (lambda status: None)  # called with each ModelStatus change

    # -- model -------------------------------------------------------------------------------
    def load(self) -> None:
        def progress(fraction: float, message: str) -> None:
            self.status = ModelStatus("loading", fraction, message, self.status.model)
            self._announce(self.status)

        try:
            self.model = self._preloaded or load_model(
                self.model_path, self._device_request, self.outputs_dir / ".cache", progress)
        except Exception as exc:
            self.status = ModelStatus("error", 0.0, str(exc), self.status.model)
            self._announce(self.status)
            raise
        self.scheduler_config = self.model.scheduler_config
        self.device_name = str(self.model.device)
        self.status = ModelStatus("ready", 1.0, "ready", self.model.name)
        self._announce(self.status)

    @property
    def native_size(self) -> int | None:
        return self.model.native_size if self.model else None

    # -- one job -----------------------------------------------------------------------------
    def run_job(self, job, emit) -> dict:
        request: GenerationRequest = job.request
        model = self.model
        init_image = init_record = None
        if request.init_image is not None:
            init_record = self.uploads.record(request.init_image)
            init_image = self.uploads.load(request.init_image)
        decoder = request.preview
        if not model.previews.available(decoder):
            decoder = "latent"  # TAESD asked for but the model folder ships none

        def on_plan(plan: StepPlan, mode: str, seed: int) -> None:
            emit("job_plan", {"mode": mode, "steps_total": plan.steps_total, "skipped": plan.skipped,
                              "taken": plan.taken, "timesteps": plan.timesteps, "sigmas": plan.sigmas,
                              "seed": seed})

        def on_step(frame: StepFrame) -> None:
            if decoder == "off":
                return
            step_ended_at = time.time()  # lets clients measure step end -> frame received
            preview = model.previews.render(frame.latents, decoder)
            data, mime = model.previews.encode(preview)
            emit("job_step", {"index": frame.index, "step": frame.step, "steps_total": frame.steps_total,
                              "timestep": frame.timestep, "kind": frame.kind, "width": preview.width,
                              "height": preview.height, "mime": mime, "image": data,
                              "step_ended_at": step_ended_at}, latest=True)

        result = generate(model, request, init_image, on_plan, on_step, job.cancelled)
        warnings = list(result.warnings)
        if decoder != request.preview:
            warnings.append("TAESD previews need a taesd/ folder beside the model; showing latent previews.")
        metadata = {
            **request.to_dict(),
            "seed": result.seed,
            "mode": result.mode,
            "width": result.width,
            "height": result.height,
            "strength": request.strength if result.mode != "txt2img" else None,
            "steps_total": result.plan.steps_total,
            "skipped": result.plan.skipped,
            "taken": result.plan.taken,
            "model": model.name,
            "init_image": None if init_record is None else {
                "id": init_record.id, "sha256": init_record.sha256, "width": init_record.width,
                "height": init_record.height, "has_alpha": init_record.has_alpha,
                "url": f"/api/uploads/{init_record.id}", "path": _shown_path(init_record.path)},
            "warnings": warnings,
            "elapsed_s": round(result.elapsed_s, 3),
        }
        saved = self.outputs.save(result.image, metadata)
        return {"name": saved.name, "url": saved.url, "seed": result.seed,
                "elapsed_s": metadata["elapsed_s"], "metadata": metadata}
