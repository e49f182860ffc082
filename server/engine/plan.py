"""The step plan: which of the scheduled denoising steps img2img skips and which it takes.

This is the single source of truth for the engine, the /api/plan endpoint, the page and the
tests. It mirrors diffusers' StableDiffusionImg2ImgPipeline.get_timesteps exactly (same float
arithmetic), so the plan we show is the plan that runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from .samplers import make_scheduler, sampler_named

MAX_STEPS = 200
MAX_TOTAL = MAX_STEPS * 50  # the most scheduled steps exact_steps or min_taken_steps may raise a plan to


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
    min_taken_steps: int = 0  # the floor asked for (0: none; ignored with exact_steps)
    raised_for_min_taken: bool = False  # num_inference_steps was raised above steps_requested to meet it

    @property
    def taken_timesteps(self) -> list[float]:
        return self.timesteps[self.skipped :]

    def to_dict(self) -> dict:
        return {
            "steps_requested": self.steps_requested,
            "strength": self.strength,
            "exact_steps": self.exact_steps,
            "min_taken_steps": self.min_taken_steps,
            "raised_for_min_taken": self.raised_for_min_taken,
            "num_inference_steps": self.num_inference_steps,
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


def _check(steps: int, strength: float, min_taken_steps: int) -> None:
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"steps must be a whole number from 1 to {MAX_STEPS}, got {steps!r}.")
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be between 0 and 1, got {strength!r}.")
    if (not isinstance(min_taken_steps, int) or isinstance(min_taken_steps, bool)
            or not 0 <= min_taken_steps <= MAX_STEPS):
        raise ValueError(f"min_taken_steps must be a whole number from 0 (off) to {MAX_STEPS}, "
                         f"got {min_taken_steps!r}.")


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


def plan_steps(scheduler_config, sampler: str, steps: int, strength: float, exact_steps: bool = False,
               min_taken_steps: int = 0) -> StepPlan:
    """Plan an img2img run (strength 1 is txt2img's plan: nothing skipped).

    With exact_steps, `steps` is the number of steps SD should take from the image, and the total
    is the smallest one for which diffusers takes exactly that many.

    With min_taken_steps (and not exact_steps, which already fixes the steps taken), a plan that
    would take fewer than that many steps gets a larger total instead: the smallest one at which
    the same skip arithmetic takes at least that many (Krita AI Diffusion's apply_strength), so
    low strengths stop collapsing to a step or two. Strength 0 (the init returned unchanged) and
    strength 1 (nothing skipped) are never raised.
    """
    _check(steps, strength, min_taken_steps)
    scheduler = make_scheduler(sampler, scheduler_config)
    spec = sampler_named(sampler)
    most = min(spec.max_steps(scheduler.config) or MAX_TOTAL, MAX_TOTAL)

    def plan_for(total: int) -> StepPlan:
        return _plan_for_total(scheduler, total, steps, strength, exact_steps, min_taken_steps)

    if not exact_steps:
        if steps < spec.min_steps:
            raise ValueError(f"The {sampler} sampler needs at least {spec.min_steps} steps.")
        if steps > most:
            raise ValueError(f"The {sampler} sampler schedules at most {most} steps; lower the steps.")
        plan = plan_for(steps)
        if plan.taken >= min_taken_steps or not 0 < strength < 1:
            return plan
        raised = _first_taking(plan_for, plan, min_taken_steps, strength, scheduler.order, most)
        if raised is None:
            raise ValueError(
                f"At strength {strength:g} the {sampler} sampler cannot take {min_taken_steps} steps within "
                f"{most} scheduled steps; raise the strength or lower the minimum of steps taken.")
        return replace(raised, raised_for_min_taken=True)
    if strength == 0:
        raise ValueError("exact steps needs a strength above 0: at strength 0 the image is returned unchanged.")
    start = max(steps, spec.min_steps)
    plan = plan_for(start) if start <= most else None
    # floor(N * strength) grows by at most one per N, so the first N reaching `steps` is the answer.
    if plan is not None and plan.taken < steps:
        plan = _first_taking(plan_for, plan, steps, strength, scheduler.order, most)
    if plan is None or plan.taken != steps:
        raise ValueError(
            f"No schedule takes exactly {steps} steps at strength {strength}; raise the strength or lower the steps."
        )
    return plan


def _first_taking(plan_for, start: StepPlan, want: int, strength: float, order: int, most: int):
    """The plan of the smallest total above `start`'s that takes at least `want` steps, or None
    when none up to `most` does.

    Planning a total means building its schedule, so the search first steps over totals by the
    skip arithmetic alone. That count is len(timesteps) minus the skip, and a schedule is never
    longer than N * order by more than at the start (PNDM's warm-up adds a fixed few), so no
    total passed over could take enough."""
    extra = max(start.steps_total - start.num_inference_steps * order, 0)
    total = start.num_inference_steps + 1
    while total <= most and total * order - skip_count(total, strength, order) + extra < want:
        total += 1
    while total <= most:
        plan = plan_for(total)
        if plan.taken >= want:
            return plan
        total += 1
    return None


def _plan_for_total(scheduler, total: int, requested: int, strength: float, exact: bool,
                    min_taken: int = 0) -> StepPlan:
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
        min_taken_steps=min_taken,
    )
