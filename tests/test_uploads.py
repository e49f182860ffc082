"""UploadStore: content-addressed PNG files under root, nothing outside it."""

import hashlib
import io
import os

import numpy as np
import pytest
from PIL import Image

from server.storage.images import decode_upload
from server.storage.uploads import UploadStore


def encode(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def noise(size=(20, 12), mode="RGB") -> Image.Image:
    rng = np.random.default_rng(0)
    channels = len(mode)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], channels), np.uint8), mode)


@pytest.fixture
def store(tmp_path):
    return UploadStore(tmp_path / "uploads")


def test_save_writes_png_named_by_content(store):
    rec = store.save(noise())
    data = rec.path.read_bytes()
    assert rec.path == store.root / f"{rec.id}.png"
    assert rec.sha256 == hashlib.sha256(data).hexdigest()
    assert rec.id == rec.sha256[:16] and len(rec.id) == 16
    assert (rec.width, rec.height, rec.has_alpha) == (20, 12, False)
    with Image.open(rec.path) as img:
        assert img.format == "PNG"


def test_identical_uploads_dedupe(store):
    first = store.save(decode_upload(encode(noise(), "PNG")))
    again = store.save(decode_upload(encode(noise(), "BMP")))  # same pixels, other container
    assert first == again
    assert [p.name for p in store.root.iterdir()] == [f"{first.id}.png"]
    assert store.save(noise((20, 13))).id != first.id


def test_load_and_record_round_trip(store):
    rec = store.save(noise())
    img = store.load(rec.id)
    assert img.mode == "RGB"
    assert np.array_equal(np.asarray(img), np.asarray(noise()))
    assert store.record(rec.id) == rec


def test_rgba_hidden_colour_survives_decode_save_load(store):
    pixels = np.zeros((6, 8, 4), np.uint8)
    pixels[...] = (200, 100, 50, 255)
    pixels[1:3, 2:5] = (12, 34, 56, 0)  # transparent, with a colour that must not be lost
    upload = encode(Image.fromarray(pixels, "RGBA"))

    rec = store.save(decode_upload(upload))
    assert rec.has_alpha
    loaded = store.load(rec.id)
    assert loaded.mode == "RGBA"
    assert np.array_equal(np.asarray(loaded), pixels)
    assert store.record(rec.id).has_alpha


def test_opaque_rgba_is_stored_as_rgb(store):
    rec = store.save(noise().convert("RGBA"))
    assert not rec.has_alpha and store.load(rec.id).mode == "RGB"


def test_save_refuses_undecoded_modes(store):
    with pytest.raises(ValueError, match="decode_upload"):
        store.save(Image.new("L", (4, 4)))


def test_no_temp_files_left(store):
    for size in ((4, 4), (5, 4), (4, 4)):
        store.save(noise(size))
    names = os.listdir(store.root)
    assert len(names) == 2 and all(n.endswith(".png") and not n.startswith(".") for n in names)


@pytest.mark.parametrize("bad_id", [
    "../etc/passwd", "/etc/passwd", "0123456789ABCDEF", "0123456789abcdef\n",
    "0123456789abcde", "0123456789abcdef0", "..%2f..%2fsecret", "012345678/abcdef", "", None, 42,
])
def test_malformed_ids_raise_keyerror(store, bad_id):
    for call in (store.load, store.record):
        with pytest.raises(KeyError, match="not an upload id"):
            call(bad_id)


def test_unknown_id_raises_readable_keyerror(store):
    with pytest.raises(KeyError, match="Upload the image again"):
        store.load("0123456789abcdef")


def test_symlink_out_of_root_is_refused(store, tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(encode(noise()))
    store.root.mkdir(parents=True)
    (store.root / "0123456789abcdef.png").symlink_to(secret)
    with pytest.raises(KeyError):
        store.load("0123456789abcdef")
