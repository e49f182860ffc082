"""Components -> a LoadedModel: the pipeline that holds them, on the device, with fitted previews.

Every source of components (a diffusers folder, a single-file checkpoint, the tiny test model)
ends here, so everything downstream treats them alike.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .previews import PreviewRenderer, load_or_fit_preview_maps
from .conditioning import is_sdxl
from .loading import COMPONENTS, LoadedModel, Progress


def _load_taesd(path: Path | None, dtype):
    if path is None or not (path / "taesd" / "config.json").exists():
        return None
    from diffusers import AutoencoderTiny

    return AutoencoderTiny.from_pretrained(path / "taesd", torch_dtype=dtype)



def _pipeline(components: dict, force_zeros_for_empty_prompt: bool):
    """The pipeline that holds the components and lends its helpers (prompt encoding, image
    processing): SDXL's when there is a second text encoder, SD's otherwise."""
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionXLImg2ImgPipeline

    if "text_encoder_2" in components or "tokenizer_2" in components:
        # SDXL base: size ids without an aesthetic score (the refiner's), and no invisible
        # watermark, which would change the pixels.
        return StableDiffusionXLImg2ImgPipeline(
            **components, requires_aesthetics_score=False,
            force_zeros_for_empty_prompt=force_zeros_for_empty_prompt, add_watermarker=False)
    return StableDiffusionImg2ImgPipeline(
        **components, safety_checker=None, feature_extractor=None, requires_safety_checker=False
    )


def assemble_model(components: dict, scheduler_config: dict, name: str, is_demo: bool, source: Path | None,
                   device: torch.device, cache_dir: Path | None = None,
                   progress: Progress | None = None, force_zeros_for_empty_prompt: bool = True,
                   dtype: torch.dtype | None = None) -> LoadedModel:
    """Components -> a LoadedModel: the pipeline helpers on the device, plus fitted previews.

    `force_zeros_for_empty_prompt` (SDXL only; True in SDXL base's model_index.json): an empty
    negative prompt conditions on zeros rather than on the encoding of "". `dtype` defaults to
    float16 on CUDA and float32 elsewhere."""
    progress = progress or (lambda fraction, message: None)
    dtype = dtype or (torch.float16 if device.type == "cuda" else torch.float32)
    pipe = _pipeline(components, force_zeros_for_empty_prompt)
    pipe.set_progress_bar_config(disable=True)
    pipe.to(device)
    if pipe.unet.dtype != dtype:  # components built in memory are float32
        pipe.to(dtype=dtype)
    if is_sdxl(pipe) and pipe.vae.config.force_upcast and pipe.vae.dtype == torch.float16:
        # SDXL's VAE overflows in float16. Its pipelines upcast it to float32 around every encode
        # and decode; we keep it there and cast at its boundary (generate.py), which computes the
        # same thing without moving the weights twice per image.
        pipe.vae.to(dtype=torch.float32)
    native = pipe.unet.config.sample_size * pipe.vae_scale_factor

    progress(len(COMPONENTS) / (len(COMPONENTS) + 1), "calibrating latent previews")
    maps = load_or_fit_preview_maps(pipe.vae, min(native, 256), device, pipe.vae.dtype, cache_dir, source)
    taesd = _load_taesd(source, dtype)
    if taesd is not None:
        taesd.to(device)
    progress(1.0, "ready")
    return LoadedModel(
        name=name,
        source=str(source) if source else None,
        is_demo=is_demo,
        device=device,
        dtype=dtype,
        pipe=pipe,
        scheduler_config=dict(scheduler_config),
        native_size=native,
        previews=PreviewRenderer(pipe.vae, maps.latent_rgb, taesd, patch=maps.patch),
    )
