"""Test helpers: images a person might upload, and waiting on background work."""
from __future__ import annotations

import io
import time

import numpy as np
from PIL import Image


def sketch(width=128, height=128, seed=0, mode="RGB") -> Image.Image:
    """A flat-colour 'sketch': sky, ground and a disc, like a person would draw."""
    rng = np.random.default_rng(seed)
    arr = np.zeros((height, width, 3), np.uint8)
    arr[: height // 2] = rng.integers(0, 255, 3)
    arr[height // 2 :] = rng.integers(0, 255, 3)
    yy, xx = np.mgrid[0:height, 0:width]
    cx, cy, r = rng.integers(width // 4, 3 * width // 4), rng.integers(height // 4, 3 * height // 4), width // 6
    arr[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.integers(0, 255, 3)
    return Image.fromarray(arr, "RGB").convert(mode)


def png_bytes(image: Image.Image, fmt="PNG", **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def wait_until(predicate, timeout=30.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")
