"""The step plan: which of the scheduled denoising steps img2img skips and which it takes.

This is the single source of truth for the engine, the /api/plan endpoint, the page and the
tests. It mirrors diffusers' StableDiffusionImg2ImgPipeline.get_timesteps exactly (same float
arithmetic), so the plan we show is the plan that runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .samplers import make_scheduler, sampler_named

MAX_STEPS = 200


@dataclass(frozen=True)
class StepPlan:
    steps_requested: int
    strength: float
    exact_steps: bool
    steps_total: int  # number of scheduled timesteps (the strip's cells)
    skipped: int  # leading timesteps img2img jumps over
    taken: int  # timesteps the UNet actually runs
    num_inference_steps: int  # the N handed to scheduler.set_timesteps
    timesteps: list[float] = field(repr=False)  # all scheduled timesteps, skipped ones first
    sigmas: list[float] = field(repr=False)  # noise level at each scheduled timestep

    @property
    def taken_timesteps(self) -> list[float]:
        return self.timesteps[self.skipped :]

    def to_dict(self) -> dict:
        return {
            "steps_requested": self.steps_requested,
            "strength": self.strength,
            "exact_steps": self.exact_steps,
            "steps_total": self.steps_total,
            "skipped": self.skipped,
            "taken": self.taken,
            "timesteps": self.timesteps,
            "sigmas": self.sigmas,
        }


def skip_count(num_inference_steps: int, strength: float, order: int = 1) -> int:
    """diffusers' t_start * order: how many scheduled timesteps img2img skips."""
    init_timestep = min(int(num_inference_steps * strength), num_inference_steps)
    return max(num_inference_steps - init_timestep, 0) * order


def _check(steps: int, strength: float) -> None:
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"steps must be a whole number from 1 to {MAX_STEPS}, got {steps!r}.")
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be between 0 and 1, got {strength!r}.")


def _sigmas_for(scheduler, timesteps: torch.Tensor) -> list[float]:
    """Noise level sigma = sqrt((1 - alpha_bar) / alpha_bar) at each timestep, for any scheduler.

    Karras-style schedulers already hold their sigmas; the others are derived from alphas_cumprod
    (interpolated in log-sigma for fractional timesteps) so every sampler's chart is comparable.
    """
    sigmas = getattr(scheduler, "sigmas", None)
    if sigmas is not None and len(sigmas) >= len(timesteps) and float(sigmas[0]) > 1.0:
        return [float(s) for s in sigmas[: len(timesteps)]]
    alphas = scheduler.alphas_cumprod.to(torch.float64)
    log_sigmas = (((1 - alphas) / alphas) ** 0.5).log()
    t = timesteps.to(torch.float64).clamp(0, len(alphas) - 1)
    lo = t.floor().long()
    hi = t.ceil().long()
    w = t - lo
    return [float(x) for x in ((1 - w) * log_sigmas[lo] + w * log_sigmas[hi]).exp()]


def plan_steps(scheduler_config, sampler: str, steps: int, strength: float, exact_steps: bool = False) -> StepPlan:
    """Plan an img2img run (strength 1 is txt2img's plan: nothing skipped).

    With exact_steps, `steps` is the number of steps SD should take from the image, and the total
    is the smallest one for which diffusers takes exactly that many.
    """
    _check(steps, strength)
    scheduler = make_scheduler(sampler, scheduler_config)
    min_steps = sampler_named(sampler).min_steps
    if not exact_steps:
        if steps < min_steps:
            raise ValueError(f"The {sampler} sampler needs at least {min_steps} steps.")
        return _plan_for_total(scheduler, steps, steps, strength, exact_steps)
    if strength == 0:
        raise ValueError("exact steps needs a strength above 0: at strength 0 the image is returned unchanged.")
    # floor(N * strength) grows by at most one per N, so the first N reaching `steps` is the answer.
    for total in range(max(steps, min_steps), MAX_STEPS * 50 + 1):
        plan = _plan_for_total(scheduler, total, steps, strength, exact_steps)
        if plan.taken == steps:
            return plan
        if plan.taken > steps:
            break
    raise ValueError(
        f"No schedule takes exactly {steps} steps at strength {strength}; raise the strength or lower the steps."
    )


def _plan_for_total(scheduler, total: int, requested: int, strength: float, exact: bool) -> StepPlan:
    scheduler.set_timesteps(total, device="cpu")
    timesteps = scheduler.timesteps
    skipped = skip_count(total, strength, scheduler.order)
    return StepPlan(
        steps_requested=requested,
        strength=strength,
        exact_steps=exact,
        steps_total=len(timesteps),
        skipped=skipped,
        taken=len(timesteps) - skipped,
        num_inference_steps=total,
        timesteps=[float(t) for t in timesteps],
        sigmas=_sigmas_for(scheduler, timesteps),
    )
