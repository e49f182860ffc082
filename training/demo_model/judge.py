"""Procedural judges for the demo model: does an image show what its prompt says, and does an
img2img output keep its sketch's layout?

The checks follow from how `scenes.py` draws each word (sky on top, `night` = dark sky, `sun` =
yellow disc in the upper half, water = blue in the bottom third, a colour word = that colour on
its object...), so they are exact on the scene renderer's own images and approximate on the
model's. `benchmarks/demo_model_quality.py` and `tests/test_demo_model.py` both use them.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from .scenes import FLAME_ORANGE, FLAME_YELLOW, object_colour, scene_from_prompt

# name -> (region, minimum fraction of the whole image within colour distance)
OBJECT_RULES = {
    "sun": ("upper", 0.006),
    "moon": ("upper", 0.004),
    "cloud": ("upper", 0.01),
    "river": ("bottom_third", 0.02),
    "lake": ("bottom_third", 0.02),
    "house": ("all", 0.01),
    "tree": ("all", 0.008),
    "hill": ("all", 0.03),
    "mountain": ("all", 0.03),
    "fire": ("all", 0.012),
}
FIRE_ALONE_MIN = 0.05  # "fire" on its own: flames dominate the picture
DISTANCE = {"day": 45.0, "sunset": 45.0, "night": 30.0}


def _array(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float32)


def _region(arr: np.ndarray, region: str) -> np.ndarray:
    """A boolean mask over the image for a named region."""
    h = arr.shape[0]
    mask = np.zeros(arr.shape[:2], bool)
    if region == "upper":
        mask[: h // 2] = True
    elif region == "bottom_third":
        mask[h * 2 // 3 :] = True
    else:
        mask[:] = True
    return mask


def colour_fraction(arr: np.ndarray, rgb, distance: float, region: str = "all") -> float:
    """Fraction of the whole image that lies in `region` within `distance` of `rgb`."""
    near = np.linalg.norm(arr - np.asarray(rgb, np.float32), axis=-1) < distance
    return float((near & _region(arr, region)).mean())


def sky_stats(arr: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean luminance (0..1) and mean colour of the top 40% (always sky in scenes.py)."""
    top = arr[: int(arr.shape[0] * 0.4)]
    lum = (0.299 * top[..., 0] + 0.587 * top[..., 1] + 0.114 * top[..., 2]).mean() / 255
    return float(lum), top.reshape(-1, 3).mean(0)


def judge(image: Image.Image, prompt: str) -> dict[str, bool]:
    """One pass/fail per judgeable phrase in `prompt` ("night", "sun", "red house", ...)."""
    arr = _array(image)
    scene = scene_from_prompt(prompt)
    words = set(w.strip(".,!?;:") for w in prompt.lower().split())
    time = scene.time
    results: dict[str, bool] = {}
    lum, mean = sky_stats(arr)
    if "night" in words:
        results["night"] = lum < 0.25
    if "sunset" in words:
        results["sunset"] = mean[0] > 110 and mean[0] - mean[1] > 30 and mean[0] - mean[2] > 20
    if "day" in words:
        results["day"] = lum > 0.45 and mean[2] > mean[0]
    dist = DISTANCE[time]
    names = scene.names()
    for name, colour in scene.objects:
        region, min_frac = OBJECT_RULES[name]
        label = f"{colour} {name}" if colour else name
        if name == "fire":
            frac = sum(colour_fraction(arr, c, dist, region)
                       for c in (object_colour("fire", None, time), FLAME_ORANGE, FLAME_YELLOW))
            if names == ["fire"]:
                min_frac = FIRE_ALONE_MIN
        else:
            frac = colour_fraction(arr, object_colour(name, colour, time), dist, region)
        results[label] = frac >= min_frac
    return results


def adherence(results: list[dict[str, bool]]) -> float:
    """Share of all checks that passed."""
    checks = [ok for r in results for ok in r.values()]
    return sum(checks) / max(len(checks), 1)


def luminance_grid(image: Image.Image, size: int = 16) -> np.ndarray:
    return np.asarray(image.convert("L").resize((size, size), Image.Resampling.BOX), dtype=np.float64)


def layout_similarity(a: Image.Image, b: Image.Image) -> float:
    """Pearson correlation of 16x16 box-downsampled luminance (1 = same layout)."""
    x, y = luminance_grid(a).ravel(), luminance_grid(b).ravel()
    x, y = x - x.mean(), y - y.mean()
    denom = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / denom) if denom > 1e-9 else 0.0
