"""One generation: img2img from an init image, inpainting where it is transparent, or txt2img.

The loop mirrors diffusers' StableDiffusionImg2ImgPipeline.__call__ step by step (same prompt
encoding, same generator draws in the same order, same scheduler calls), so the pixels equal the
pipeline's for the same components, seed and settings. SDXL components run through the same loop
and equal StableDiffusionXLImg2ImgPipeline / StableDiffusionXLPipeline: only the conditioning
(conditioning.py) and the VAE's float32 upcast differ. We own the loop because the studio needs
what the pipeline's callbacks cannot give: the noised init frame, x0 previews, and a cancel that
lands within a step and skips the final VAE decode. Inpainting's mask work is in inpaint.py; what
the loop hands out (frames, the result) in results.py.

`Generation` holds what the outputs of one job share (the fitted init image and its mask, the
prompt encoding, the init image's VAE posterior), so a strength sweep encodes each once and every
item still equals a separate run with the same settings.
"""
from __future__ import annotations

import inspect
import time
from typing import Callable

import torch
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_img2img import retrieve_latents
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from .batch import output_items
from .conditioning import Conditioning, encode_conditioning, is_sdxl
from .fit import prepare_init_image
from .inpaint import feathered, inpaint_mask, latent_mask, masked_pixels
from .loading import LoadedModel
from .plan import plan_steps
from .request import GenerationRequest
from .results import GenerationCancelled, GenerationResult, OnPlan, OnStep, StepFrame
from .samplers import make_scheduler, predicted_x0
from .variations import blend_variations


def _never() -> bool:
    return False


def generate(
    model: LoadedModel,
    request: GenerationRequest,
    init_image: Image.Image | None = None,
    on_plan: OnPlan | None = None,
    on_step: OnStep | None = None,
    should_cancel: Callable[[], bool] = _never,
) -> GenerationResult:
    """One output with the request's own strength, seed and variations."""
    item = output_items(request)[0]
    return Generation(model, request, init_image).run(
        item.strength, item.seed, item.with_variations, on_plan, on_step, should_cancel)


class Generation:
    """The shared, seed-independent part of a job's outputs; `run` makes one output."""

    def __init__(self, model: LoadedModel, request: GenerationRequest, init_image: Image.Image | None = None):
        self.model, self.request = model, request
        self.warnings: list[str] = []
        self.mask: Image.Image | None = None  # L, 255 = repaint
        self.init_image = None
        if init_image is None:
            self.mode = "txt2img"
            self.width = request.width or model.native_size
            self.height = request.height or model.native_size
        else:
            fitted, fit_warnings = prepare_init_image(
                init_image, request.width, request.height, request.fit, model.native_size)
            self.warnings += fit_warnings
            self.mask = inpaint_mask(fitted)
            self.mode = "inpaint" if self.mask is not None else "img2img"
            self.init_image = fitted.convert("RGB")  # RGB under alpha 0 is kept: the repaint's start
            self.width, self.height = fitted.size
        self.xl = is_sdxl(model.pipe)
        self._conditioning: Conditioning | None = None
        self._init_posterior = None
        self._masked_image_posterior = None

    # -- shared encodings, each computed once ---------------------------------------------------
    def _condition(self) -> Conditioning:
        if self._conditioning is None:
            self._conditioning = encode_conditioning(self.model.pipe, self.request, self.model.device,
                                                     self.width, self.height)
        return self._conditioning

    def _pixels(self, image: Image.Image) -> torch.Tensor:
        return self.model.pipe.image_processor.preprocess(image)

    def _posterior(self, pixels: torch.Tensor, dtype):
        """The VAE's latent distribution for an image: deterministic, so it is shared; sampling
        from it uses each run's own generator, exactly as diffusers' retrieve_latents does.

        The pixels go to the model's dtype first, then to the VAE's: a no-op for SD 1.x, and for
        an SDXL VAE kept in float32 (force_upcast) the same rounding as the SDXL pipelines'
        `image.to(dtype)` followed by `image.float()`."""
        vae = self.model.pipe.vae
        return vae.encode(pixels.to(device=self.model.device, dtype=dtype).to(vae.dtype))

    def _sample_latents(self, posterior, generator, dtype) -> torch.Tensor:
        """Scaled latents sampled from a posterior, in the model's dtype (the pipelines' order:
        cast, then scale)."""
        return self.model.pipe.vae.config.scaling_factor * retrieve_latents(posterior, generator=generator).to(dtype)

    # -- one output -------------------------------------------------------------------------------
    def run(
        self,
        strength: float,
        seed: int,
        with_variations=(),
        on_plan: OnPlan | None = None,
        on_step: OnStep | None = None,
        should_cancel: Callable[[], bool] = _never,
        item: int = 0,
    ) -> GenerationResult:
        started = time.perf_counter()
        model, request, mode = self.model, self.request, self.mode
        pipe, device = model.pipe, model.device
        with_variations = tuple((int(s), float(w)) for s, w in with_variations if w > 0)

        def result(image, latents=None):
            return GenerationResult(image, seed, mode, plan, self.width, self.height, list(self.warnings), latents,
                                    time.perf_counter() - started, None if mode == "txt2img" else strength,
                                    with_variations)

        # 1. The step plan: the single source of truth the page and API also use.
        strength = strength if mode != "txt2img" else 1.0
        plan = plan_steps(model.scheduler_config, request.sampler, request.steps, strength, request.exact_steps,
                          request.min_taken_steps)
        if on_plan:
            on_plan(plan, mode, seed, item)

        # Strength 0 keeps the original intact: no noise, no VAE round trip.
        if mode != "txt2img" and plan.taken == 0:
            return result(self.init_image)

        generator = torch.Generator(device="cpu").manual_seed(seed)
        with torch.no_grad():
            # 2. Encode the prompt (classifier-free guidance as diffusers decides it; SDXL's pooled
            # embeddings and size ids ride along in cond.unet_kwargs).
            cond = self._condition()
            prompt_embeds, do_cfg, dtype = cond.prompt_embeds, cond.do_cfg, cond.dtype

            # 3. Timesteps: a fresh scheduler per output, started where the plan says.
            scheduler = make_scheduler(request.sampler, model.scheduler_config)
            scheduler.set_timesteps(plan.num_inference_steps, device=device)
            timesteps = scheduler.timesteps[plan.skipped :]
            if hasattr(scheduler, "set_begin_index"):
                scheduler.set_begin_index(plan.skipped)

            # 4. Latents: the init encoded and noised to the insertion point, or pure noise. The
            # variation noises are blended into the noise the seed drew (InvokeAI's -v/-V).
            if mode == "txt2img":
                shape = (1, pipe.vae.config.latent_channels, self.height // pipe.vae_scale_factor,
                         self.width // pipe.vae_scale_factor)
                latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
                latents = blend_variations(latents, with_variations) * scheduler.init_noise_sigma
            else:
                if self._init_posterior is None:
                    self._init_posterior = self._posterior(self._pixels(self.init_image), dtype)
                init_latents = self._sample_latents(self._init_posterior, generator, dtype)
                if self.xl and mode == "inpaint":
                    # StableDiffusionXLInpaintPipeline copies them (a `repeat` over the batch): the
                    # contiguous layout changes a CPU convolution's rounding, so we copy them too.
                    init_latents = init_latents.contiguous()
                noise = randn_tensor(init_latents.shape, generator=generator, device=device, dtype=dtype)
                noise = blend_variations(noise, with_variations)
                latents = scheduler.add_noise(init_latents, noise, timesteps[:1])
            inpaint_inputs = self._inpaint_inputs(latents, generator, do_cfg) if mode == "inpaint" else None
            if on_step:
                on_step(StepFrame(-1, plan.skipped, plan.steps_total, float(timesteps[0]), "init", latents, item))

            # Step frames cost an x0 estimate at most, but nobody needs them with previews and
            # saved intermediates both off.
            wants_frames = request.preview != "off" or request.save_intermediates != "off"

            # 5. Extra step arguments, as diffusers' prepare_extra_step_kwargs passes them.
            step_params = set(inspect.signature(scheduler.step).parameters)
            extra = {k: v for k, v in (("eta", 0.0), ("generator", generator)) if k in step_params}

            # 6. The denoising loop.
            for i, t in enumerate(timesteps):
                if should_cancel():
                    raise GenerationCancelled()
                step_started = time.perf_counter()
                model_input = torch.cat([latents] * 2) if do_cfg else latents
                model_input = scheduler.scale_model_input(model_input, t)
                if inpaint_inputs is not None and inpaint_inputs["unet_extra"] is not None:
                    model_input = torch.cat([model_input, *inpaint_inputs["unet_extra"]], dim=1)
                noise_pred = pipe.unet(model_input, t, encoder_hidden_states=prompt_embeds, **cond.unet_kwargs,
                                       return_dict=False)[0]
                if do_cfg:
                    uncond, text = noise_pred.chunk(2)
                    noise_pred = uncond + request.cfg_scale * (text - uncond)
                step_output = scheduler.step(noise_pred, t, latents, **extra, return_dict=True)
                previous = latents
                latents = step_output.prev_sample
                if inpaint_inputs is not None and inpaint_inputs["unet_extra"] is None:
                    # A plain 4-channel UNet inpaints by latent blending, as diffusers' inpaint
                    # pipeline does: outside the mask, put back the init noised to the next step.
                    known = init_latents
                    if i < len(timesteps) - 1:
                        known = scheduler.add_noise(init_latents, noise, timesteps[i + 1 : i + 2])
                    keep = inpaint_inputs["mask"]
                    latents = (1 - keep) * known + keep * latents
                if on_step and wants_frames:
                    kind = request.preview_kind
                    x0 = None if kind == "x_t" else predicted_x0(scheduler, step_output, previous, noise_pred, t)
                    _synchronize(device)  # a frame is copied to the CPU next anyway; this makes step_s true
                    step_s = time.perf_counter() - step_started
                    if kind == "both":  # the strip's x_t, with the large view's x0 of the same step
                        frame = StepFrame(i, plan.skipped + i, plan.steps_total, float(t), "x_t", latents, item,
                                          x0=x0, step_s=step_s)
                    else:
                        frame = StepFrame(i, plan.skipped + i, plan.steps_total, float(t), kind,
                                          latents if kind == "x_t" else x0, item, step_s=step_s)
                    on_step(frame)

            # 7. Decode, unless cancelled at the last moment. An SDXL VAE kept in float32 gets the
            # latents cast first, then unscaled, as the SDXL pipelines' upcast does (a no-op for SD 1.x).
            if should_cancel():
                raise GenerationCancelled()
            decoded = pipe.vae.decode(latents.to(pipe.vae.dtype) / pipe.vae.config.scaling_factor,
                                      return_dict=False, generator=generator)[0]
            image = pipe.image_processor.postprocess(decoded, output_type="pil")[0]

        # 8. Inpainting: the opaque pixels come back exactly, blended only at the mask's edge.
        if mode == "inpaint":
            image = Image.composite(image, self.init_image, feathered(self.mask))
        return result(image, latents)

    def _inpaint_inputs(self, latents, generator, do_cfg) -> dict:
        """The latent mask, and for a 9-channel inpainting UNet its extra inputs (mask, masked image)."""
        pipe = self.model.pipe
        mask = latent_mask(self.mask, latents)
        in_channels = pipe.unet.config.in_channels
        blending = in_channels == latents.shape[1]
        if blending and not self.xl:
            return {"mask": mask, "unet_extra": None}
        if not blending and in_channels != 2 * latents.shape[1] + 1:
            raise ValueError(f"This UNet takes {in_channels} input channels; inpainting needs 4 (latent blending) "
                             f"or 9 (an inpainting checkpoint).")
        if self._masked_image_posterior is None:
            self._masked_image_posterior = self._posterior(
                masked_pixels(self.init_image, self.mask, self.xl, self._pixels), latents.dtype)
        masked = self._sample_latents(self._masked_image_posterior, generator, latents.dtype)
        if blending:
            # StableDiffusionXLInpaintPipeline samples the masked image's latents even for a
            # 4-channel UNet, which never sees them; we draw them too, so the generator stays in
            # step for the samplers that draw from it later (Euler ancestral).
            return {"mask": mask, "unet_extra": None}
        extra = [mask, masked]
        if do_cfg:
            extra = [torch.cat([x] * 2) for x in extra]
        return {"mask": mask, "unet_extra": extra}


def _synchronize(device: torch.device) -> None:
    """Wait for the device's queued work: CUDA and MPS run asynchronously, so a step's wall time
    is only known once it has finished."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
