"""Variations: noise that is a blend of two seeds' noise, as InvokeAI's -v/-V made them.

Spherical interpolation keeps the blend's norm close to that of a Gaussian sample, so a 50/50
blend is still noise the model knows, where a straight average would be too quiet.
"""
from __future__ import annotations

import torch
from diffusers.utils.torch_utils import randn_tensor

# Above this cosine the two vectors are nearly parallel and slerp's sin(theta) ~ 0: lerp instead.
DOT_THRESHOLD = 0.9995


def slerp(weight: float, start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """From `start` (weight 0, returned exactly) toward `end` (weight 1) along the great circle."""
    if weight <= 0:
        return start
    a, b = start.double(), end.double()
    dot = torch.sum(a * b) / (torch.linalg.vector_norm(a) * torch.linalg.vector_norm(b))
    if torch.abs(dot) > DOT_THRESHOLD:
        blend = (1 - weight) * a + weight * b
    else:
        theta = torch.acos(dot)
        blend = (torch.sin((1 - weight) * theta) * a + torch.sin(weight * theta) * b) / torch.sin(theta)
    return blend.to(start.dtype)


def blend_variations(noise: torch.Tensor, with_variations) -> torch.Tensor:
    """The seed's noise with each (seed, weight) variation's noise blended in, in order."""
    for variation_seed, weight in with_variations:
        other = randn_tensor(noise.shape, generator=torch.Generator(device="cpu").manual_seed(variation_seed),
                             device=noise.device, dtype=noise.dtype)
        noise = slerp(weight, noise, other)
    return noise
