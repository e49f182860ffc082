"""The two fitted preview maps, latent -> RGB without the VAE, and how they are fitted.

- `LatentRGB`: each latent pixel's C channels -> one RGB pixel (a C x 3 matrix plus bias): 1x the
  latent size, a mosaic the browser upscales.
- `PatchDecoder`: each latent pixel's 3x3 neighbourhood (C*9 values plus 1) -> the f x f RGB patch
  the VAE decodes for it (f: the VAE's scale factor, 8 for SD): the full image size for one 3x3
  convolution and a pixel shuffle, well under a millisecond at 16x16 latents and about one at 64x64.

Both are least-squares fits to the VAE's own work on calibration images (encode, then decode), so
they are right for any VAE; latents the UNet made may join the fit (`extra_latents`). One
`Calibration` (one encode and one decode of the set) serves both fits.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

# InvokeAI 2.1.3+'s factors for SD 1.x/2.x latents: rows are latent channels, columns R, G, B.
SD_LATENT_RGB_FACTORS = [
    [0.3444, 0.1385, 0.0670],
    [0.1247, 0.4027, 0.1494],
    [-0.3192, 0.2513, 0.2103],
    [-0.1307, -0.1874, -0.7445],
]
# Ridge strength of the patch fit, as a share of the features' mean energy. Measured on the demo
# model: fitted on encoded pictures alone, an unregularised patch map is 7 dB worse than the 4x3 map
# on latents the UNet made (they lie off the encoder's outputs, where 37 free weights per output
# extrapolate wildly); at 0.1 it beats the 4x3 map on both, and costs 0.1-0.5 dB on encoded pictures.
PATCH_RIDGE = 0.1


def to_pil(rgb_hwc: torch.Tensor) -> Image.Image:
    """[-1, 1] H x W x 3 (on any device) -> an RGB image; bytes leave the device, not floats."""
    arr = ((rgb_hwc.detach().float() + 1) / 2).clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()
    return Image.fromarray(arr, "RGB")


@dataclass(frozen=True)
class LatentRGB:
    """rgb = latent @ weights + bias, in [-1, 1] image space."""

    weights: list[list[float]]  # latent_channels x 3
    bias: list[float]  # 3
    source: str  # "fitted", "shipped" or "sd-factors", shown in health/debug output

    def apply(self, latents: torch.Tensor) -> Image.Image:
        x = latents[0].detach().to("cpu", torch.float32).permute(1, 2, 0)  # H, W, C
        return to_pil(x @ torch.tensor(self.weights) + torch.tensor(self.bias))

    def to_json(self) -> str:
        return json.dumps({"weights": self.weights, "bias": self.bias, "source": self.source})

    @classmethod
    def from_json(cls, text: str) -> "LatentRGB":
        data = json.loads(text)
        return cls(data["weights"], data["bias"], data["source"])


def sd_factors() -> LatentRGB:
    return LatentRGB(SD_LATENT_RGB_FACTORS, [0.0, 0.0, 0.0], "sd-factors")


class PatchDecoder:
    """rgb patch (3 x f x f) = [3x3 latent neighbourhood, 1] @ weights, for every latent pixel.

    Applied as one 3x3 convolution (the same sums as unfold, then a matmul with `weights`, because
    unfold lays a neighbourhood out channel-major as a conv kernel is) and a pixel shuffle; a
    picture's kernel also scales to 0..255 so that the output is bytes with no further pass."""

    def __init__(self, weights: torch.Tensor, factor: int, source: str):
        self.weights = weights.detach().to("cpu", torch.float32).contiguous()  # (C*9 + 1) x (3*f*f)
        self.factor = factor
        self.source = source  # "fitted" or "shipped"
        self._kernels: dict[tuple[torch.device, bool], tuple[torch.Tensor, torch.Tensor]] = {}

    def _kernel(self, device: torch.device, to_bytes: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(conv kernel, bias) on `device`: in [-1, 1] units, or in pixel units plus 0.5 (so that
        truncating to uint8 rounds)."""
        key = (device, to_bytes)
        if key not in self._kernels:
            kernel = self.weights[:-1].T.reshape(-1, self.weights.shape[0] // 9, 3, 3)
            bias = self.weights[-1]
            if to_bytes:
                kernel, bias = kernel * 127.5, bias * 127.5 + 128.0
            self._kernels[key] = (kernel.contiguous().to(device), bias.contiguous().to(device))
        return self._kernels[key]

    def _patches(self, latents: torch.Tensor, to_bytes: bool) -> torch.Tensor:
        x = latents.detach().float()
        kernel, bias = self._kernel(x.device, to_bytes)
        padded = F.pad(x, (1, 1, 1, 1), mode="replicate")  # as _neighbourhoods pads for the fit
        return F.pixel_shuffle(F.conv2d(padded, kernel, bias), self.factor)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """N x C x h x w (scaled latents) -> N x 3 x (h*f) x (w*f) in [-1, 1], on the latents' device."""
        return self._patches(latents, to_bytes=False).clamp(-1, 1)

    @torch.no_grad()
    def apply(self, latents: torch.Tensor) -> Image.Image:
        rgb = self._patches(latents[:1], to_bytes=True)[0].clamp_(0, 255).to(torch.uint8)
        return Image.fromarray(rgb.permute(1, 2, 0).contiguous().cpu().numpy(), "RGB")


def _neighbourhoods(latents: torch.Tensor) -> torch.Tensor:
    """Each latent pixel's 3x3 neighbourhood, channel-major as unfold lays it out, plus a 1 for the
    bias. Edges repeat the border pixel: zero, in scaled latent space, is a colour, not "nothing"."""
    padded = F.pad(latents, (1, 1, 1, 1), mode="replicate")
    cols = F.unfold(padded, 3)  # N x C*9 x h*w
    return torch.cat([cols, torch.ones_like(cols[:, :1])], dim=1)


# -- fitting ---------------------------------------------------------------------------------------
def calibration_images(size: int, count: int = 6) -> torch.Tensor:
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


@dataclass(frozen=True)
class Calibration:
    """Scaled latents and what the VAE decodes them to (float32, [-1, 1]), for fitting maps."""

    latents: torch.Tensor  # N x C x h x w
    decoded: torch.Tensor  # N x 3 x h*f x w*f

    @property
    def factor(self) -> int:
        return self.decoded.shape[-1] // self.latents.shape[-1]


@torch.no_grad()
def calibrate(vae, size: int, device, dtype, images: torch.Tensor | None = None,
              extra_latents: torch.Tensor | None = None) -> Calibration:
    """Encode `images` (N, 3, H, W in [-1, 1]; by default generic colour fields at `size`) and decode
    their latents plus `extra_latents` (scaled) with the VAE. A model trained on one kind of picture
    fits best on pictures of that kind; latents the UNet made can lie off the encoder's outputs,
    where the VAE's decoder still draws a picture but a map fitted on encodings does not."""
    images = (calibration_images(size) if images is None else images).to(device, dtype)
    latents = vae.encode(images).latent_dist.mean * vae.config.scaling_factor
    if extra_latents is not None:
        latents = torch.cat([latents, extra_latents.to(device, dtype)])
    decoded = vae.decode(latents / vae.config.scaling_factor).sample.float().clamp(-1, 1)
    return Calibration(latents.float().cpu(), decoded.cpu())


def fit_latent_rgb_to(calibration: Calibration) -> LatentRGB:
    """Least squares from each latent pixel to the mean colour of its decoded patch."""
    latents = calibration.latents
    target = F.avg_pool2d(calibration.decoded, calibration.factor)  # N, 3, h, w
    x = latents.permute(0, 2, 3, 1).reshape(-1, latents.shape[1])
    y = target.permute(0, 2, 3, 1).reshape(-1, 3)
    x1 = torch.cat([x, torch.ones(len(x), 1)], dim=1)
    solution = torch.linalg.lstsq(x1.double(), y.double()).solution  # (C+1) x 3
    return LatentRGB(solution[:-1].tolist(), solution[-1].tolist(), "fitted")


def fit_patch_decoder_to(calibration: Calibration, ridge: float = PATCH_RIDGE) -> PatchDecoder:
    """Ridge least squares from each latent pixel's 3x3 neighbourhood to its decoded f x f patch.
    pixel_unshuffle lays the target out exactly as pixel_shuffle reads it back."""
    factor = calibration.factor
    x = _neighbourhoods(calibration.latents).transpose(1, 2).reshape(-1, calibration.latents.shape[1] * 9 + 1)
    y = F.pixel_unshuffle(calibration.decoded, factor).flatten(2).transpose(1, 2).reshape(-1, 3 * factor * factor)
    x, y = x.double(), y.double()
    gram = x.T @ x
    penalty = ridge * gram.diagonal()[:-1].mean()  # scale-free: relative to the features' energy
    gram[:-1, :-1] += penalty * torch.eye(len(gram) - 1, dtype=gram.dtype)  # the bias is not shrunk
    weights = torch.linalg.solve(gram, x.T @ y)
    return PatchDecoder(weights.float(), factor, "fitted")


def fit_latent_rgb(vae, size: int, device, dtype, images: torch.Tensor | None = None,
                   extra_latents: torch.Tensor | None = None) -> LatentRGB:
    return fit_latent_rgb_to(calibrate(vae, size, device, dtype, images, extra_latents))


def fit_patch_decoder(vae, size: int, device, dtype, images: torch.Tensor | None = None,
                      extra_latents: torch.Tensor | None = None) -> PatchDecoder:
    return fit_patch_decoder_to(calibrate(vae, size, device, dtype, images, extra_latents))
