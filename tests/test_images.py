"""decode_upload: every accepted kind of image comes out RGB/RGBA, every bad one is refused
with a status and a sentence that says what to do. All images are built in memory."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from server.storage.images import DEFAULT_MAX_PIXELS, ImageRejected, decode_upload
from server.storage.uploads import UploadStore


def encode(img: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def gradient_rgb(width=24, height=16) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.uint8)
    y = np.linspace(0, 255, height, dtype=np.uint8)
    rgb = np.stack(np.broadcast_arrays(x[None, :], y[:, None], 255 - x[None, :]), axis=-1)
    return Image.fromarray(np.ascontiguousarray(rgb), "RGB")


def png_with_size(width: int, height: int) -> bytes:
    """A tiny real PNG whose IHDR claims width×height: a decompression-bomb-style header."""
    data = bytearray(encode(Image.new("RGB", (1, 1)), "PNG"))
    ihdr_at = 8  # after the signature: length(4) type(4) data(13) crc(4)
    assert data[ihdr_at + 4:ihdr_at + 8] == b"IHDR"
    body = struct.pack(">II", width, height) + bytes(data[ihdr_at + 16:ihdr_at + 21])
    data[ihdr_at + 8:ihdr_at + 21] = body
    data[ihdr_at + 21:ihdr_at + 25] = struct.pack(">I", zlib.crc32(b"IHDR" + body))
    return bytes(data)


def rejected(data: bytes, tmp_path, **kwargs) -> ImageRejected:
    """Run the upload path (decode, then store) and return the rejection; nothing may be stored."""
    store = UploadStore(tmp_path / "uploads")
    with pytest.raises(ImageRejected) as info:
        store.save(decode_upload(data, **kwargs))
    folder = tmp_path / "uploads"
    assert not folder.exists() or not any(folder.iterdir())
    return info.value


# ---- accepted formats ---------------------------------------------------------------

@pytest.mark.parametrize("fmt, params, lossless", [
    ("PNG", {}, True),
    ("BMP", {}, True),
    ("TIFF", {}, True),
    ("WEBP", {"lossless": True}, True),
    ("JPEG", {"quality": 95}, False),
    ("GIF", {}, False),  # palette quantisation
])
def test_accepted_formats_decode_to_rgb(fmt, params, lossless):
    source = gradient_rgb()
    out = decode_upload(encode(source, fmt, **params))
    assert out.mode == "RGB"
    assert out.size == source.size
    diff = np.abs(np.asarray(out, np.int16) - np.asarray(source, np.int16))
    assert diff.max() == 0 if lossless else diff.mean() < 12


def test_gif_uses_first_frame():
    first, second = Image.new("RGB", (8, 8), (255, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 255))
    data = encode(first, "GIF", save_all=True, append_images=[second], duration=100)
    assert Image.open(io.BytesIO(data)).n_frames == 2
    out = decode_upload(data)
    assert out.getpixel((4, 4)) == (255, 0, 0)


def test_result_is_fresh_and_carries_no_metadata():
    exif = Image.Exif()
    exif[0x010E] = "a description that must not travel"  # ImageDescription
    data = encode(gradient_rgb(), "JPEG", exif=exif.tobytes(), comment=b"hello")
    out = decode_upload(data)
    assert out.info == {}
    assert len(out.getexif()) == 0
    out.putpixel((0, 0), (1, 2, 3))  # loaded and writable: not tied to the upload bytes


# ---- EXIF orientation -----------------------------------------------------------------

@pytest.mark.parametrize("orientation, red_half", [
    (6, "top"),     # stored image is rotated 90° clockwise for display: left column -> top row
    (8, "bottom"),  # rotated 90° counter-clockwise: left column -> bottom row
])
def test_exif_orientation_is_applied(orientation, red_half):
    stored = Image.new("RGB", (32, 16), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 16, 16))  # left half red
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = decode_upload(encode(stored, "JPEG", quality=95, exif=exif.tobytes()))

    assert out.size == (16, 32)
    top, bottom = out.getpixel((8, 8)), out.getpixel((8, 24))
    red, blue = (top, bottom) if red_half == "top" else (bottom, top)
    assert red[0] > 200 and red[2] < 60
    assert blue[2] > 200 and blue[0] < 60
    assert len(out.getexif()) == 0  # orientation not applied twice by a later viewer


# ---- mode conversions --------------------------------------------------------------

def palette_image(transparent: bool) -> bytes:
    img = Image.new("P", (2, 1))
    img.putpalette([10, 20, 30, 200, 150, 100] + [0] * 762)
    img.putpixel((0, 0), 0)
    img.putpixel((1, 0), 1)
    return encode(img, "PNG", **({"transparency": 0} if transparent else {}))


def test_palette_with_transparency_becomes_rgba_keeping_hidden_colour():
    out = decode_upload(palette_image(transparent=True))
    assert out.mode == "RGBA"
    assert out.getpixel((0, 0)) == (10, 20, 30, 0)
    assert out.getpixel((1, 0)) == (200, 150, 100, 255)


def test_palette_without_transparency_becomes_rgb():
    out = decode_upload(palette_image(transparent=False))
    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == (10, 20, 30)


def test_transparent_gif_becomes_rgba():
    img = Image.new("P", (2, 1))
    img.putpalette([10, 20, 30, 200, 150, 100] + [0] * 762)
    img.putpixel((1, 0), 1)
    out = decode_upload(encode(img, "GIF", transparency=0))
    assert out.mode == "RGBA"
    assert out.getpixel((0, 0))[3] == 0 and out.getpixel((1, 0)) == (200, 150, 100, 255)


def test_la_becomes_rgba_and_keeps_grey_under_alpha_zero():
    la = Image.fromarray(np.array([[[77, 0], [140, 255]]], np.uint8), "LA")
    out = decode_upload(encode(la, "PNG"))
    assert out.mode == "RGBA"
    assert out.getpixel((0, 0)) == (77, 77, 77, 0)
    assert out.getpixel((1, 0)) == (140, 140, 140, 255)


def test_opaque_alpha_is_dropped():
    la = Image.fromarray(np.array([[[77, 255], [140, 255]]], np.uint8), "LA")
    assert decode_upload(encode(la, "PNG")).mode == "RGB"
    rgba = gradient_rgb().convert("RGBA")
    assert decode_upload(encode(rgba, "PNG")).mode == "RGB"


def test_l_and_1_become_rgb():
    grey = np.arange(0, 256, 16, dtype=np.uint8).reshape(4, 4)
    out = decode_upload(encode(Image.fromarray(grey, "L"), "PNG"))
    assert out.mode == "RGB"
    assert np.array_equal(np.asarray(out), np.repeat(grey[..., None], 3, axis=-1))

    bits = Image.new("1", (4, 1))
    bits.putpixel((1, 0), 1)
    out = decode_upload(encode(bits, "PNG"))
    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == (0, 0, 0) and out.getpixel((1, 0)) == (255, 255, 255)


def test_cmyk_jpeg_becomes_rgb():
    c, m, y, k = 0, 200, 50, 20
    data = encode(Image.new("CMYK", (8, 8), (c, m, y, k)), "JPEG", quality=95)
    stored = Image.open(io.BytesIO(data))
    assert stored.mode == "CMYK"
    # JPEG is lossy, so take the inks as decoded, then apply the plain (no ICC) CMYK -> RGB
    # rule: each channel is what its ink and the black ink let through.
    *inks, black = stored.getpixel((4, 4))
    assert abs(inks[1] - m) < 30  # still the colour we made
    expected = [(255 - ink) * (255 - black) / 255 for ink in inks]
    out = decode_upload(data)
    assert out.mode == "RGB"
    assert np.abs(np.array(out.getpixel((4, 4))) - expected).max() <= 1


SIXTEEN_BIT = np.array([[0, 255, 256, 4000], [32768, 40000, 65280, 65535]], np.uint16)


@pytest.mark.parametrize("make, fmt", [
    (lambda a: Image.fromarray(a), "PNG"),                                  # I;16
    (lambda a: Image.frombytes("I;16B", a.shape[::-1], a.astype(">u2").tobytes()), "TIFF"),
    (lambda a: Image.fromarray(a.astype(np.int32)), "TIFF"),                 # I
])
def test_sixteen_bit_grey_is_scaled_not_clipped(make, fmt):
    data = encode(make(SIXTEEN_BIT), fmt)
    assert Image.open(io.BytesIO(data)).mode in ("I;16", "I;16B", "I")
    out = decode_upload(data)
    assert out.mode == "RGB"
    expected = (SIXTEEN_BIT >> 8).astype(np.uint8)
    assert np.array_equal(np.asarray(out)[..., 0], expected)
    assert len(np.unique(np.asarray(out))) > 2  # not all clipped to 255


def test_float_grey_in_zero_one_is_scaled():
    values = np.array([[0.0, 0.25], [0.5, 1.0]], np.float32)
    out = decode_upload(encode(Image.fromarray(values, "F"), "TIFF"))
    assert np.array_equal(np.asarray(out)[..., 0], np.rint(values * 255).astype(np.uint8))


def rgba_with_hidden_colour() -> np.ndarray:
    pixels = np.zeros((6, 8, 4), np.uint8)
    pixels[...] = (200, 100, 50, 255)
    pixels[1:3, 2:5] = (12, 34, 56, 0)    # fully transparent, distinct colour underneath
    pixels[4, :] = (90, 180, 240, 128)    # half transparent
    return pixels


@pytest.mark.parametrize("fmt, params", [("PNG", {}), ("TIFF", {}),
                                         ("WEBP", {"lossless": True, "exact": True})])
def test_rgba_keeps_rgb_under_alpha_zero(fmt, params):
    pixels = rgba_with_hidden_colour()
    out = decode_upload(encode(Image.fromarray(pixels, "RGBA"), fmt, **params))
    assert out.mode == "RGBA"
    assert np.array_equal(np.asarray(out), pixels)


# ---- rejections ------------------------------------------------------------------------

@pytest.mark.parametrize("data", [b"", b"hello, this is a text file\n", bytes(range(256)) * 8])
def test_non_images_are_400(data, tmp_path):
    err = rejected(data, tmp_path)
    assert err.status == 400
    assert "PNG" in err.message or "empty" in err.message


SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'


@pytest.mark.parametrize("data, name", [
    (SVG, "SVG"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "SVG"),
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "PDF"),
    (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "EPS"),
    (encode(Image.new("RGB", (16, 16)), "ICO"), "ICO"),  # Pillow reads it; we do not accept it
])
def test_recognised_but_unsupported_formats_are_415(data, name, tmp_path):
    err = rejected(data, tmp_path)
    assert err.status == 415
    assert name in err.message and "PNG" in err.message


def cut(data: bytes, keep: float) -> bytes:
    return data[: int(len(data) * keep)]


@pytest.mark.parametrize("data", [
    cut(encode(Image.effect_noise((64, 64), 60).convert("RGB"), "PNG"), 0.5),
    cut(encode(Image.effect_noise((64, 64), 60).convert("RGB"), "JPEG"), 0.5),
    cut(encode(Image.effect_noise((64, 64), 60).convert("RGB"), "JPEG"), 0.95),
])
def test_truncated_files_are_400(data, tmp_path):
    err = rejected(data, tmp_path)
    assert err.status == 400
    assert "truncated" in err.message and "try again" in err.message


def test_header_too_large_for_our_limit_is_413_before_decoding(tmp_path):
    # 5000×5000 is under Pillow's own bomb limit, so our check is what stops it; the file
    # has one pixel of data, so decoding it would fail as truncated (400) instead.
    err = rejected(png_with_size(5000, 5000), tmp_path)
    assert err.status == 413
    assert "5000×5000" in err.message
    assert f"{5000 * 5000 / 1e6:.1f} megapixels" in err.message
    assert f"{DEFAULT_MAX_PIXELS / 1e6:.1f} megapixels" in err.message


def test_decompression_bomb_header_is_413(tmp_path):
    err = rejected(png_with_size(20000, 20000), tmp_path)
    assert err.status == 413
    assert f"{20000 * 20000 / 1e6:.1f} megapixels" in err.message
    assert f"{DEFAULT_MAX_PIXELS / 1e6:.1f} megapixels" in err.message


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_pillow_warning_range_is_413_even_with_a_higher_limit(tmp_path):
    # Between Pillow's warning and error thresholds; our own limit raised above both.
    side = int((Image.MAX_IMAGE_PIXELS * 1.2) ** 0.5)
    err = rejected(png_with_size(side, side), tmp_path, max_pixels=10**10)
    assert err.status == 413 and f"{side}×{side}" in err.message


@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")
def test_pillow_warning_raised_as_error_is_413(tmp_path):
    side = int((Image.MAX_IMAGE_PIXELS * 1.2) ** 0.5)
    err = rejected(png_with_size(side, side), tmp_path, max_pixels=10**10)
    assert err.status == 413 and "megapixels" in err.message


def test_custom_pixel_limit(tmp_path):
    data = encode(Image.new("RGB", (64, 64)), "PNG")
    err = rejected(data, tmp_path, max_pixels=1000)
    assert err.status == 413
    assert "64×64 (4096 pixels)" in err.message and "1000 pixels" in err.message
    assert decode_upload(data, max_pixels=64 * 64).size == (64, 64)  # the limit is inclusive
