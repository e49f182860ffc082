"""What a generation hands out: a StepFrame for each step as it runs (OnStep), its StepPlan first
(OnPlan), a GenerationResult at the end, or GenerationCancelled when the job's cancel flag is set."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from PIL import Image

from .plan import StepPlan


class GenerationCancelled(Exception):
    """Raised inside the loop when the job's cancel flag is set."""


@dataclass
class StepFrame:
    index: int  # -1 for the init frame, then 0..taken-1
    step: int  # position among all scheduled steps (the strip cell)
    steps_total: int
    timestep: float
    kind: str  # "init" | "x_t" | "x0": what `latents` are
    latents: torch.Tensor
    item: int = 0  # which output of a multi-output job
    # preview_kind "both": the predicted result x0 of the same step, beside the x_t `latents`.
    x0: torch.Tensor | None = None
    # Seconds this step took (UNet, guidance, scheduler), the device synchronised: what a preview
    # decode is weighed against. None for the init frame.
    step_s: float | None = None


@dataclass
class GenerationResult:
    image: Image.Image
    seed: int
    mode: str
    plan: StepPlan
    width: int
    height: int
    warnings: list[str] = field(default_factory=list)
    latents: torch.Tensor | None = None  # final latents (None when strength 0 skipped the model)
    elapsed_s: float = 0.0
    strength: float | None = None  # None for txt2img
    with_variations: tuple[tuple[int, float], ...] = ()  # the noise blends that reproduce it


OnPlan = Callable[[StepPlan, str, int, int], None]  # (plan, mode, seed, item)
OnStep = Callable[[StepFrame], None]
