"""Inpainting: an init image's transparent pixels (alpha < 255) are repainted, the rest kept.

The mask comes from the alpha channel; the loop works on it at latent resolution, and an
inpainting UNet (9 input channels) also sees the image with the masked area blanked. At the end
the opaque pixels come back exactly, blended only at the mask's edge (`feathered`).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from PIL import Image, ImageFilter

# Opaque pixels further than 2 x this from a transparent one come back exactly.
INPAINT_FEATHER_PX = 2


def inpaint_mask(image: Image.Image) -> Image.Image | None:
    """The repaint mask (L, 255 = repaint) of an RGBA init: every pixel with alpha < 255."""
    if image.mode != "RGBA":
        return None
    mask = image.getchannel("A").point(lambda a: 255 if a < 255 else 0)
    return mask if mask.getbbox() else None


def feathered(mask: Image.Image, radius: int = INPAINT_FEATHER_PX) -> Image.Image:
    """The compositing weight: 255 on the whole mask, fading to 0 within 2 x radius outside it.

    Dilating by `radius` before a box blur of `radius` keeps every masked pixel at exactly 255
    (fully repainted) and every pixel further than 2 x radius from the mask at exactly 0."""
    return mask.filter(ImageFilter.MaxFilter(2 * radius + 1)).filter(ImageFilter.BoxBlur(radius))


def _mask_tensor(mask: Image.Image) -> torch.Tensor:
    """The mask as a (1, 1, H, W) float tensor, 1.0 = repaint."""
    return torch.from_numpy(np.asarray(mask, dtype=np.float32) / 255.0)[None, None]


def latent_mask(mask: Image.Image, latents: torch.Tensor) -> torch.Tensor:
    """The mask at latent resolution: a latent pixel is repainted if any pixel it covers is."""
    weights = torch.nn.functional.adaptive_max_pool2d(_mask_tensor(mask), latents.shape[-2:])
    return weights.to(device=latents.device, dtype=latents.dtype)


def masked_pixels(image: Image.Image, mask: Image.Image, xl: bool, to_pixels: Callable) -> torch.Tensor:
    """What an inpainting UNet is trained on: the image with the masked area blanked to mid-grey,
    as the model's input (`to_pixels` makes it from a picture).

    SDXL blanks it as diffusers' inpaint pipelines do, `pixels * (mask < 0.5)` (exactly 0, so
    it equals StableDiffusionXLInpaintPipeline). SD 1.x keeps its PIL fill of 127, which is
    -0.004 after normalising, so its outputs stay byte for byte what they were."""
    if xl:
        return to_pixels(image) * (_mask_tensor(mask) < 0.5)
    blank = Image.new("RGB", image.size, (127, 127, 127))
    return to_pixels(Image.composite(blank, image, mask))
