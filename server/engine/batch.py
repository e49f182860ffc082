"""The outputs of one job: a single image, a batch of n takes, n iterations, or a strength sweep.

Random choices (seed, variation seed) are made here once, so every item's settings are fixed
before the first step and each output's metadata can reproduce it on its own.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from .request import MAX_SEED, GenerationRequest


@dataclass(frozen=True)
class OutputItem:
    index: int
    strength: float
    seed: int
    with_variations: tuple[tuple[int, float], ...]


def output_items(request: GenerationRequest, pick=lambda: random.randint(0, MAX_SEED)) -> list[OutputItem]:
    """One item per output.

    - A sweep keeps one seed and noise for every strength, so only the strength differs.
    - Iterations and batch takes are seeded alike; they differ only in what each starts from,
      which the studio decides (iterations feed each output into the next, a batch does not).
      With a variation amount they keep the seed and draw variation seed s, s+1, ...: n variants
      of one picture, as InvokeAI's `-v 0.2 -n 4` gave. Without one they move the seed on by one
      each time (seed, seed+1, ...): n different takes, and no feedback loop pushing the same
      noise into the image again and again.
    """
    seed = request.seed if request.seed is not None else pick()
    if request.strengths:
        return [OutputItem(i, s, seed, request.with_variations) for i, s in enumerate(request.strengths)]
    variation_seed = None
    if request.variation_amount > 0:
        variation_seed = request.variation_seed if request.variation_seed is not None else pick()
    items = []
    for i in range(request.outputs_count):
        if variation_seed is None:
            items.append(OutputItem(i, request.strength, (seed + i) % (MAX_SEED + 1), request.with_variations))
        else:
            own = ((variation_seed + i) % (MAX_SEED + 1), request.variation_amount)
            items.append(OutputItem(i, request.strength, seed, (*request.with_variations, own)))
    return items
