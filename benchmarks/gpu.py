"""The studio against bare diffusers on a GPU: steps per second with previews on, and the live slider.

Run from the repo root on a CUDA machine (one command, well inside 10 minutes on one GPU):

    .venv/bin/python benchmarks/gpu.py                                    # --device cuda --size full
    .venv/bin/python benchmarks/gpu.py --device cpu --size small --runs 3  # smoke run without a GPU (64²)

Models: SD 1.5, SDXL and SD-Turbo (SD 2.x with the turbo variant: Euler, trailing spacing) at the
published sizes, random weights (same FLOPs as the real ones), float16 on CUDA (float32 on a CPU),
built in memory by tests.checkpoint_families.build_components on `meta` and filled on the device by
its own rules (its device="cuda" would fill from a CPU generator, which CUDA tensors refuse), and
assembled twice from the very same component objects: as the studio's model (server.engine.assemble.assemble_model, with the
offline CLIP tokenizers) and as diffusers' StableDiffusion(XL)Img2ImgPipeline. One model at a time,
freed before the next.

1. img2img at native size (512² SD 1.5, 1024² SDXL), 20 steps, strength 0.75 (15 taken), CFG 7.5,
   Euler, the same seed: after one warm-up run each, --repeats timed runs of each path, alternated.
   it/s is the denoising loop's rate: (taken - 1) / (last step end - first step end), timed at the
   step callbacks with torch.cuda.synchronize(). The studio's callback renders the latent preview
   and JPEG-encodes it, as the studio does every step; diffusers' only records the time. call_s is
   the whole call (prompt, VAE encode, loop, decode). ratio = studio / diffusers it/s (1.0: parity).
       model=sd15 diffusers_it_s=… studio_it_s=… ratio=… diffusers_call_s=… studio_call_s=…
2. The live slider: --runs fresh 1-step SD-Turbo img2img calls at 512² (CFG 0, Euler), strength
   swept over 0.5..0.9 with the steps that take exactly one (exact_steps), the studio with the
   preview of its step; each call timed end to end (the image is back on the CPU).
       turbo_live_fps=… p50_ms=… p95_ms=… diffusers_fps=… diffusers_p50_ms=… diffusers_p95_ms=… ratio=…

Options: --models sd15,sdxl,turbo (default all), --repeats 3, --runs 30. Expected on one H200-class
GPU (not yet measured): imports and CUDA start ~20 s, each build a few seconds, all timed runs about
a minute; the `time` lines show each part. The CPU smoke run takes ~15 s here.
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: `server` and `tests` importable without installing
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may reach a model hub
warnings.filterwarnings("ignore", message=".*upcast_vae.*")  # diffusers' SDXL pipelines, every float16 call

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

PROMPT = "a red barn in a green field under a blue sky"
STEPS, STRENGTH, CFG, SEED, SAMPLER = 20, 0.75, 7.5, 1234, "euler"
SMOKE_SIZE = 64  # image side with --size small
MODELS = {"sd15": ("sd1", None), "sdxl": ("sdxl", None), "turbo": ("sd2", "turbo")}


def sketch(size: int) -> Image.Image:
    """A flat-colour drawing, like what people paint as an init image."""
    img = Image.new("RGB", (size, size), (90, 150, 230))
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, size * 2 // 3, size, size], fill=(60, 160, 60))
    draw.rectangle([size // 4, size // 3, size * 3 // 5, size * 3 // 4], fill=(190, 40, 30))
    return img


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(family: str, variant: str | None, size: str, device: torch.device, dtype: torch.dtype):
    """(studio model, bare diffusers pipeline) over the same random-weight components."""
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionXLImg2ImgPipeline

    from server.engine.assemble import assemble_model
    from server.engine.clip_tokenizer import clip_tokenizer
    from server.engine.samplers import make_scheduler
    from tests import checkpoint_families as cf

    # build_components fills weights from a CPU generator; built on `meta` instead, given storage on
    # the device and filled there by the same rules (tests.checkpoint_families._fill), a GPU build
    # skips the slow CPU fill and the copy. The CPU smoke run takes the same path.
    fill = getattr(cf, "_fill", None)
    parts = cf.build_components(family, size, dtype=dtype, variant=variant, device="meta" if fill else "cpu")
    for i, module in enumerate(parts.values()):
        if fill:
            module.to_empty(device=device)
            fill(module, torch.Generator(device).manual_seed(i + 1))
        else:  # the helper is gone: CPU-built weights, copied over
            module.to(device)
    config = cf.family_config(family)
    scheduler_config = dict(config["scheduler"], **config.get("variants", {}).get(variant, {}).get("scheduler", {}))
    components = dict(parts, tokenizer=clip_tokenizer(config["tokenizer"]["pad_token"]),
                      scheduler=make_scheduler(SAMPLER, scheduler_config))
    if "tokenizer_2" in config:
        components["tokenizer_2"] = clip_tokenizer(config["tokenizer_2"]["pad_token"])
    model = assemble_model(components, scheduler_config, f"{family}-{variant or 'base'}", is_demo=False, source=None,
                           device=device, dtype=dtype, **config.get("pipeline", {}))
    if family == "sdxl":  # as the studio's: no watermark (it changes pixels and costs time), no aesthetic score
        bare = StableDiffusionXLImg2ImgPipeline(**model.pipe.components, add_watermarker=False)
    else:
        bare = StableDiffusionImg2ImgPipeline(**model.pipe.components)
    bare.set_progress_bar_config(disable=True)
    return model, bare


class Timer:
    """Step-end times of one run, synchronized, so intervals are GPU work done, not launches."""

    def __init__(self, device):
        self.device, self.ends = device, []

    def mark(self):
        sync(self.device)
        self.ends.append(time.perf_counter())

    def it_s(self) -> float:
        return (len(self.ends) - 1) / (self.ends[-1] - self.ends[0])


def run_studio(model, request, init, device, timer: Timer | None = None):
    from server.engine import generate
    from server.engine.conditioning import is_sdxl

    frames = []

    def on_step(frame):
        image = model.previews.render(frame.latents, "latent")  # what the studio does every step
        frames.append(model.previews.encode(image)[0])
        if timer is not None and frame.index >= 0:
            timer.mark()

    if is_sdxl(model.pipe) and model.pipe.vae.config.force_upcast and model.pipe.vae.dtype != torch.float32:
        model.pipe.vae.to(dtype=torch.float32)  # as assembled: the bare SDXL pipeline leaves the shared VAE fp16
    sync(device)
    started = time.perf_counter()
    result = generate(model, request, init, on_step=on_step)
    sync(device)
    return result, time.perf_counter() - started, len(frames)


def run_bare(bare, model, init, device, strength, steps, cfg, timer: Timer | None = None):
    from server.engine.samplers import make_scheduler

    def on_step_end(pipe, i, t, kwargs):
        if timer is not None:
            timer.mark()
        return kwargs

    bare.scheduler = make_scheduler(SAMPLER, model.scheduler_config)  # a fresh one per run, as the studio
    sync(device)
    started = time.perf_counter()
    out = bare(PROMPT, image=init, strength=strength, num_inference_steps=steps, guidance_scale=cfg,
               generator=torch.Generator().manual_seed(SEED), callback_on_step_end=on_step_end)
    sync(device)
    return out.images[0], time.perf_counter() - started


def throughput(name: str, model, bare, device, repeats: int, size: int) -> None:
    from server.engine import GenerationRequest

    init = sketch(size)
    request = GenerationRequest(prompt=PROMPT, strength=STRENGTH, steps=STEPS, cfg_scale=CFG, seed=SEED,
                                sampler=SAMPLER, width=size, height=size, preview="latent")
    run_bare(bare, model, init, device, STRENGTH, STEPS, CFG)  # warm-up: kernels, allocator, lazy init
    run_studio(model, request, init, device)
    rates, calls = {"diffusers": [], "studio": []}, {"diffusers": [], "studio": []}
    taken = frames = 0
    for _ in range(repeats):
        timer = Timer(device)
        _, seconds = run_bare(bare, model, init, device, STRENGTH, STEPS, CFG, timer)
        rates["diffusers"].append(timer.it_s())
        calls["diffusers"].append(seconds)
        timer = Timer(device)
        result, seconds, frames = run_studio(model, request, init, device, timer)
        rates["studio"].append(timer.it_s())
        calls["studio"].append(seconds)
        taken = result.plan.taken
    med = {k: float(np.median(v)) for k, v in rates.items()}
    call = {k: float(np.median(v)) for k, v in calls.items()}
    print(f"  {name}: {size}x{size}, {taken} steps taken, {frames} preview JPEGs per studio run; it/s runs "
          f"diffusers {[round(r, 2) for r in rates['diffusers']]}, studio {[round(r, 2) for r in rates['studio']]}")
    print(f"model={name} diffusers_it_s={med['diffusers']:.2f} studio_it_s={med['studio']:.2f} "
          f"ratio={med['studio'] / med['diffusers']:.3f} diffusers_call_s={call['diffusers']:.3f} "
          f"studio_call_s={call['studio']:.3f}", flush=True)


def live_slider(model, bare, device, runs: int, size: int) -> None:
    """Fresh 1-step generate calls as the strength slider moves, as the studio's live mode makes them."""
    from server.engine import GenerationRequest
    from server.engine.plan import plan_steps

    init = sketch(size)
    strengths = [float(s) for s in np.linspace(0.5, 0.9, runs)]
    plans = [plan_steps(model.scheduler_config, SAMPLER, 1, s, exact_steps=True) for s in strengths]
    requests = [GenerationRequest(prompt=PROMPT, strength=s, steps=1, exact_steps=True, cfg_scale=0.0, seed=SEED,
                                  sampler=SAMPLER, width=size, height=size, preview="latent") for s in strengths]
    run_studio(model, requests[0], init, device)  # warm-up each path
    run_bare(bare, model, init, device, strengths[0], plans[0].num_inference_steps, 0.0)
    studio_ms, bare_ms, taken = [], [], set()
    for request, plan, strength in zip(requests, plans, strengths):
        result, seconds, _ = run_studio(model, request, init, device)
        studio_ms.append(seconds * 1000)
        taken.add(result.plan.taken)
        timer = Timer(device)
        _, seconds = run_bare(bare, model, init, device, strength, plan.num_inference_steps, 0.0, timer)
        bare_ms.append(seconds * 1000)
        taken.add(len(timer.ends))
    if taken != {1}:
        print(f"  WARNING: steps taken per call were {sorted(taken)}, not 1")
    fps = 1000 * len(studio_ms) / sum(studio_ms)
    bare_fps = 1000 * len(bare_ms) / sum(bare_ms)
    print(f"  turbo live: {size}x{size}, {runs} calls, strengths 0.5..0.9, total steps "
          f"{sorted({p.num_inference_steps for p in plans})}, 1 taken each")
    print(f"turbo_live_fps={fps:.2f} p50_ms={np.percentile(studio_ms, 50):.1f} p95_ms={np.percentile(studio_ms, 95):.1f} "
          f"diffusers_fps={bare_fps:.2f} diffusers_p50_ms={np.percentile(bare_ms, 50):.1f} "
          f"diffusers_p95_ms={np.percentile(bare_ms, 95):.1f} ratio={fps / bare_fps:.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default cuda)")
    parser.add_argument("--size", choices=("full", "small"), default="full")
    parser.add_argument("--runs", type=int, default=30, help="live-slider calls per path (default 30)")
    parser.add_argument("--repeats", type=int, default=3, help="timed img2img runs per path and model (default 3)")
    parser.add_argument("--models", default="sd15,sdxl,turbo", help="comma-separated: sd15, sdxl, turbo")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("no CUDA device: torch sees none (use --device cpu --size small for a smoke run)")
    dtype = torch.float16 if device.type == "cuda" else torch.float32  # float16 convolutions crawl on a CPU
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"settings: {name}; {args.size} size, {str(dtype).removeprefix('torch.')}, random weights; "
          f"img2img {STEPS} steps, strength {STRENGTH}, CFG {CFG}, {SAMPLER}, seed {SEED}; "
          f"{args.repeats} timed runs each after a warm-up; live slider {args.runs} calls; "
          f"torch {torch.__version__}", flush=True)
    started = time.perf_counter()
    for key in [m.strip() for m in args.models.split(",") if m.strip()]:
        family, variant = MODELS[key]
        t0 = time.perf_counter()
        model, bare = build(family, variant, args.size, device, dtype)
        t1 = time.perf_counter()
        # Small models keep a full-size latent grid (their VAEs halve, not eighth): 64² is a smoke run.
        size = model.native_size if args.size == "full" else SMOKE_SIZE
        if key == "turbo":
            live_slider(model, bare, device, args.runs, size)
        else:
            throughput(key, model, bare, device, args.repeats, size)
        peak = f", peak GPU memory {torch.cuda.max_memory_allocated(device) / 1024 ** 3:.1f} GB" \
            if device.type == "cuda" else ""
        print(f"  time {key}: build+assemble {t1 - t0:.1f} s, runs {time.perf_counter() - t1:.1f} s{peak}", flush=True)
        del model, bare
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
    print(f"  time total: {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
