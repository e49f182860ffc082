"""The studio's state on the worker side: the model, the stores, and running one job.

`Studio.run_job` is what the worker thread executes: engine -> previews -> store. It knows the
socket contract's payload shapes but nothing of Flask or Socket.IO.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from .contact_sheet import contact_sheet
from .engine import GenerationRequest, LoadedModel, load_model
from .engine.batch import output_items
from .engine.generate import Generation, StepFrame
from .engine.families import Hints
from .engine.loading import DEMO_MODEL_NAME, ModelLoadError, ModelSummary, pick_device, summarize_model
from .engine.plan import StepPlan
from .intermediates import save_intermediates
from .latent_cache import LatentCache
from .safe_files import shown_path, sweep_stale_temp_files
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


def model_summary_for(model_path: str | None, hints: Hints | None = None) -> ModelSummary | None:
    """The model's scheduler config and recommended settings, read without loading weights, so
    /api/plan answers and queued jobs get the model's settings while it is still loading."""
    try:
        return summarize_model(model_path, hints)
    except ModelLoadError:
        return None  # not a model we can read: loading will say why, and /api/plan answers 503


class Studio:
    def __init__(self, outputs_dir: Path, model_path: str | None, device: str, announce=None,
                 preloaded: LoadedModel | None = None, hints: Hints | None = None):
        self.outputs_dir = Path(outputs_dir)
        self.outputs_dir.mkdir(parents=True, exist_ok=True)
        self.uploads = UploadStore(self.outputs_dir / "uploads", outputs_root=self.outputs_dir)
        self.outputs = OutputStore(self.outputs_dir)
        sweep_stale_temp_files(self.outputs_dir)  # what a killed process left half-written
        self.latents = LatentCache()  # recent jobs' step latents, for "full decode" of a strip cell
        self.model_path = model_path
        self.device_name = str(pick_device(device)) if device == "auto" else device
        self._device_request = device
        self.model: LoadedModel | None = None
        self._preloaded = preloaded  # tests share one loaded model across apps
        self._hints = hints or Hints()  # what flags say of a checkpoint its keys cannot
        summary = model_summary_for(model_path, self._hints)
        self.scheduler_config = summary.scheduler_config if summary else None
        self.model_defaults = summary.defaults if summary else {}
        self.family = summary.family if summary else None  # a checkpoint's detected family
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
                self.model_path, self._device_request, self.outputs_dir / ".cache", progress, self._hints)
        except Exception as exc:
            self.status = ModelStatus("error", 0.0, str(exc), self.status.model)
            self._announce(self.status)
            raise
        self.scheduler_config = self.model.scheduler_config
        self.model_defaults = self.model.defaults
        self.family = self.model.family
        self.device_name = str(self.model.device)
        self.status = ModelStatus("ready", 1.0, "ready", self.model.name)
        self._announce(self.status)

    @property
    def native_size(self) -> int | None:
        return self.model.native_size if self.model else None

    # -- one job -----------------------------------------------------------------------------
    def run_job(self, job, emit) -> dict:
        """Run a job's outputs (one, n iterations, or a sweep), saving each as it is done.
        Returns the job_done payload: the last output, plus all of them."""
        request: GenerationRequest = job.request
        model = self.model
        init_record = init_image = None
        if request.init_image is not None:
            init_record = self.uploads.record(request.init_image)
            init_image = self.uploads.load(request.init_image)
        decoder = request.preview
        if not model.previews.available(decoder):
            decoder = "latent"  # TAESD asked for but the model folder ships none
        extra_warnings = []
        if decoder != request.preview:
            extra_warnings.append("TAESD previews need a taesd/ folder beside the model; showing latent previews.")
        items = output_items(request)
        generation = Generation(model, request, init_image)  # shared by a sweep's items
        frames: list[StepFrame] = []  # this item's, for saved intermediates

        def on_plan(plan: StepPlan, mode: str, seed: int, item: int) -> None:
            frames.clear()
            emit("job_plan", {"mode": mode, "steps_total": plan.steps_total, "skipped": plan.skipped,
                              "taken": plan.taken, "timesteps": plan.timesteps, "sigmas": plan.sigmas,
                              "seed": seed, "item": item, "items": len(items),
                              "strength": items[item].strength if mode != "txt2img" else None})

        def on_step(frame: StepFrame) -> None:
            self.latents.put(job.id, frame.item, frame.index, frame.latents)
            if request.save_intermediates != "off":
                frames.append(frame)
            if decoder == "off":
                return
            step_ended_at = time.time()  # lets clients measure step end -> frame received
            preview = model.previews.render(frame.latents, decoder)
            data, mime = model.previews.encode(preview)
            emit("job_step", {"index": frame.index, "step": frame.step, "steps_total": frame.steps_total,
                              "timestep": frame.timestep, "kind": frame.kind, "width": preview.width,
                              "height": preview.height, "mime": mime, "image": data, "item": frame.item,
                              "step_ended_at": step_ended_at}, latest=True)

        outputs = []
        for item in items:
            if item.index > 0 and request.iterations > 1:
                # Iterations feed each output back as the next init (keeping an inpainting mask).
                init_record = self.uploads.save(_with_mask_of(outputs[-1]["image"], generation.mask))
                generation = Generation(model, request, self.uploads.load(init_record.id))
            result = generation.run(item.strength, item.seed, item.with_variations, on_plan, on_step,
                                    job.cancelled, item.index)
            metadata = self._metadata(request, result, init_record, extra_warnings,
                                      {"item": item.index, "items": len(items)})
            saved = self.outputs.save(result.image, metadata)
            output = {"name": saved.name, "url": saved.url, "seed": result.seed, "metadata": metadata,
                      "elapsed_s": metadata["elapsed_s"]}
            if request.save_intermediates != "off":
                render_decoder = "vae" if request.save_intermediates == "vae" else (
                    decoder if decoder != "off" else "latent")
                folder = save_intermediates(self.outputs_dir, saved.name, frames,
                                            lambda latents: model.previews.render(latents, render_decoder))
                # Relative (outputs/intermediates/...): payloads never carry an absolute path.
                output["intermediates_dir"] = shown_path(folder, self.outputs_dir)
            emit("job_output", {**output, "item": item.index, "items": len(items)})
            outputs.append({**output, "image": result.image})

        last = outputs[-1]
        done = {key: last[key] for key in ("name", "url", "seed", "elapsed_s", "metadata")}
        done["outputs"] = [{k: v for k, v in o.items() if k != "image"} for o in outputs]
        if request.strengths:
            done["contact_sheet"] = self._save_contact_sheet(request, outputs)
        return done

    def _metadata(self, request, result, init_record, extra_warnings, job_info) -> dict:
        """What reproduces this one output: the request in single-output form (this output's
        strength, seed and full variation list), plus how it was made."""
        return {
            **request.to_dict(),
            "seed": result.seed,
            "variation_amount": 0.0,
            "variation_seed": None,
            "with_variations": [list(v) for v in result.with_variations],
            "iterations": 1,
            "strengths": [],
            "mode": result.mode,
            "fit_box": [request.width, request.height] if request.fit else None,
            "width": result.width,
            "height": result.height,
            "strength": result.strength,
            "steps_total": result.plan.steps_total,
            "skipped": result.plan.skipped,
            "taken": result.plan.taken,
            "model": self.model.name,
            "init_image": None if init_record is None else {
                "id": init_record.id, "sha256": init_record.sha256, "width": init_record.width,
                "height": init_record.height, "has_alpha": init_record.has_alpha,
                # Named by upload id and url; `path` (for the dream command's -I) is relative to
                # where the studio was started, or the outputs folder's parent: never absolute.
                "url": f"/api/uploads/{init_record.id}",
                "path": shown_path(init_record.path, self.outputs_dir)},
            "job": {**job_info, "variation_amount": request.variation_amount,
                    "variation_seed": request.variation_seed, "iterations": request.iterations,
                    "strengths": list(request.strengths)},
            "warnings": list(result.warnings) + extra_warnings,
            "elapsed_s": round(result.elapsed_s, 3),
        }

    def _save_contact_sheet(self, request, outputs) -> dict:
        labels = [f"strength {o['metadata']['strength']:g} · {o['metadata']['taken']} taken / "
                  f"{o['metadata']['skipped']} skipped" for o in outputs]
        sheet = contact_sheet([o["image"] for o in outputs], labels)
        metadata = {**request.to_dict(), "seed": outputs[0]["seed"], "mode": "sweep",
                    "strengths": list(request.strengths), "width": sheet.width, "height": sheet.height,
                    "model": self.model.name, "init_image": outputs[0]["metadata"]["init_image"],
                    "contact_sheet_of": [o["name"] for o in outputs]}
        saved = self.outputs.save(sheet, metadata)
        return {"name": saved.name, "url": saved.url}

    # -- promoting a strip step ----------------------------------------------------------------
    def promote(self, job_id: str, item: int, index: int) -> Image.Image:
        """The full-VAE decode of a step's cached latents (no re-run). Raises StepsEvicted."""
        latents = self.latents.get(job_id, item, index)
        return self.model.previews.render(latents.to(self.model.device), "vae")


def _with_mask_of(image: Image.Image, mask: Image.Image | None) -> Image.Image:
    """`image`, transparent again where `mask` says to repaint (the RGB underneath kept)."""
    if mask is None:
        return image
    alpha = mask.point(lambda m: 0 if m else 255)
    rgba = image.convert("RGB")
    rgba.putalpha(alpha)
    return rgba
