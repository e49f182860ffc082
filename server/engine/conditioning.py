"""What the UNet is conditioned on for one job: the prompt encoding, and for SDXL its extra inputs.

SD 1.x/2.x: one text encoder's hidden states. SDXL: both text encoders' penultimate hidden
states side by side, plus `added_cond_kwargs` (the second encoder's pooled projection and six size
ids). Both are computed with the pipeline's own `encode_prompt`, and put together in the order
diffusers' pipelines use (negative first under classifier-free guidance), so the UNet sees
exactly what it sees inside StableDiffusion(XL)(Img2Img|Inpaint)Pipeline.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

# SDXL's crop ids: diffusers' default crops_coords_top_left, (0, 0), i.e. "not cropped".
SDXL_CROP_TOP_LEFT = (0, 0)


def is_sdxl(pipe) -> bool:
    """SDXL components (two text encoders) are held in an SDXL pipeline; see assemble_model."""
    return getattr(pipe, "text_encoder_2", None) is not None


@dataclass
class Conditioning:
    prompt_embeds: torch.Tensor  # with CFG: negative and positive stacked, negative first
    do_cfg: bool
    unet_kwargs: dict = field(default_factory=dict)  # SDXL: {"added_cond_kwargs": ...}; SD 1.x: none

    @property
    def dtype(self) -> torch.dtype:
        return self.prompt_embeds.dtype


def encode_conditioning(pipe, request, device, width: int, height: int) -> Conditioning:
    """The UNet's conditioning for `request` at an output of width x height (SDXL's size ids)."""
    # Classifier-free guidance as diffusers decides it: not for guidance-distilled UNets.
    do_cfg = request.cfg_scale > 1 and pipe.unet.config.time_cond_proj_dim is None
    # An empty negative prompt is no negative prompt: SD 1.x then encodes "", and SDXL with
    # force_zeros_for_empty_prompt (the base model's setting) uses zeros, as diffusers does.
    negative = request.negative_prompt or None
    if not is_sdxl(pipe):
        prompt_embeds, negative_embeds = pipe.encode_prompt(request.prompt, device, 1, do_cfg, negative)
        if do_cfg:
            prompt_embeds = torch.cat([negative_embeds, prompt_embeds])
        return Conditioning(prompt_embeds, do_cfg)

    prompt_embeds, negative_embeds, pooled, negative_pooled = pipe.encode_prompt(
        prompt=request.prompt, device=device, num_images_per_prompt=1, do_classifier_free_guidance=do_cfg,
        negative_prompt=negative)
    time_ids = sdxl_time_ids(pipe, width, height, prompt_embeds.dtype)
    if do_cfg:
        prompt_embeds = torch.cat([negative_embeds, prompt_embeds])
        pooled = torch.cat([negative_pooled, pooled])
        time_ids = torch.cat([time_ids, time_ids])  # the negative's sizes default to the same
    added = {"text_embeds": pooled.to(device), "time_ids": time_ids.to(device)}
    return Conditioning(prompt_embeds.to(device), do_cfg, {"added_cond_kwargs": added})


def sdxl_time_ids(pipe, width: int, height: int, dtype) -> torch.Tensor:
    """SDXL's size conditioning, (1, 6): original size + crop top-left + target size, each
    (height, width). All three pipelines (txt2img, and img2img/inpaint with
    requires_aesthetics_score=False) build this from the output size; the refiner's aesthetic
    score variant (5 ids) is not supported, and says so."""
    ids = [height, width, *SDXL_CROP_TOP_LEFT, height, width]
    projection_dim = pipe.text_encoder_2.config.projection_dim
    passed = pipe.unet.config.addition_time_embed_dim * len(ids) + projection_dim
    expected = pipe.unet.add_embedding.linear_1.in_features
    if passed != expected:
        raise ValueError(
            f"This SDXL UNet expects an added embedding of {expected} values, but SDXL's six size ids give "
            f"{passed}: a refiner (which takes an aesthetic score) or a mismatched second text encoder "
            f"is not supported.")
    return torch.tensor([ids], dtype=dtype)
