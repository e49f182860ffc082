"""Procedural, captioned flat-style scenes: the demo model's whole world.

Every word has a fixed, judgeable look (see `object_colour` and the `draw_*` helpers):
sky on top, ground below a horizon at 50-65% height; `day` is a light blue sky, `night` a dark
navy sky with a pale moon and stars, `sunset` a purple-to-orange sky; `sun` is a yellow disc and
`moon` a pale disc in the upper half; `river` is a blue band and `lake` a blue ellipse in the
ground; `fire` is red/orange/yellow flames on the ground; a colour word recolours the object it
precedes. `judge.py` checks generated images against these same facts.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

OBJECTS = ("tree", "hill", "river", "fire", "sun", "moon", "house", "mountain", "lake", "cloud")
TIMES = ("day", "night", "sunset")
COLOURS = {
    "red": (210, 40, 40),
    "orange": (240, 140, 30),
    "yellow": (245, 215, 50),
    "green": (50, 160, 60),
    "blue": (50, 90, 210),
    "purple": (140, 60, 170),
    "white": (240, 240, 240),
    "black": (25, 25, 25),
}
CONNECTIVES = ("a", "an", "on", "with", "and", "of", "photograph", "the", "in", "at", "over", "near", "by")
# Objects a colour word may recolour (the sun, moon and fire keep their own colours).
COLOURABLE = ("tree", "house", "hill", "mountain", "cloud", "lake", "river")

# Default looks, in daylight. Night multiplies the non-luminous ones by NIGHT_FACTOR.
DEFAULT_COLOURS = {
    "tree": (20, 100, 30),  # canopy
    "hill": (150, 200, 90),
    "river": (40, 100, 200),
    "lake": (40, 100, 200),
    "house": (230, 205, 160),  # walls
    "mountain": (120, 120, 135),
    "cloud": (245, 245, 250),
    "sun": (250, 215, 40),
    "moon": (235, 235, 205),
    "fire": (225, 45, 20),  # the outer flame
}
LUMINOUS = ("sun", "moon", "fire")
NIGHT_FACTOR = 0.55
SKY = {"day": (125, 180, 235), "night": (12, 16, 45)}
SUNSET_TOP, SUNSET_BOTTOM = (100, 45, 130), (245, 140, 50)
GROUND = {"day": (70, 140, 60), "night": (30, 38, 50), "sunset": (85, 105, 50)}
TRUNK = (105, 65, 30)
ROOF = (150, 40, 40)
FLAME_ORANGE, FLAME_YELLOW = (245, 130, 20), (255, 220, 60)


def vocabulary() -> list[str]:
    """Every word captions use; the tokenizer gives each its own token."""
    words = list(OBJECTS) + list(TIMES) + list(COLOURS) + list(CONNECTIVES)
    words += ["picture", "scene", "landscape", "sky", "during", "under", "big", "small", "two", "trees", "hills"]
    return sorted(set(words))


def object_colour(name: str, colour: str | None, time: str) -> tuple[int, int, int]:
    """The main colour `name` is drawn in (what the judge looks for)."""
    rgb = COLOURS[colour] if colour else DEFAULT_COLOURS[name]
    if time == "night" and name not in LUMINOUS:
        rgb = tuple(int(c * NIGHT_FACTOR) for c in rgb)
    return rgb


@dataclass
class Scene:
    time: str = "day"
    objects: list[tuple[str, str | None]] = field(default_factory=list)  # (name, colour word or None)
    on_hill: str | None = None  # the object placed on top of the hill
    photo: bool = False
    caption: str = ""

    def names(self) -> list[str]:
        return [n for n, _ in self.objects]


# ---------------------------------------------------------------------------------------------
# Sampling a scene and its caption.

_WEIGHTS = {"tree": 3, "hill": 2, "river": 2, "fire": 2, "sun": 2, "moon": 1.2, "house": 2.5,
            "mountain": 2, "lake": 2, "cloud": 1.5}


def _phrase(rng, name: str, colour: str | None) -> str:
    if name in ("sun", "moon"):
        article = rng.choice(["the", "the", "a", ""])
    else:
        article = rng.choice(["a", "a", "a", "the", ""])
    if article == "a" and (colour or name)[0] in "aeiou":
        article = "an"
    return " ".join(w for w in (article, colour or "", name) if w)


def sample_scene(rng: np.random.Generator) -> Scene:
    time = rng.choice(TIMES, p=[0.5, 0.25, 0.25])
    count = int(rng.choice([1, 2, 3, 4], p=[0.25, 0.35, 0.28, 0.12]))
    pool = [o for o in OBJECTS if not (time == "night" and o == "sun") and not (time == "day" and o == "moon")]
    w = np.array([_WEIGHTS[o] for o in pool], dtype=float)
    names = list(rng.choice(pool, size=min(count, len(pool)), replace=False, p=w / w.sum()))
    if "sun" in names and "moon" in names:
        names.remove("moon")
    objects = []
    for n in names:
        colour = None
        if n in COLOURABLE and rng.random() < 0.3:
            colour = str(rng.choice(list(COLOURS)))
        objects.append((str(n), colour))
    scene = Scene(time=str(time), objects=objects, photo=bool(rng.random() < 0.15))
    hill_present = "hill" in names
    standers = [n for n in names if n in ("tree", "house", "fire")]
    if hill_present and standers and rng.random() < 0.8:
        scene.on_hill = standers[0]
    scene.caption = make_caption(rng, scene)
    return scene


def make_caption(rng, scene: Scene) -> str:
    objects = list(scene.objects)
    colour_of = dict(objects)
    # The subject comes first: the thing on the hill if any, else a random one.
    if scene.on_hill:
        subject = scene.on_hill
    else:
        subject = objects[int(rng.integers(len(objects)))][0]
    words = [_phrase(rng, subject, colour_of[subject])]
    rest = [n for n, _ in objects if n != subject]
    if scene.on_hill:
        words += ["on", _phrase(rng, "hill", colour_of["hill"])]
        rest.remove("hill")
    rng.shuffle(rest)
    for i, n in enumerate(rest):
        words += [str(rng.choice(["with", "and"])) if i == 0 else "and", _phrase(rng, n, colour_of[n])]
    if scene.time == "night":
        words += [str(rng.choice(["at night", "at night", "in the night"]))]
    elif scene.time == "sunset":
        words += [str(rng.choice(["at sunset", "at sunset", "in the sunset"]))]
    elif rng.random() < 0.3:
        words += [str(rng.choice(["in the day", "at day", "during the day"]))]
    text = " ".join(words)
    if scene.photo:
        text = "photograph of " + text
    return text


# ---------------------------------------------------------------------------------------------
# Drawing.

def _mul(rgb, f):
    return tuple(int(max(0, min(255, c * f))) for c in rgb)


def _jitter(rng, rgb, amount=10):
    return tuple(int(max(0, min(255, c + rng.integers(-amount, amount + 1)))) for c in rgb)


def render(scene: Scene, rng: np.random.Generator, size: int = 128) -> Image.Image:
    S = size
    img = Image.new("RGB", (S, S))
    d = ImageDraw.Draw(img)
    t = scene.time
    night = t == "night"
    horizon = int(S * rng.uniform(0.5, 0.65))
    names = scene.names()
    colour_of = dict(scene.objects)

    # Sky.
    if t == "sunset":
        top, bottom = np.array(SUNSET_TOP, float), np.array(SUNSET_BOTTOM, float)
        for y in range(horizon):
            f = y / max(horizon - 1, 1)
            d.line([(0, y), (S, y)], fill=tuple(int(v) for v in top * (1 - f) + bottom * f))
    else:
        d.rectangle([0, 0, S, horizon], fill=_jitter(rng, SKY[t], 8))
    if night:
        for _ in range(int(rng.integers(6, 14))):
            x, y = rng.integers(0, S), rng.integers(0, max(horizon - 4, 1))
            d.point((int(x), int(y)), fill=(230, 230, 240))
    # Sun / moon.
    if "sun" in names:
        r = S * rng.uniform(0.07, 0.11)
        cx, cy = S * rng.uniform(0.15, 0.85), S * rng.uniform(0.12, min(0.32, horizon / S - 0.12))
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=object_colour("sun", None, t))
    if "moon" in names or night:
        r = S * rng.uniform(0.06, 0.09)
        cx, cy = S * rng.uniform(0.15, 0.85), S * rng.uniform(0.1, 0.3)
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=object_colour("moon", None, t))
        if night and rng.random() < 0.5:  # a crescent
            off = r * 0.6
            d.ellipse([cx - r + off, cy - r - off * 0.3, cx + r + off, cy + r - off * 0.3], fill=SKY["night"])
    if "cloud" in names:
        col = object_colour("cloud", colour_of["cloud"], t)
        for _ in range(int(rng.integers(1, 3))):
            cx, cy = S * rng.uniform(0.1, 0.9), S * rng.uniform(0.08, 0.3)
            w = S * rng.uniform(0.12, 0.2)
            for dx, dy, rr in ((-0.6, 0.15, 0.5), (0.0, -0.15, 0.65), (0.6, 0.15, 0.5)):
                x, y, rad = cx + dx * w, cy + dy * w, rr * w
                d.ellipse([x - rad, y - rad * 0.7, x + rad, y + rad * 0.7], fill=col)
    if "mountain" in names:
        col = object_colour("mountain", colour_of["mountain"], t)
        cx = S * rng.uniform(0.25, 0.75)
        half = S * rng.uniform(0.25, 0.42)
        peak = horizon - S * rng.uniform(0.22, 0.36)
        d.polygon([(cx - half, horizon), (cx, peak), (cx + half, horizon)], fill=col)
        cap = 0.28
        d.polygon([(cx - half * cap, peak + (horizon - peak) * cap), (cx, peak),
                   (cx + half * cap, peak + (horizon - peak) * cap)], fill=_mul((245, 245, 250), NIGHT_FACTOR if night else 1))
    # Ground.
    d.rectangle([0, horizon, S, S], fill=_jitter(rng, GROUND[t], 6))
    # Hill: a mound sitting on the horizon; something may stand on its top.
    hill_top = None
    if "hill" in names:
        col = object_colour("hill", colour_of["hill"], t)
        cx = S * rng.uniform(0.3, 0.7)
        rx, ry = S * rng.uniform(0.28, 0.45), S * rng.uniform(0.14, 0.22)
        d.ellipse([cx - rx, horizon - ry, cx + rx, horizon + ry], fill=col)
        hill_top = (cx, horizon - ry)
    if "lake" in names:
        col = object_colour("lake", colour_of["lake"], t)
        rx, ry = S * rng.uniform(0.18, 0.32), S * rng.uniform(0.07, 0.12)
        cx = S * rng.uniform(0.3, 0.7)
        cy = S * rng.uniform(max(horizon / S + 0.12, 0.7), 0.85)
        d.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=col)
    if "river" in names:
        col = object_colour("river", colour_of["river"], t)
        y0 = S * rng.uniform(max(horizon / S + 0.12, 0.72), 0.86)
        width = S * rng.uniform(0.07, 0.12)
        amp, phase, freq = S * rng.uniform(0.02, 0.07), rng.uniform(0, 6.3), rng.uniform(1.0, 2.5)
        top, bottom = [], []
        for i in range(17):
            x = S * i / 16
            yc = y0 + amp * math.sin(phase + freq * 2 * math.pi * i / 16)
            top.append((x, yc - width / 2))
            bottom.append((x, yc + width / 2))
        d.polygon(top + bottom[::-1], fill=col)

    # Standing things, back to front.
    def ground_spot(width_frac):
        x = S * rng.uniform(0.15, 0.85)
        y = S * rng.uniform(horizon / S + 0.03, min(horizon / S + 0.15, 0.7))
        return x, y

    standers = [n for n in ("house", "tree", "fire") if n in names]
    only_fire = names == ["fire"]
    for n in standers:
        base = (hill_top[0] + S * rng.uniform(-0.03, 0.03), hill_top[1] + 2) if n == scene.on_hill and hill_top else ground_spot(0.2)
        if n == "house":
            _draw_house(d, rng, S, base, object_colour("house", colour_of["house"], t), night)
        elif n == "tree":
            _draw_tree(d, rng, S, base, object_colour("tree", colour_of["tree"], t), night)
        else:
            scale = rng.uniform(0.4, 0.6) if only_fire else rng.uniform(0.18, 0.28)
            if only_fire:
                base = (S * rng.uniform(0.4, 0.6), S * rng.uniform(0.8, 0.9))
            _draw_fire(d, rng, S, base, scale)

    if scene.photo:
        img = img.filter(ImageFilter.GaussianBlur(0.8))
        arr = np.asarray(img).astype(np.float32)
        yy, xx = np.mgrid[0:S, 0:S] / (S - 1) - 0.5
        vignette = 1 - 0.55 * (xx**2 + yy**2)
        arr = arr * vignette[..., None] * rng.uniform(0.9, 1.05) + rng.normal(0, 3, arr.shape)
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    return img


def _draw_tree(d, rng, S, base, canopy, night):
    x, y = base
    h = S * rng.uniform(0.1, 0.16)
    tw = S * 0.025
    d.rectangle([x - tw, y - h, x + tw, y], fill=_mul(TRUNK, NIGHT_FACTOR if night else 1))
    r = S * rng.uniform(0.08, 0.12)
    cy = y - h - r * 0.6
    d.ellipse([x - r, cy - r, x + r, cy + r], fill=canopy)


def _draw_house(d, rng, S, base, walls, night):
    x, y = base
    w = S * rng.uniform(0.18, 0.26)
    h = w * rng.uniform(0.7, 0.9)
    d.rectangle([x - w / 2, y - h, x + w / 2, y], fill=walls)
    roof = _mul(ROOF, NIGHT_FACTOR if night else 1)
    d.polygon([(x - w / 2 - w * 0.1, y - h), (x, y - h - w * 0.5), (x + w / 2 + w * 0.1, y - h)], fill=roof)
    door = _mul((90, 55, 30), NIGHT_FACTOR if night else 1)
    d.rectangle([x - w * 0.1, y - h * 0.45, x + w * 0.1, y], fill=door)
    win = (250, 220, 110) if night else (150, 200, 235)
    d.rectangle([x - w * 0.38, y - h * 0.75, x - w * 0.2, y - h * 0.55], fill=win)
    d.rectangle([x + w * 0.2, y - h * 0.75, x + w * 0.38, y - h * 0.55], fill=win)


def _draw_fire(d, rng, S, base, scale):
    x, y = base
    w = S * scale
    logs = (95, 55, 25)
    d.rectangle([x - w * 0.5, y - w * 0.08, x + w * 0.5, y], fill=logs)
    for colour, f in ((DEFAULT_COLOURS["fire"], 1.0), (FLAME_ORANGE, 0.68), (FLAME_YELLOW, 0.38)):
        pts = [(x - w * 0.45 * f, y - w * 0.05)]
        tongues = 3
        for i in range(tongues):
            fx0 = x - w * 0.45 * f + (i + 0.5) * (w * 0.9 * f / tongues)
            pts.append((fx0, y - w * f * rng.uniform(0.9, 1.3)))
            if i < tongues - 1:
                pts.append((fx0 + w * 0.15 * f, y - w * f * 0.45))
        pts.append((x + w * 0.45 * f, y - w * 0.05))
        d.polygon(pts, fill=colour)


def scene_from_prompt(prompt: str) -> Scene:
    """Parse a caption-like prompt into a Scene (for sketches and for the judge)."""
    words = [w.strip(".,!?;:") for w in prompt.lower().split()]
    time = "day"
    for w in words:
        if w in ("night", "sunset"):
            time = w
    objects, colour, on_hill = [], None, None
    for i, w in enumerate(words):
        if w in COLOURS:
            colour = w
        elif w in OBJECTS:
            if w not in [n for n, _ in objects]:
                objects.append((w, colour if w in COLOURABLE else None))
            colour = None
            if i + 3 <= len(words) and words[i + 1 : i + 2] == ["on"] and "hill" in words[i + 2 : i + 5] and w in ("tree", "house", "fire"):
                on_hill = w
        elif w not in ("a", "the"):
            colour = None if w not in COLOURS else colour
    return Scene(time=time, objects=objects, on_hill=on_hill, photo="photograph" in words, caption=prompt)


def dataset(count: int, seed: int, size: int = 128) -> tuple[np.ndarray, list[str]]:
    """`count` rendered scenes (uint8, N x S x S x 3) and their captions, seeded."""
    rng = np.random.default_rng(seed)
    images = np.empty((count, size, size, 3), np.uint8)
    captions = []
    for i in range(count):
        scene = sample_scene(rng)
        images[i] = np.asarray(render(scene, rng, size))
        captions.append(scene.caption)
    return images, captions
