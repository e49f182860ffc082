"""Latent -> small RGB image, for the live step previews.

Three decoders, cheapest first:
- `latent`: a 4x3 linear map plus bias per latent pixel (microseconds; the browser upscales).
  The map is fitted by least squares to a few full VAE decodes when a model loads, so it is right
  for any VAE, and cached; a model folder may ship its own (`latent_rgb.json`, fitted on the
  kind of images it makes, as the demo model does); SD 1.x's published factors are the fallback.
- `taesd`: diffusers' AutoencoderTiny, when the model folder ships one in `taesd/`.
- `vae`: the model's own full VAE decode (exact, but costs about as much as a UNet step).

`auto`, the default, is not a decoder: each loaded model's PreviewBudget (preview_budget.py) picks
one of these for a job from measured cost.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .preview_budget import PreviewBudget

log = logging.getLogger(__name__)

# InvokeAI 2.1.3+'s factors for SD 1.x/2.x latents: rows are latent channels, columns R, G, B.
SD_LATENT_RGB_FACTORS = [
    [0.3444, 0.1385, 0.0670],
    [0.1247, 0.4027, 0.1494],
    [-0.3192, 0.2513, 0.2103],
    [-0.1307, -0.1874, -0.7445],
]


@dataclass(frozen=True)
class LatentRGB:
    """rgb = latent @ weights + bias, in [-1, 1] image space."""

    weights: list[list[float]]  # latent_channels x 3
    bias: list[float]  # 3
    source: str  # "fitted" or "sd-factors", shown in health/debug output

    def apply(self, latents: torch.Tensor) -> Image.Image:
        x = latents[0].detach().to("cpu", torch.float32).permute(1, 2, 0)  # H, W, C
        rgb = x @ torch.tensor(self.weights) + torch.tensor(self.bias)
        return _to_pil(rgb)

    def to_json(self) -> str:
        return json.dumps({"weights": self.weights, "bias": self.bias, "source": self.source})

    @classmethod
    def from_json(cls, text: str) -> "LatentRGB":
        data = json.loads(text)
        return cls(data["weights"], data["bias"], data["source"])


def sd_factors() -> LatentRGB:
    return LatentRGB(SD_LATENT_RGB_FACTORS, [0.0, 0.0, 0.0], "sd-factors")


def _to_pil(rgb_hwc: torch.Tensor) -> Image.Image:
    arr = ((rgb_hwc + 1) / 2).clamp(0, 1).mul(255).round().to(torch.uint8).numpy()
    return Image.fromarray(arr, "RGB")


def _calibration_images(size: int, count: int = 6) -> torch.Tensor:
    """Seeded smooth colour fields with edges: enough colour variety to pin down a 5x3 fit."""
    gen = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    images = []
    for _ in range(count):
        channels = []
        for _c in range(3):
            a, b, c = gen.uniform(-1, 1, 3)
            field = a * xx + b * yy + c * np.sin(gen.uniform(2, 9) * xx + gen.uniform(0, 6))
            channels.append(field)
        img = np.stack(channels)
        # A few flat blocks of saturated colour, like a sketch.
        for _ in range(4):
            x0, y0 = gen.integers(0, size // 2, 2)
            w = gen.integers(size // 8, size // 2)
            img[:, y0 : y0 + w, x0 : x0 + w] = gen.uniform(-1, 1, (3, 1, 1))
        images.append(np.clip(img, -1, 1))
    return torch.tensor(np.stack(images), dtype=torch.float32)


@torch.no_grad()
def fit_latent_rgb(vae, size: int, device, dtype, images: torch.Tensor | None = None,
                   extra_latents: torch.Tensor | None = None) -> LatentRGB:
    """Least squares from (scaled) latents to the VAE's own decodes, pooled to latent size.
    `images` (N, 3, H, W in [-1, 1]) are the calibration set; by default generic colour fields.
    A model trained on one kind of picture fits best on pictures of that kind. `extra_latents`
    (scaled) join the fit as they are: latents the UNet made, which can lie off the encoder's
    outputs where the VAE's decoder still draws a picture but a map fitted on encodings does not."""
    images = (_calibration_images(size) if images is None else images).to(device, dtype)
    latents = vae.encode(images).latent_dist.mean * vae.config.scaling_factor
    if extra_latents is not None:
        latents = torch.cat([latents, extra_latents.to(device, dtype)])
    decoded = vae.decode(latents / vae.config.scaling_factor).sample.float().clamp(-1, 1)
    factor = decoded.shape[-1] // latents.shape[-1]
    target = torch.nn.functional.avg_pool2d(decoded, factor)  # N, 3, h, w
    x = latents.float().permute(0, 2, 3, 1).reshape(-1, latents.shape[1])
    y = target.permute(0, 2, 3, 1).reshape(-1, 3)
    x1 = torch.cat([x, torch.ones(len(x), 1, device=x.device)], dim=1)
    solution = torch.linalg.lstsq(x1.cpu().double(), y.cpu().double()).solution  # (C+1) x 3
    return LatentRGB(solution[:-1].tolist(), solution[-1].tolist(), "fitted")


def latent_rgb_cache_key(vae) -> str:
    """Hash of the VAE's config and weights: a fine-tuned VAE gets its own map. Config keys
    starting with "_" are bookkeeping, and one of them (`_use_default_values`) is built from a
    set, so its order changes from process to process: hashing it made the cache never hit."""
    config = {k: v for k, v in dict(vae.config).items() if not k.startswith("_")}
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    for name, tensor in sorted(vae.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:24]


SHIPPED_FILE = "latent_rgb.json"  # a map fitted by the model's author, in the model folder


def vae_fingerprint(vae) -> str:
    """Hash of the VAE's config and weights as float16, the dtype models ship in: the same on a
    CPU (float32) and a GPU (float16) load of the same folder. Config keys starting with "_"
    (where it was loaded from, the diffusers version) are bookkeeping, not the model."""
    config = {k: v for k, v in dict(vae.config).items() if not k.startswith("_")}
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    for name, tensor in sorted(vae.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float16).contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:24]


def save_shipped_latent_rgb(model_dir: Path, vae, mapping: LatentRGB) -> None:
    """Ship a map beside a model, tied to its VAE's weights so a changed VAE refits."""
    data = {**json.loads(mapping.to_json()), "vae_key": vae_fingerprint(vae)}
    (Path(model_dir) / SHIPPED_FILE).write_text(json.dumps(data, indent=1) + "\n")


def _shipped_latent_rgb(model_dir: Path | None, vae) -> LatentRGB | None:
    path = Path(model_dir) / SHIPPED_FILE if model_dir else None
    if path is None or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        if data.get("vae_key") == vae_fingerprint(vae):
            return LatentRGB(data["weights"], data["bias"], "shipped")
    except (ValueError, KeyError, TypeError):
        pass
    log.warning("Ignoring %s: it does not belong to this VAE", path)
    return None


def load_or_fit_latent_rgb(vae, size: int, device, dtype, cache_dir: Path | None,
                           model_dir: Path | None = None) -> LatentRGB:
    shipped = _shipped_latent_rgb(model_dir, vae)
    if shipped is not None:
        return shipped
    cache_file = None
    if cache_dir is not None:
        cache_file = Path(cache_dir) / f"latent-rgb-{latent_rgb_cache_key(vae)}.json"
        if cache_file.exists():
            try:
                return LatentRGB.from_json(cache_file.read_text())
            except (ValueError, KeyError):
                log.warning("Ignoring unreadable preview cache %s", cache_file)
    try:
        mapping = fit_latent_rgb(vae, size, device, dtype)
    except Exception as exc:  # a VAE we cannot calibrate still gets usable previews
        if vae.config.latent_channels != 4:
            raise
        log.warning("Latent preview fit failed (%s); using SD 1.x factors", exc)
        return sd_factors()
    if cache_file is not None:
        from .safe_files import write_atomic  # the cache lives in outputs/: same rules as every write there

        try:
            write_atomic(cache_file, mapping.to_json().encode(), root=cache_file.parent.parent)
        except OSError as exc:  # a cache that cannot be written costs a refit next time, nothing more
            log.warning("Could not cache the latent preview map: %s", exc)
    return mapping


class PreviewRenderer:
    """Turns a latent into preview bytes with the decoder a job asked for. One per loaded model,
    with that model's preview costs (`budget`)."""

    def __init__(self, vae, latent_rgb: LatentRGB, taesd=None, quality: int = 80):
        self.vae = vae
        self.latent_rgb = latent_rgb
        self.taesd = taesd
        self.quality = quality
        self.budget = PreviewBudget()

    def available(self, decoder: str) -> bool:
        return decoder != "taesd" or self.taesd is not None

    @torch.no_grad()
    def render(self, latents: torch.Tensor, decoder: str) -> Image.Image:
        if decoder == "latent":
            return self.latent_rgb.apply(latents)
        if decoder not in ("taesd", "vae"):
            raise ValueError(f"No preview decoder {decoder!r}: latent, taesd or vae.")
        # Each decoder undoes its own scaling factor, as diffusers pipelines do: TAESD's is 1
        # because it decodes the loop's scaled latents directly.
        model = self.taesd if decoder == "taesd" else self.vae
        unscaled = latents / model.config.scaling_factor
        image = model.decode(unscaled.to(model.dtype)).sample[0].float().permute(1, 2, 0).cpu()
        return _to_pil(image)

    def encode(self, image: Image.Image) -> tuple[bytes, str]:
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=self.quality)
        return buf.getvalue(), "image/jpeg"
