"""Components -> a LoadedModel: the pipeline that holds them, on the device, with fitted previews.

Every source of components (a diffusers folder, a single-file checkpoint, the tiny test model)
ends here, so everything downstream treats them alike.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..previews import PreviewRenderer, load_or_fit_latent_rgb
from .loading import COMPONENTS, LoadedModel, Progress


def _load_taesd(path: Path | None, dtype):
    if path is None or not (path / "taesd" / "config.json").exists():
        return None
    from diffusers import AutoencoderTiny

    return AutoencoderTiny.from_pretrained(path / "taesd", torch_dtype=dtype)



def assemble_model(components: dict, scheduler_config: dict, name: str, is_demo: bool, source: Path | None,
                   device: torch.device, cache_dir: Path | None = None,
                   progress: Progress | None = None) -> LoadedModel:
    """Components -> a LoadedModel: the pipeline helpers on the device, plus fitted previews."""
    from diffusers import StableDiffusionImg2ImgPipeline

    progress = progress or (lambda fraction, message: None)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    pipe = StableDiffusionImg2ImgPipeline(
        **components, safety_checker=None, feature_extractor=None, requires_safety_checker=False
    )
    pipe.set_progress_bar_config(disable=True)
    pipe.to(device)
    if pipe.unet.dtype != dtype:  # components built in memory are float32
        pipe.to(dtype=dtype)
    native = pipe.unet.config.sample_size * pipe.vae_scale_factor

    progress(len(COMPONENTS) / (len(COMPONENTS) + 1), "calibrating latent previews")
    latent_rgb = load_or_fit_latent_rgb(pipe.vae, min(native, 256), device, dtype, cache_dir, source)
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
        previews=PreviewRenderer(pipe.vae, latent_rgb, taesd),
    )
