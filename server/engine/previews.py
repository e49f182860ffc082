"""Latent -> preview image, for the live step previews.

Four decoders, cheapest first:
- `latent`: a 4x3 linear map plus bias per latent pixel (microseconds; 1x the latent size, the
  browser upscales).
- `patch`: a linear map from each latent pixel's 3x3 neighbourhood to the 8x8 RGB patch the VAE
  decodes for it (the full image size, for about a millisecond at 64x64 latents).
- `taesd`: diffusers' AutoencoderTiny, when the model folder ships one in `taesd/`.
- `vae`: the model's own full VAE decode (exact, but costs about as much as a UNet step).

The two maps (engine/preview_maps.py) are fitted by least squares to a few full VAE decodes when a
model loads, so they are right for any VAE, and cached in outputs/.cache keyed by the VAE's
weights; a model folder may ship its own (`latent_rgb.json`, `patch_decoder.safetensors`, fitted on
the kind of images it makes, as the demo model does); SD 1.x's published factors are the fallback
for the 4x3 map, and a model whose patch fit fails has no `patch` decoder.

`auto`, the default, is not a decoder: each loaded model's PreviewBudget (preview_budget.py) picks
these for a job from measured cost.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

# Re-exported (noqa): the demo's trainer, the benchmarks and the tests import the maps from here.
from .preview_maps import (SD_LATENT_RGB_FACTORS, Calibration, LatentRGB, PatchDecoder,  # noqa: F401
                                  calibrate, fit_latent_rgb, fit_latent_rgb_to, fit_patch_decoder,
                                  fit_patch_decoder_to, sd_factors, to_pil)
from .preview_budget import PreviewBudget

log = logging.getLogger(__name__)

SHIPPED_FILE = "latent_rgb.json"  # a 4x3 map fitted by the model's author, in the model folder
SHIPPED_PATCH_FILE = "patch_decoder.safetensors"  # a patch decoder fitted by the model's author
PATCH_FORMAT = "patch-decoder-1"  # in each patch file's metadata; a new fit method gets a new name


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


def vae_scale(vae) -> int:
    """How many pixels one latent pixel spans per side, as diffusers computes vae_scale_factor."""
    return 2 ** (len(vae.config.block_out_channels) - 1)


# -- maps shipped in a model folder, tied to its VAE's weights so a changed VAE refits ---------------
def save_shipped_latent_rgb(model_dir: Path, vae, mapping: LatentRGB) -> None:
    data = {**json.loads(mapping.to_json()), "vae_key": vae_fingerprint(vae)}
    (Path(model_dir) / SHIPPED_FILE).write_text(json.dumps(data, indent=1) + "\n")


def save_shipped_patch_decoder(model_dir: Path, vae, patch: PatchDecoder) -> None:
    (Path(model_dir) / SHIPPED_PATCH_FILE).write_bytes(_patch_bytes(patch, vae_fingerprint(vae)))


def _shipped_latent_rgb(model_dir: Path | None, vae, fingerprint) -> LatentRGB | None:
    path = Path(model_dir) / SHIPPED_FILE if model_dir else None
    if path is None or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        if data.get("vae_key") == fingerprint():
            return LatentRGB(data["weights"], data["bias"], "shipped")
    except (ValueError, KeyError, TypeError):
        pass
    log.warning("Ignoring %s: it does not belong to this VAE", path)
    return None


def _patch_bytes(patch: PatchDecoder, vae_key: str) -> bytes:
    from safetensors.torch import save

    return save({"weights": patch.weights},
                metadata={"format": PATCH_FORMAT, "factor": str(patch.factor), "vae_key": vae_key})


def _read_patch_file(path: Path, vae, vae_key, source: str) -> PatchDecoder | None:
    """The patch decoder in `path` when it was fitted for this VAE (its key, from the callable
    `vae_key`; its latent channels and scale factor), else None with a warning; a missing file is
    None without one."""
    if not path.is_file():
        return None
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            weights = f.get_tensor("weights")
        factor = vae_scale(vae)
        shape = (vae.config.latent_channels * 9 + 1, 3 * factor * factor)
        if (meta.get("format"), meta.get("vae_key"), meta.get("factor"), tuple(weights.shape)) == (
                PATCH_FORMAT, vae_key(), str(factor), shape):
            return PatchDecoder(weights, factor, source)
    except (OSError, SafetensorError, KeyError, ValueError) as exc:
        log.warning("Ignoring unreadable patch decoder %s: %s", path, exc)
        return None
    log.warning("Ignoring %s: it does not belong to this VAE", path)
    return None


# -- loading at model load: shipped, else cached, else fitted (one calibration for both) ------------
@dataclass(frozen=True)
class PreviewMaps:
    latent_rgb: LatentRGB
    patch: PatchDecoder | None  # None when the fit failed: "auto" then skips it


def load_or_fit_preview_maps(vae, size: int, device, dtype, cache_dir: Path | None,
                             model_dir: Path | None = None) -> PreviewMaps:
    keys: dict[str, str] = {}  # each hash reads every VAE weight: compute each at most once

    def fingerprint() -> str:
        if "shipped" not in keys:
            keys["shipped"] = vae_fingerprint(vae)
        return keys["shipped"]

    def cache_key() -> str:
        if "cache" not in keys:
            keys["cache"] = latent_rgb_cache_key(vae)
        return keys["cache"]

    latent_rgb = _shipped_latent_rgb(model_dir, vae, fingerprint)
    patch = _read_patch_file(Path(model_dir) / SHIPPED_PATCH_FILE, vae, fingerprint, "shipped") \
        if model_dir else None
    cache = Path(cache_dir) if cache_dir is not None else None
    latent_file = cache / f"latent-rgb-{cache_key()}.json" if cache else None
    patch_file = cache / f"patch-decoder-{cache_key()}.safetensors" if cache else None
    if latent_rgb is None and latent_file is not None and latent_file.exists():
        try:
            latent_rgb = LatentRGB.from_json(latent_file.read_text())
        except (ValueError, KeyError):
            log.warning("Ignoring unreadable preview cache %s", latent_file)
    if patch is None and patch_file is not None:
        patch = _read_patch_file(patch_file, vae, cache_key, "fitted")
    if latent_rgb is not None and patch is not None:
        return PreviewMaps(latent_rgb, patch)

    try:  # one encode and one decode of the calibration set serve both fits
        calibration: Calibration | None = calibrate(vae, size, device, dtype)
    except Exception as exc:  # noqa: BLE001 - a VAE we cannot calibrate still gets usable previews
        if latent_rgb is None and vae.config.latent_channels != 4:
            raise
        log.warning("Latent preview fit failed (%s); using SD 1.x factors and no patch decoder", exc)
        calibration = None
    if latent_rgb is None:
        latent_rgb = sd_factors() if calibration is None else fit_latent_rgb_to(calibration)
        if calibration is not None:
            _write_cache(latent_file, latent_rgb.to_json().encode())
    if patch is None and calibration is not None:
        patch = fit_patch_decoder_to(calibration)
        _write_cache(patch_file, _patch_bytes(patch, cache_key()))
    return PreviewMaps(latent_rgb, patch)


def _write_cache(path: Path | None, data: bytes) -> None:
    if path is None:
        return
    from ..storage.safe_files import write_atomic  # the cache lives in outputs/: same rules as every write there

    try:
        write_atomic(path, data, root=path.parent.parent)
    except OSError as exc:  # a cache that cannot be written costs a refit next time, nothing more
        log.warning("Could not cache a preview map: %s", exc)


class PreviewRenderer:
    """Turns a latent into preview bytes with the decoder a job asked for. One per loaded model,
    with that model's preview costs (`budget`)."""

    def __init__(self, vae, latent_rgb: LatentRGB, taesd=None, quality: int = 80,
                 patch: PatchDecoder | None = None):
        self.vae = vae
        self.latent_rgb = latent_rgb
        self.patch = patch
        self.taesd = taesd
        self.quality = quality
        self.budget = PreviewBudget()

    def available(self, decoder: str) -> bool:
        return {"taesd": self.taesd, "patch": self.patch}.get(decoder, True) is not None

    @torch.no_grad()
    def render(self, latents: torch.Tensor, decoder: str) -> Image.Image:
        if decoder == "latent":
            return self.latent_rgb.apply(latents)
        if decoder == "patch" and self.patch is not None:
            return self.patch.apply(latents)
        if decoder not in ("taesd", "vae"):
            raise ValueError(f"No preview decoder {decoder!r} for this model: latent, patch, taesd or vae.")
        # Each decoder undoes its own scaling factor, as diffusers pipelines do: TAESD's is 1
        # because it decodes the loop's scaled latents directly.
        model = self.taesd if decoder == "taesd" else self.vae
        unscaled = latents / model.config.scaling_factor
        image = model.decode(unscaled.to(model.dtype)).sample[0].float().permute(1, 2, 0)
        return to_pil(image)

    def encode(self, image: Image.Image) -> tuple[bytes, str]:
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=self.quality)
        return buf.getvalue(), "image/jpeg"
