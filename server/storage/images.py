"""Decode and validate uploaded image bytes.

`decode_upload` is the one gate between bytes from the network and the rest of the
studio: whatever it returns is a fully loaded, metadata-free image in mode "RGB" or
"RGBA", and everything it refuses comes back as an `ImageRejected` carrying an HTTP
status and a sentence the user can act on.
"""

from __future__ import annotations

import io
import re
import struct

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 4096 * 4096

# Pillow format names we accept. Everything else Pillow can parse (EPS, PSD, ICO, ...)
# is refused: each extra decoder is extra attack surface, and EPS needs Ghostscript.
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
_ALLOWED_TEXT = "PNG, JPEG, WebP, GIF, BMP or TIFF"

# Formats Pillow cannot open at all but that people do try to upload; naming them gives a
# clearer answer than "not an image".
_KNOWN_UNSUPPORTED = (
    (b"%PDF-", "PDF"),
    (b"%!PS", "PostScript/EPS"),
    (b"\xc5\xd0\xd3\xc6", "EPS"),
)

# What Pillow's decoders raise on malformed input (see its fuzz tests): not only OSError.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError,
                  TypeError, ZeroDivisionError)


class ImageRejected(Exception):
    """An upload we will not use. `status` is the HTTP code, `message` is for the user."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def decode_upload(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode `data` into a fresh, fully loaded "RGB" or "RGBA" image, or raise ImageRejected.

    RGBA is returned only when some pixel has alpha < 255, and the RGB under alpha 0 is
    kept exactly: transparent regions are repainted later, but their colour is still a hint.
    """
    if not data:
        raise ImageRejected(400, "The upload is empty. Choose an image file and try again.")

    img = _open_lazily(data, max_pixels)
    # Image.open only parsed the header, so this runs before any pixel data is decoded.
    _check_size(img.size, max_pixels)
    try:
        img.load()  # with LOAD_TRUNCATED_IMAGES at its default False, truncation raises
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise _too_large(img.size, max_pixels) from err
    except _DECODE_ERRORS as err:
        raise ImageRejected(
            400, f"The image file is truncated or corrupt: {err}. Re-export it and try again."
        ) from err

    img = _apply_orientation(img)
    img = _to_rgb_or_rgba(img)
    # Copy the pixels into a new image so no EXIF, ICC, palette or text info travels on.
    fresh = Image.new(img.mode, img.size)
    fresh.paste(img)  # no mask: a plain copy, alpha and the RGB under it untouched
    return fresh


def _open_lazily(data: bytes, max_pixels: int) -> Image.Image:
    """Image.open restricted to the allowed formats, with helpful errors for the rest."""
    try:
        img = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        # Pillow refuses headers over 2 × MAX_IMAGE_PIXELS before we see the size; its
        # message carries the pixel count, which is the fact the user needs.
        found = re.search(r"\((\d+) pixels\)", str(err))
        size = _pixels_text(int(found.group(1))) if found else "too many pixels"
        raise ImageRejected(
            413,
            f"The image has {size}; the limit is "
            f"{_pixels_text(_effective_limit(max_pixels))}. Resize it and try again.",
        ) from err
    except UnidentifiedImageError:
        raise _not_allowed(data) from None
    except _DECODE_ERRORS as err:
        raise ImageRejected(
            400, f"The image file is truncated or corrupt: {err}. Re-export it and try again."
        ) from err
    return img


def _not_allowed(data: bytes) -> ImageRejected:
    """415 for formats we recognise but refuse, 400 for bytes that are no image at all."""
    name = _sniff_unsupported(data)
    if name is None:
        try:  # header parse only: this never decodes pixels or runs Ghostscript
            with Image.open(io.BytesIO(data)) as other:
                name = other.format
        except Exception:  # noqa: BLE001 - any failure just means "not an image"
            name = None
    if name is None:
        return ImageRejected(
            400, f"This file is not an image Pillow can read. Upload a {_ALLOWED_TEXT}."
        )
    return ImageRejected(
        415, f"{name} files are not supported. Convert it to a {_ALLOWED_TEXT} and try again."
    )


def _sniff_unsupported(data: bytes) -> str | None:
    for magic, name in _KNOWN_UNSUPPORTED:
        if data.startswith(magic):
            return name
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"<svg", b"<?xml", b"<!doctype svg")) and b"<svg" in head:
        return "SVG"
    return None


def _check_size(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    # Pillow only warns between MAX_IMAGE_PIXELS and twice that; treat its limit as ours
    # too, without touching the (process-global, not thread-safe) warnings filters.
    if width * height > _effective_limit(max_pixels):
        raise _too_large(size, max_pixels)


def _effective_limit(max_pixels: int) -> int:
    pillow_limit = Image.MAX_IMAGE_PIXELS
    return min(max_pixels, pillow_limit) if pillow_limit else max_pixels


def _too_large(size: tuple[int, int], max_pixels: int) -> ImageRejected:
    width, height = size
    return ImageRejected(
        413,
        f"The image is {width}×{height} ({_pixels_text(width * height)}); the limit "
        f"is {_pixels_text(_effective_limit(max_pixels))}. Resize it and try again.",
    )


def _pixels_text(pixels: int) -> str:
    """16777216 -> "16.8 megapixels"; small counts exactly, so "0.0 megapixels" never shows."""
    return f"{pixels / 1e6:.1f} megapixels" if pixels >= 100_000 else f"{pixels} pixels"


def _apply_orientation(img: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(img)
    except _DECODE_ERRORS:
        # Broken EXIF should not cost the user a usable image: keep it as stored.
        return img


def _to_rgb_or_rgba(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        img = _high_depth_to_l(img)
    elif mode == "P":
        # A palette image is transparent if it names a transparent index or has an RGBA palette.
        has_alpha = "transparency" in img.info or (img.palette and img.palette.mode == "RGBA")
        img = img.convert("RGBA" if has_alpha else "RGB")
    elif mode in ("LA", "La", "PA", "RGBa"):
        img = img.convert("RGBA")
    elif mode != "RGBA" and mode != "RGB":
        try:  # 1, L, CMYK, YCbCr, HSV, LAB, ...
            img = img.convert("RGB")
        except ValueError as err:
            raise ImageRejected(
                415, f"Images in colour mode {mode} are not supported. Save it as 8-bit RGB "
                "and try again."
            ) from err

    if img.mode == "RGBA":
        low, _ = img.getchannel("A").getextrema()
        if low == 255:  # alpha present but unused: drop it so nothing gets inpainted
            img = img.convert("RGB")
    elif img.mode != "RGB":
        img = img.convert("RGB")  # from the high-depth path: L -> RGB
    return img


def _high_depth_to_l(img: Image.Image) -> Image.Image:
    """Scale 16-bit, 32-bit integer and float greyscale down to 8 bits without clipping.

    Pillow's own convert("L") clips these at 255, which turns most 16-bit images white.
    """
    values = np.asarray(img)
    if img.mode == "F":
        values = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        peak = float(values.max(initial=0.0))
        # Float images are usually 0..1; otherwise fall back to the integer rule below.
        if peak <= 1.0:
            return Image.fromarray(np.clip(np.rint(values * 255), 0, 255).astype(np.uint8))
        values = np.clip(np.rint(values), 0, 2**32 - 1).astype(np.uint64)
    else:
        values = np.clip(values.astype(np.int64), 0, None).astype(np.uint64)

    # The smallest common bit depth that holds the data decides the shift: 16-bit -> >> 8.
    if img.mode.startswith("I;16"):
        bits = 16
    else:
        peak = int(values.max(initial=0))
        bits = 8 if peak < 2**8 else 16 if peak < 2**16 else 32
    return Image.fromarray((values >> (bits - 8)).astype(np.uint8))


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def apply_repaint_mask(image: Image.Image, mask: Image.Image) -> Image.Image:
    """`image` made transparent where `mask` (a decoded upload) is light: the page's eraser.

    The page sends its mask separately because a browser canvas stores premultiplied alpha,
    which would lose the colour under erased pixels; here the RGB stays exactly as sent.
    """
    if mask.size != image.size:
        raise ImageRejected(400, f"The mask is {mask.width}×{mask.height} but the image is "
                                 f"{image.width}×{image.height}; they must be the same size.")
    repaint = mask.convert("L").point(lambda v: 255 if v >= 128 else 0)
    alpha = image.getchannel("A") if image.mode == "RGBA" else Image.new("L", image.size, 255)
    alpha.paste(0, mask=repaint)
    if alpha.getextrema()[0] == 255:
        return image  # an empty mask: nothing to repaint
    rgba = image.convert("RGB")
    rgba.putalpha(alpha)
    return rgba
