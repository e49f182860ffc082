"""Sampler names offered to users, mapped onto diffusers schedulers.

The model's own scheduler config (betas, timestep spacing, prediction type) is kept; only the
sampling algorithm changes, so every sampler follows the checkpoint's noise schedule.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    LCMScheduler,
    LMSDiscreteScheduler,
    PNDMScheduler,
)



@dataclass(frozen=True)
class Sampler:
    scheduler: type
    overrides: dict
    label: str  # shown to people
    min_steps: int = 1  # PNDM's Runge-Kutta warm-up cannot run fewer
    # The config value that caps how many steps it can schedule: LCM picks its steps from a fixed
    # distillation schedule (original_inference_steps, 50 by default), DDIM from the training ones.
    max_steps_key: str | None = None

    def max_steps(self, config) -> int | None:
        """The most steps this sampler can schedule under a scheduler config (None: no cap of its own)."""
        return int(config[self.max_steps_key]) if self.max_steps_key else None


SAMPLERS: dict[str, Sampler] = {
    "k_lms": Sampler(LMSDiscreteScheduler, {}, "LMS (k_lms)"),
    "ddim": Sampler(DDIMScheduler, {}, "DDIM", max_steps_key="num_train_timesteps"),
    "euler": Sampler(EulerDiscreteScheduler, {}, "Euler"),
    "euler_a": Sampler(EulerAncestralDiscreteScheduler, {}, "Euler ancestral"),
    "dpmpp_2m": Sampler(DPMSolverMultistepScheduler, {}, "DPM++ 2M"),
    "dpmpp_2m_karras": Sampler(DPMSolverMultistepScheduler, {"use_karras_sigmas": True}, "DPM++ 2M Karras"),
    "pndm": Sampler(PNDMScheduler, {}, "PNDM", min_steps=4),
    # For LCM, Hyper-SD and Lightning LoRAs: a few steps (1-8) at a low CFG scale.
    "lcm": Sampler(LCMScheduler, {}, "LCM", max_steps_key="original_inference_steps"),
}
DEFAULT_SAMPLER = "k_lms"


def sampler_named(name: str) -> Sampler:
    try:
        return SAMPLERS[name]
    except KeyError:
        raise ValueError(f"Unknown sampler {name!r}. Choose one of: {', '.join(SAMPLERS)}.") from None


def make_scheduler(sampler: str, base_config):
    """A fresh scheduler for one job: schedulers keep per-run state, so jobs never share one."""
    spec = sampler_named(sampler)
    cls, overrides = spec.scheduler, spec.overrides
    # The same config repairs StableDiffusion pipelines apply on construction, so our
    # schedulers match theirs: SD is trained with steps_offset 1 and never clips x0.
    fixes = {}
    if base_config.get("steps_offset", 1) != 1:
        fixes["steps_offset"] = 1
    if base_config.get("clip_sample", False) or cls is DDIMScheduler:
        fixes["clip_sample"] = False
    return cls.from_config(base_config, **fixes, **overrides)


def predicted_x0(scheduler, step_output, latents, noise_pred, t) -> torch.Tensor:
    """x0 as the scheduler predicts it (LCM names it `denoised`); derived from alphas_cumprod for
    the schedulers that do not return it (DPM-Solver, PNDM), which work on unscaled
    (variance-preserving) latents."""
    for name in ("pred_original_sample", "denoised"):
        x0 = getattr(step_output, name, None)
        if x0 is not None:
            return x0
    alpha = scheduler.alphas_cumprod.to(latents.device)[int(t)].to(latents.dtype)
    if scheduler.config.prediction_type == "v_prediction":
        return alpha.sqrt() * latents - (1 - alpha).sqrt() * noise_pred
    return (latents - (1 - alpha).sqrt() * noise_pred) / alpha.sqrt()
