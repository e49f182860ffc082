"""One job's preview frames: which decoder draws which picture, and the `job_step` payloads.

With `preview_kind: "both"` (the default) each taken step is one message carrying two pictures of
the same step: `image`, the noisy latent x_t for the strip, and `x0_image`, the predicted result x0
for the large view. `preview: "auto"` (the default) lets the model's PreviewBudget pick both
decoders from measured cost (the x0 picture: vae, taesd, patch or latent; the strip: patch or
latent). While the job runs each picture is timed against the step it follows: a large-view decoder
found over budget gives way to the next one that fits, for the rest of the job and for the model,
and a strip that pushes the step over budget falls back to the map. An explicit decoder draws the
x0 picture; the strip then takes the patch decoder unless that decoder is "latent" (the map
everywhere). The init frame (index -1) is one picture, drawn by the large view's decoder: there is
one per output.

The kinds "x_t" and "x0" send one picture per step, drawn by the job's decoder, as before.
"""
from __future__ import annotations

import time

from .. import payloads
from ..engine.results import StepFrame
from ..engine.preview_budget import FLOOR, STRIP_DECODER

MISSING = {
    "taesd": "TAESD previews need a taesd/ folder beside the model; showing latent previews.",
    "patch": "This model has no patch preview decoder (its fit failed when it loaded); showing latent previews.",
}


class JobPreviews:
    def __init__(self, model, request, width: int, height: int, job_id: str | None = None):
        """`model` is the LoadedModel the job runs on; `width` x `height` its output size in pixels;
        `job_id` the id its job_step messages carry. With preview "auto" this may probe the model's
        costs (on the worker, before the first step)."""
        self.job_id = job_id
        self.renderer = model.previews
        self.budget = self.renderer.budget
        self.kind = request.preview_kind
        self._scale = model.pipe.vae_scale_factor
        self.latent_hw = (height // self._scale, width // self._scale)
        self.warnings: list[str] = []
        self._costs = None  # what "auto" chose on
        self._steps: list[float] = []  # this job's step seconds
        self._pictures: dict[str, list[float]] = {}  # seconds of one picture (decode + encode) per decoder
        self._totals: list[float] = []  # seconds of each step's preview work
        self._step_preview_s = 0.0  # the current step's, so far
        asked = request.preview
        if asked == "auto":
            choice = self.budget.choose(model.pipe.unet, self.renderer, self.latent_hw)
            asked, self.strip, self._costs = choice.large, choice.strip, choice.costs
        else:
            if asked != "off" and not self.renderer.available(asked):
                self.warnings.append(MISSING[asked])
                asked = FLOOR
            self.strip = STRIP_DECODER if asked != FLOOR and self.renderer.available(STRIP_DECODER) else FLOOR
        self.large = None if asked == "off" else asked  # the decoder of the large (x0) picture

    @property
    def on(self) -> bool:
        return self.large is not None

    @property
    def frame_decoder(self) -> str:
        """What draws a frame's own latents (`StepFrame.latents`): the strip's decoder with "both"."""
        return self.strip if self.kind == "both" or self.large is None else self.large

    def plan_info(self) -> dict:
        """job_plan's `preview`: the decoder and size of the large pictures (x0_image with "both",
        else image) this output's steps will carry, and with "both" the strip's (`strip`), unless a
        decoder falls back during it."""
        if self.large is None:
            return payloads.plan_preview("off", None, None)
        strip = payloads.plan_preview(self.strip, *self._size(self.strip)) if self.kind == "both" else None
        return payloads.plan_preview(self.large, *self._size(self.large), strip)

    def step_payload(self, frame: StepFrame) -> dict:
        """A frame's job_step payload; one message per step, so the latest-wins channel drops a
        stale step whole, never half of one. Call it as the step ends."""
        step_ended_at = time.time()  # before the pictures: lets clients measure step end -> frame received
        if frame.index < 0:  # the init frame: one picture, for the strip's own cell and the large view
            image, data, mime = self._picture(frame.latents, self.large)
        elif frame.x0 is None:  # kind "x_t" or "x0": one picture
            image, data, mime = self._picture(frame.latents, self.large, timed=True)
        else:
            image, data, mime = self._picture(frame.latents, self.strip, timed=True)
        x0 = None
        if frame.index >= 0 and frame.x0 is not None:
            large, large_data, _same_mime = self._picture(frame.x0, self.large, timed=True)
            x0 = (large.width, large.height, large_data)
        if frame.index >= 0:
            self._end_step(frame)
        return payloads.job_step(self.job_id, frame.index, frame.step, frame.steps_total, frame.timestep, frame.kind,
                                 frame.item, image.width, image.height, mime, data, step_ended_at, x0)

    # -- helpers -------------------------------------------------------------------------------------
    def _size(self, decoder: str) -> tuple[int, int]:
        """(width, height) of the pictures `decoder` draws for this job."""
        scale = 1 if decoder == FLOOR else self._scale
        return self.latent_hw[1] * scale, self.latent_hw[0] * scale

    def _picture(self, latents, decoder: str, timed: bool = False):
        """(image, bytes, mime); a taken step's pictures are timed (they end on the CPU: finished work)."""
        started = time.perf_counter()
        image = self.renderer.render(latents, decoder)
        data, mime = self.renderer.encode(image)
        if timed:
            seconds = time.perf_counter() - started
            self._pictures.setdefault(decoder, []).append(seconds)
            self._step_preview_s += seconds
        return image, data, mime

    def _end_step(self, frame: StepFrame) -> None:
        """After a taken step's pictures: learn its costs, and fall back where they prove over budget."""
        self._totals.append(self._step_preview_s)
        self._step_preview_s = 0.0
        if frame.step_s is None:
            return
        self._steps.append(frame.step_s)
        if self._costs is None:  # an explicit decoder: what the person asked for, whatever it costs
            return
        costs = self.budget.learn(self.latent_hw, self._costs, self._steps, self._pictures)
        if self.large != FLOOR and self.budget.over_budget(self._pictures.get(self.large, []), self._steps):
            choice = self.budget.reject(self.large, self.latent_hw, costs)
            # Within a job the strip only steps down (patch -> latent), never back up.
            self.large, self.strip = choice.large, FLOOR if self.strip == FLOOR else choice.strip
        elif self.strip != FLOOR and self.budget.over_budget(self._totals, self._steps):
            self.strip = FLOOR  # for the rest of this job; the next one decides on the learned costs

