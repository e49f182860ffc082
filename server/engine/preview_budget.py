"""Which decoders draw a model's previews, chosen from measured cost.

The rule behind `preview: "auto"`: each step's preview work (the large view's x0 picture plus the
strip's x_t picture, each decoded and JPEG-encoded) may cost at most BUDGET_FRACTION (10%) of one
denoising step with CFG at the job's size.
- The large view's x0 picture takes the first decoder that fits: the full VAE (exact), then TAESD
  when the model folder ships one, then the patch decoder (the full size from a fitted linear map);
  when none fits, the latent->RGB map (microseconds, 1x the latent size).
- The strip's x_t picture takes the patch decoder when it fits beside the x0 picture's cost, else
  the map. x_t is noisy, but at 8x the latent size it reads as the picture forming; at 1x it is a
  mosaic.

The costs come from measurements, never from the model's name:
1. What earlier jobs of this model measured at the same latent size (real steps, real decodes).
2. Otherwise a probe, on the worker before the job's first step: one UNet call with CFG (batch 2,
   zero inputs: the cost does not depend on the values) and one decode and encode with each
   decoder but the map, each timed after a warm-up call. It runs first at a small latent size
   (PROBE_SIDE²), then at the job's own size when the small figures say that costs under
   PROBE_LIMIT_S (the demo model: milliseconds). Otherwise the small figures are scaled by pixel
   count (UNet and decoders are convolutional, so cost grows with pixels), so an SD 1.5 on a CPU
   never spends a full 512² decode (about 20 s) to learn that it is too slow: its 64² probe decode
   costs a fraction of a second. The patch decoder alone is timed at the job's own size: it costs
   milliseconds there, and its 8x8 figure is mostly fixed overhead that scaling would inflate.
3. During a job each step's real time and each picture's real time are recorded (see
   `over_budget`). A large-view decoder found over budget gives way to the next one that fits for
   the rest of the job, and this model does not pick it again while it stays loaded; a strip found
   to push the step over budget falls back to the map for the rest of the job. The job's medians
   replace the probe's figures for that size, so the next job decides on real steps.
"""
from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass, field

import torch

BUDGET_FRACTION = 0.10  # a step's preview work may cost this share of the step
LARGE_DECODERS = ("vae", "taesd", "patch")  # for the x0 picture, in order of preference: exact first
STRIP_DECODER = "patch"  # the strip's x_t picture when it fits; otherwise the map
FLOOR = "latent"  # the map: microseconds, never timed against the budget, never rejected
PROBE_SIDE = 8  # latents: 64 px images for SD; a size every supported UNet takes
PROBE_LIMIT_S = 0.25  # a probe at the job's own size is run only when expected to cost less than this
CLEARLY_OVER = 5  # one decode this many times the budget is enough to fall back (no noise explains it)

log = logging.getLogger(__name__)


@dataclass
class Costs:
    """Seconds of one step with CFG and of one picture (decode and JPEG encode) per timed decoder,
    at one latent size."""

    step_s: float
    decode_s: dict[str, float] = field(default_factory=dict)
    # "probe" (measured at this size), "scaled" (from the small probe), "job" (a job's medians) or
    # "unmeasured" (the probe failed: step_s is infinite, so only the map is chosen)
    source: str = "probe"

    def scaled(self, factor: float) -> "Costs":
        return Costs(self.step_s * factor, {k: v * factor for k, v in self.decode_s.items()}, "scaled")


@dataclass(frozen=True)
class PreviewChoice:
    large: str  # the decoder of the large view's x0 picture
    strip: str  # the decoder of the strip's x_t picture: STRIP_DECODER or FLOOR
    costs: Costs  # what they were chosen on


class PreviewBudget:
    """One loaded model's preview costs and the decoders they choose. Used on the worker thread only;
    `summary` may be read from others (it copies plain values)."""

    def __init__(self, fraction: float = BUDGET_FRACTION):
        self.fraction = fraction
        self._costs: dict[tuple[int, int], Costs] = {}
        self.rejected: set[str] = set()  # large-view decoders a real job found over budget
        self.last: dict | None = None  # the latest choice, for /api/health

    # -- choosing ----------------------------------------------------------------------------------
    def choose(self, unet, renderer, latent_hw: tuple[int, int]) -> PreviewChoice:
        """The decoders for a job's pictures at `latent_hw`, and the costs they were chosen on."""
        try:
            costs = self.costs_at(unet, renderer, latent_hw)
        except Exception as exc:  # noqa: BLE001 - a UNet the probe cannot call still gets (map) previews
            log.warning("Could not time this model's preview decoders (%s); previews use the latent map", exc)
            costs = self._remember(latent_hw, Costs(float("inf"), {}, "unmeasured"))
        return self.pick(latent_hw, costs)

    def pick(self, latent_hw, costs: Costs) -> PreviewChoice:
        """The best decoders `costs` allow, leaving out the rejected ones (see the module's rule)."""
        usable = {d: s for d, s in costs.decode_s.items() if d not in self.rejected}
        large = next((d for d in LARGE_DECODERS if d in usable and self.fits(usable[d], costs.step_s)), FLOOR)
        strip = STRIP_DECODER if STRIP_DECODER in usable and self.fits(
            usable.get(large, 0.0) + usable[STRIP_DECODER], costs.step_s) else FLOOR
        self.last = {"decoder": large, "strip_decoder": strip, "latent_size": list(latent_hw),
                     "step_ms": _ms(costs.step_s), "decode_ms": {d: _ms(s) for d, s in costs.decode_s.items()},
                     "measured": costs.source, "rejected": sorted(self.rejected)}
        return PreviewChoice(large, strip, costs)

    def fits(self, decode_s: float, step_s: float) -> bool:
        return decode_s <= self.fraction * step_s

    def costs_at(self, unet, renderer, latent_hw: tuple[int, int]) -> Costs:
        known = self._costs.get(latent_hw)
        if known is not None:
            return known
        small_hw = (min(PROBE_SIDE, latent_hw[0]), min(PROBE_SIDE, latent_hw[1]))
        small = self._costs.get(small_hw) or self._remember(small_hw, probe(unet, renderer, small_hw))
        if small_hw == latent_hw:
            return small
        estimate = small.scaled(latent_hw[0] * latent_hw[1] / (small_hw[0] * small_hw[1]))
        # The probe at the job's size runs each call at least twice (warm-up, then timed).
        if 2 * (estimate.step_s + sum(estimate.decode_s.values())) <= PROBE_LIMIT_S:
            return self._remember(latent_hw, probe(unet, renderer, latent_hw))
        if "patch" in estimate.decode_s:
            # Milliseconds at any size, so timed at the job's own: at the probe's 8x8 its cost is
            # mostly fixed overhead, and scaling that by pixel count overstates it many times over.
            estimate.decode_s["patch"] = picture_s(renderer, "patch", latent_hw, unet.device)
        return estimate  # not remembered: a job at this size will measure the real figures

    def _remember(self, latent_hw, costs: Costs) -> Costs:
        self._costs[latent_hw] = costs
        return costs

    # -- what a job measured --------------------------------------------------------------------------
    def over_budget(self, decode_samples: list[float], step_samples: list[float]) -> bool:
        """Whether a job's real preview seconds per step (oldest first) exceed the budget of its real
        steps: the median of the last three of each, once there are two; or one CLEARLY_OVER times it."""
        if not decode_samples or not step_samples:
            return False
        step_s = statistics.median(step_samples[-3:])
        if decode_samples[-1] > CLEARLY_OVER * self.fraction * step_s:
            return True
        return len(decode_samples) >= 2 and not self.fits(statistics.median(decode_samples[-3:]), step_s)

    def learn(self, latent_hw, basis: Costs, step_samples: list[float],
              decode_samples: dict[str, list[float]] | None = None) -> Costs:
        """Keep a job's medians as the model's costs at this size, over `basis` (the costs the job was
        chosen on) for the decoders it did not run: the next job decides on them."""
        if not step_samples:
            return basis
        decode_s = dict(basis.decode_s)
        for decoder, samples in (decode_samples or {}).items():
            if decoder != FLOOR and samples:
                decode_s[decoder] = statistics.median(samples)
        return self._remember(latent_hw, Costs(statistics.median(step_samples), decode_s, "job"))

    def reject(self, decoder: str, latent_hw, costs: Costs) -> PreviewChoice:
        """`decoder` proved over budget as the large view's: the next choice, for this and later jobs."""
        self.rejected.add(decoder)
        return self.pick(latent_hw, costs)

    def summary(self) -> dict | None:
        return None if self.last is None else dict(self.last)


def _ms(seconds: float) -> float | None:
    return round(seconds * 1e3, 2) if seconds != float("inf") else None  # JSON has no infinity


@torch.no_grad()
def probe(unet, renderer, latent_hw: tuple[int, int]) -> Costs:
    """Time one UNet call with CFG, and one picture (decode and JPEG encode) per available decoder
    but the map, at `latent_hw`. The latents are seeded noise: a decoder's cost does not depend on
    them, but JPEG's does, and noise is its slowest case."""
    step_s = _timed(lambda: _unet_call(unet, latent_hw))
    decode_s = {d: picture_s(renderer, d, latent_hw, unet.device) for d in LARGE_DECODERS if renderer.available(d)}
    return Costs(step_s, decode_s, "probe")


def picture_s(renderer, decoder: str, latent_hw, device) -> float:
    """Seconds of one preview picture by `decoder` (decode and JPEG encode) at `latent_hw`."""
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(1, renderer.vae.config.latent_channels, *latent_hw, generator=generator).to(device)
    return _timed(lambda: renderer.encode(renderer.render(latents, decoder)))


def _timed(call) -> float:
    """Seconds of one call: the fastest of up to three after a warm-up call (first calls pay one-time
    set-up; other work on a shared machine only ever adds time). Stops early once the timed calls
    have taken PROBE_LIMIT_S. Each call ends on the CPU or is synchronised: wall time of finished work."""
    call()
    times: list[float] = []
    while len(times) < 3 and sum(times) < PROBE_LIMIT_S:
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return min(times)


def _unet_call(unet, latent_hw) -> None:
    """One UNet call as a step with CFG makes it: a batch of two, zeros for the inputs. SDXL's UNet
    also takes pooled text embeddings and six size ids."""
    config, device, dtype = unet.config, unet.device, unet.dtype
    cross = config.cross_attention_dim
    cross = cross[0] if isinstance(cross, (list, tuple)) else cross
    kwargs = {}
    if config.addition_embed_type == "text_time":
        ids = 6
        text_dim = config.projection_class_embeddings_input_dim - ids * config.addition_time_embed_dim
        kwargs["added_cond_kwargs"] = {"text_embeds": torch.zeros(2, text_dim, device=device, dtype=dtype),
                                       "time_ids": torch.zeros(2, ids, device=device, dtype=dtype)}
    sample = torch.zeros(2, config.in_channels, *latent_hw, device=device, dtype=dtype)
    hidden = torch.zeros(2, 77, cross, device=device, dtype=dtype)
    out = unet(sample, 500, encoder_hidden_states=hidden, return_dict=False, **kwargs)[0]
    out.sum().item()  # waits for an asynchronous device
