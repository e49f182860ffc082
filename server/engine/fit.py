"""Bringing an init image to a size the model can take (multiples of 8)."""
from __future__ import annotations

from PIL import Image

from .request import MAX_SIDE

MULTIPLE = 8


def _round_down(value: int) -> int:
    return max(MULTIPLE, value // MULTIPLE * MULTIPLE)


def prepare_init_image(
    image: Image.Image, width: int | None, height: int | None, fit: bool, native_size: int
) -> tuple[Image.Image, list[str]]:
    """Return the init image as the model will see it, plus warnings for the person.

    With `fit`, the image shrinks (never grows) to fit inside width x height, keeping its aspect
    ratio. Without it, it keeps its own size; either way the sides are rounded down to multiples of
    8 by trimming the right/bottom edge, so the kept pixels are the original ones.
    """
    warnings = []
    w, h = image.size
    if fit:
        box_w, box_h = width or native_size, height or native_size
        scale = min(1.0, box_w / w, box_h / h)
        if scale < 1.0:
            new_size = (max(1, round(w * scale)), max(1, round(h * scale)))
            image = _resize_keeping_hidden_colour(image, new_size)
            w, h = image.size
    target = (_round_down(w), _round_down(h))
    if max(target) > MAX_SIDE:
        raise ValueError(
            f"The init image is {w}×{h}; sides above {MAX_SIDE} px are not supported. Turn on fit to shrink it."
        )
    if target != (w, h):
        if w < MULTIPLE or h < MULTIPLE:
            raise ValueError(f"The init image is {w}×{h}; it needs at least {MULTIPLE} px on each side.")
        image = image.crop((0, 0, *target))
    if min(target) < native_size:
        warnings.append(
            f"The init image is {target[0]}×{target[1]}, smaller than this model's native "
            f"{native_size}×{native_size}; results are usually better at the native size."
        )
    if image.mode not in ("RGB", "RGBA"):  # RGBA stays: its transparency is the inpainting mask
        image = image.convert("RGB")
    return image, warnings


def _resize_keeping_hidden_colour(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Resize; for RGBA, colour and alpha separately. Pillow premultiplies RGBA when resampling,
    which would blacken the colour under alpha 0 that inpainting starts from."""
    if image.mode != "RGBA":
        return image.resize(size, Image.Resampling.LANCZOS)
    rgb = image.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    alpha = image.getchannel("A").resize(size, Image.Resampling.LANCZOS)
    rgb.putalpha(alpha)
    return rgb
