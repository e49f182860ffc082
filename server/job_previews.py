"""One job's preview frames: which decoder draws which image, and the `job_step` payloads.

With `preview_kind: "both"` (the default) each taken step is one message carrying two pictures of
the same step: `image`, the noisy latent x_t for the strip (always the latent->RGB map: small
cells), and `x0_image`, the predicted result x0 for the large view, drawn by the job's preview
decoder. `preview: "auto"` (the default) lets the model's PreviewBudget pick that decoder from
measured cost; while the job runs, each rich decode is timed against the step it follows, and one
found over budget gives way to the map for the rest of the job (and for the model). The init frame
(index -1) is one picture, drawn by the large view's decoder: there is one per output.

The kinds "x_t" and "x0" send one picture per step, drawn by the job's decoder, as before.
"""
from __future__ import annotations

import time

from .engine.generate import StepFrame
from .preview_budget import RICH_DECODERS

TAESD_MISSING = "TAESD previews need a taesd/ folder beside the model; showing latent previews."


class JobPreviews:
    def __init__(self, model, request, width: int, height: int):
        """`model` is the LoadedModel the job runs on; `width` x `height` its output size in pixels.
        With preview "auto" this may probe the model's costs (on the worker, before the first step)."""
        self.renderer = model.previews
        self.budget = self.renderer.budget
        self.kind = request.preview_kind
        self._scale = model.pipe.vae_scale_factor
        self.latent_hw = (height // self._scale, width // self._scale)
        self.warnings: list[str] = []
        self._costs = None  # what "auto" chose on
        self._steps: list[float] = []  # this job's step seconds
        self._decodes: list[float] = []  # this job's rich decode seconds
        asked = request.preview
        if asked == "auto":
            asked, self._costs = self.budget.choose(model.pipe.unet, self.renderer, self.latent_hw)
        elif asked != "off" and not self.renderer.available(asked):
            asked = "latent"  # TAESD asked for but the model folder ships none
            self.warnings.append(TAESD_MISSING)
        self.large = None if asked == "off" else asked  # the decoder of the large (x0) picture

    @property
    def on(self) -> bool:
        return self.large is not None

    @property
    def frame_decoder(self) -> str:
        """What draws a frame's own latents (`StepFrame.latents`): the strip's map with "both"."""
        return "latent" if self.kind == "both" or self.large is None else self.large

    def plan_info(self) -> dict:
        """job_plan's `preview`: the decoder and size of the large pictures (x0_image with "both",
        else image) this output's steps will carry, unless a rich decoder falls back during it."""
        if self.large is None:
            return {"decoder": "off", "width": None, "height": None}
        scale = 1 if self.large == "latent" else self._scale
        return {"decoder": self.large, "width": self.latent_hw[1] * scale, "height": self.latent_hw[0] * scale}

    def step_payload(self, frame: StepFrame) -> dict:
        """A job_step payload (without job_id and step_ended_at) for a frame; one message per step,
        so the latest-wins channel drops a stale step whole, never half of one."""
        if frame.index < 0:  # the init frame: one picture, for the strip's own cell and the large view
            image = self.renderer.render(frame.latents, self.large)
        elif frame.x0 is None:  # kind "x_t" or "x0": one picture
            image = self._render_large(frame.latents, frame)
        else:
            image = self.renderer.render(frame.latents, "latent")
        data, mime = self.renderer.encode(image)
        payload = {"index": frame.index, "step": frame.step, "steps_total": frame.steps_total,
                   "timestep": frame.timestep, "kind": frame.kind, "width": image.width, "height": image.height,
                   "mime": mime, "image": data, "item": frame.item}
        if frame.index >= 0 and frame.x0 is not None:
            large = self._render_large(frame.x0, frame)
            payload.update(x0_image=self.renderer.encode(large)[0], x0_width=large.width, x0_height=large.height)
        return payload

    # -- helpers -------------------------------------------------------------------------------------
    def _render_large(self, latents, frame: StepFrame):
        """The large picture of a taken step; a rich decode is timed against the step and the job
        falls back to the map once the decodes prove over budget."""
        if self.large not in RICH_DECODERS:
            self._note_step(frame)
            return self.renderer.render(latents, self.large)
        started = time.perf_counter()
        image = self.renderer.render(latents, self.large)  # ends on the CPU: the decode has finished
        self._decodes.append(time.perf_counter() - started)
        self._note_step(frame)
        if self._costs is not None and self.budget.over_budget(self._decodes, self._steps):
            self.budget.reject(self.large)
            self.large = "latent"  # for the rest of this job; the model's budget remembers it
        return image

    def _note_step(self, frame: StepFrame) -> None:
        if frame.step_s is None:
            return
        self._steps.append(frame.step_s)
        if self._costs is not None:
            decoder = self.large if self.large in RICH_DECODERS else None
            self.budget.learn(self.latent_hw, self._costs, self._steps, decoder, self._decodes if decoder else None)
