"""One generation: img2img from an init image, or txt2img without one.

The loop mirrors diffusers' StableDiffusionImg2ImgPipeline.__call__ step by step (same prompt
encoding, same generator draws in the same order, same scheduler calls), so the pixels equal the
pipeline's for the same components, seed and settings. We own the loop because the studio needs
what the pipeline's callbacks cannot give: the noised init frame, x0 previews, and a cancel that
lands within a step and skips the final VAE decode.
"""
from __future__ import annotations

import inspect
import random
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_img2img import retrieve_latents
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from .fit import prepare_init_image
from .loading import LoadedModel
from .plan import StepPlan, plan_steps
from .request import MAX_SEED, GenerationRequest
from .samplers import make_scheduler


class GenerationCancelled(Exception):
    """Raised inside the loop when the job's cancel flag is set."""


@dataclass
class StepFrame:
    index: int  # -1 for the init frame, then 0..taken-1
    step: int  # position among all scheduled steps (the strip cell)
    steps_total: int
    timestep: float
    kind: str  # "init" | "x_t" | "x0"
    latents: torch.Tensor


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


OnPlan = Callable[[StepPlan, str, int], None]
OnStep = Callable[[StepFrame], None]


def _never() -> bool:
    return False


def _predicted_x0(scheduler, step_output, latents, noise_pred, t) -> torch.Tensor:
    """x0 as the scheduler predicts it; derived from alphas_cumprod for the schedulers that
    do not return it (DPM-Solver, PNDM), which work on unscaled (variance-preserving) latents."""
    x0 = getattr(step_output, "pred_original_sample", None)
    if x0 is not None:
        return x0
    alpha = scheduler.alphas_cumprod.to(latents.device)[int(t)].to(latents.dtype)
    if scheduler.config.prediction_type == "v_prediction":
        return alpha.sqrt() * latents - (1 - alpha).sqrt() * noise_pred
    return (latents - (1 - alpha).sqrt() * noise_pred) / alpha.sqrt()


def generate(
    model: LoadedModel,
    request: GenerationRequest,
    init_image: Image.Image | None = None,
    on_plan: OnPlan | None = None,
    on_step: OnStep | None = None,
    should_cancel: Callable[[], bool] = _never,
) -> GenerationResult:
    started = time.perf_counter()
    pipe = model.pipe
    device, dtype = model.device, model.dtype

    # 1. Settings: seed, mode, size, and the init image fitted to a size the VAE can take.
    seed = request.seed if request.seed is not None else random.randint(0, MAX_SEED)
    warnings: list[str] = []
    mode = "txt2img" if init_image is None else "img2img"
    if init_image is not None:
        init_image, fit_warnings = prepare_init_image(
            init_image, request.width, request.height, request.fit, model.native_size
        )
        warnings += fit_warnings
        width, height = init_image.size
    else:
        width, height = request.width or model.native_size, request.height or model.native_size

    # 2. The step plan: the single source of truth the page and API also use.
    strength = request.strength if mode == "img2img" else 1.0
    plan = plan_steps(model.scheduler_config, request.sampler, request.steps, strength, request.exact_steps)
    if on_plan:
        on_plan(plan, mode, seed)

    # Strength 0 keeps the original intact: no noise, no VAE round trip.
    if mode == "img2img" and plan.taken == 0:
        result_image = init_image
        return GenerationResult(result_image, seed, mode, plan, width, height, warnings, None,
                                time.perf_counter() - started)

    generator = torch.Generator(device="cpu").manual_seed(seed)
    with torch.no_grad():
        # 3. Encode the prompt (classifier-free guidance as diffusers decides it).
        do_cfg = request.cfg_scale > 1 and pipe.unet.config.time_cond_proj_dim is None
        prompt_embeds, negative_embeds = pipe.encode_prompt(
            request.prompt, device, 1, do_cfg, request.negative_prompt or None
        )
        if do_cfg:
            prompt_embeds = torch.cat([negative_embeds, prompt_embeds])

        # 4. Timesteps: a fresh scheduler per job, started where the plan says.
        scheduler = make_scheduler(request.sampler, model.scheduler_config)
        scheduler.set_timesteps(plan.num_inference_steps, device=device)
        timesteps = scheduler.timesteps[plan.skipped :]
        if hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(plan.skipped)

        # 5. Latents: the init encoded and noised to the insertion point, or pure noise.
        if mode == "img2img":
            image = pipe.image_processor.preprocess(init_image).to(device=device, dtype=prompt_embeds.dtype)
            init_latents = retrieve_latents(pipe.vae.encode(image), generator=generator)
            init_latents = pipe.vae.config.scaling_factor * init_latents
            noise = randn_tensor(init_latents.shape, generator=generator, device=device, dtype=prompt_embeds.dtype)
            latents = scheduler.add_noise(init_latents, noise, timesteps[:1])
        else:
            shape = (1, pipe.unet.config.in_channels, height // pipe.vae_scale_factor, width // pipe.vae_scale_factor)
            latents = randn_tensor(shape, generator=generator, device=device, dtype=prompt_embeds.dtype)
            latents = latents * scheduler.init_noise_sigma
        if on_step:
            on_step(StepFrame(-1, plan.skipped, plan.steps_total, float(timesteps[0]), "init", latents))

        # 6. Extra step arguments, as diffusers' prepare_extra_step_kwargs passes them.
        step_params = set(inspect.signature(scheduler.step).parameters)
        extra = {k: v for k, v in (("eta", 0.0), ("generator", generator)) if k in step_params}

        # 7. The denoising loop.
        for i, t in enumerate(timesteps):
            if should_cancel():
                raise GenerationCancelled()
            model_input = torch.cat([latents] * 2) if do_cfg else latents
            model_input = scheduler.scale_model_input(model_input, t)
            noise_pred = pipe.unet(model_input, t, encoder_hidden_states=prompt_embeds, return_dict=False)[0]
            if do_cfg:
                uncond, text = noise_pred.chunk(2)
                noise_pred = uncond + request.cfg_scale * (text - uncond)
            step_output = scheduler.step(noise_pred, t, latents, **extra, return_dict=True)
            previous = latents
            latents = step_output.prev_sample
            if on_step and request.preview != "off":
                kind = request.preview_kind
                frame = latents if kind == "x_t" else _predicted_x0(scheduler, step_output, previous, noise_pred, t)
                on_step(StepFrame(i, plan.skipped + i, plan.steps_total, float(t), kind, frame))

        # 8. Decode, unless cancelled at the last moment.
        if should_cancel():
            raise GenerationCancelled()
        decoded = pipe.vae.decode(latents / pipe.vae.config.scaling_factor, return_dict=False, generator=generator)[0]
        result_image = pipe.image_processor.postprocess(decoded, output_type="pil")[0]

    return GenerationResult(result_image, seed, mode, plan, width, height, warnings, latents,
                            time.perf_counter() - started)
