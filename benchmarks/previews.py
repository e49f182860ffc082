"""What the step previews cost, as a share of step time, with the default settings.

Run from the repo root:  .venv/bin/python benchmarks/previews.py [--rounds 7]

The demo model with its own recommended settings (a 128² img2img from a sketch, the request's
defaults: preview "auto", preview_kind "both") on the CPU, in one process:

(1) per step, through the engine: the time the preview work takes (the x_t strip frame and the x0
    frame with the decoders "auto" chose, both JPEG-encoded into one job_step payload) over the
    time the step itself took (UNet with CFG, scheduler), summed over alternating rounds. The same
    for preview "patch" (the patch decoder drawing both pictures at full size) and "vae" (the full
    VAE drawing every x0), to show what auto saved or spent.
(2) per job, through Studio.run_job as the worker runs it (latent cache, saving the PNG): the
    median wall time with the defaults over the median with preview "off", alternating.

Each run waits for an idle CPU first (the machine is shared; see overhead.py). The last line is:

    preview_fraction=<(1) with the defaults> decoder=<auto's x0 choice> x0_size=<WxH>
    strip_decoder=<auto's x_t choice> strip_size=<WxH> patch_fraction=<(1) with patch>
    vae_fraction=<(1) with vae> job_ratio_vs_off=<(2)>

Before it, one patch picture (decode and JPEG encode) is timed at the demo's latent size and at
SD 1.5's 64x64 latents (512² pictures), to show what it costs beyond the demo.

Goal (reported, never asserted): preview_fraction <= 0.10.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: make `server` importable without installing
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from overhead import sketch, wait_for_quiet  # noqa: E402

PROMPT = "a red barn in a green field under a blue sky"
SEED = 1234


def preview_share(model, payload: dict, init, previews_cls, generate, request_cls) -> tuple[float, float, dict]:
    """(seconds of preview work, seconds of steps, job_plan's preview) of one engine run."""
    request = request_cls.from_payload(payload, defaults=model.defaults)
    previews = previews_cls(model, request, init.width, init.height)
    spent = {"preview": 0.0, "steps": 0.0}

    def on_step(frame):
        started = time.perf_counter()
        previews.step_payload(frame)
        if frame.step_s is not None:  # the init frame is once per output, not per step
            spent["preview"] += time.perf_counter() - started
            spent["steps"] += frame.step_s

    info = previews.plan_info()
    generate(model, request, init, on_step=on_step)
    return spent["preview"], spent["steps"], info


def patch_picture_ms(model, side: int, calls: int = 50) -> float:
    """Median milliseconds of one patch picture (decode and JPEG encode) of seeded noise latents."""
    latents = torch.randn(1, 4, side, side, generator=torch.Generator().manual_seed(0))
    renderer = model.previews
    times = []
    wait_for_quiet()
    for _ in range(calls + 1):  # the first call warms up
        started = time.perf_counter()
        renderer.encode(renderer.render(latents, "patch"))
        times.append(time.perf_counter() - started)
    return float(np.median(times[1:]) * 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    rounds = parser.parse_args().rounds

    from server.engine import GenerationRequest, generate, load_model
    from server.worker.job_previews import JobPreviews
    from server.worker.jobs import Job
    from server.worker.studio import Studio

    model = load_model(None, "cpu")
    init = sketch(model.native_size)
    base = {"prompt": PROMPT, "seed": SEED}
    defaults = GenerationRequest.from_payload(base, defaults=model.defaults)
    print(f"demo model, {init.width}x{init.height} img2img, {defaults.steps} steps, strength {defaults.strength}, "
          f"cfg {defaults.cfg_scale}, {defaults.sampler}, preview {defaults.preview}/{defaults.preview_kind}; "
          f"torch threads {torch.get_num_threads()} of {os.cpu_count()} cores; {rounds} alternating rounds")

    for side in (init.height // model.pipe.vae_scale_factor, 64):
        print(f"one patch picture at {side}x{side} latents (decode + JPEG): {patch_picture_ms(model, side):.2f} ms")

    # (1) per step, through the engine.
    shares = {"auto": [0.0, 0.0], "patch": [0.0, 0.0], "vae": [0.0, 0.0]}
    plan = None
    for round_ in range(rounds + 1):  # the first round warms up and is left out
        for name, extra in (("auto", {}), ("patch", {"preview": "patch"}), ("vae", {"preview": "vae"})):
            wait_for_quiet()
            spent, steps, info = preview_share(model, {**base, **extra}, init, JobPreviews, generate,
                                               GenerationRequest)
            plan = info if name == "auto" else plan
            if round_:
                shares[name][0] += spent
                shares[name][1] += steps
    fraction = {name: spent / steps for name, (spent, steps) in shares.items()}
    strip = plan.get("strip", {"decoder": "-", "width": 0, "height": 0})
    print(f"auto chose {plan['decoder']} ({plan['width']}x{plan['height']}) for x0 and {strip['decoder']} "
          f"({strip['width']}x{strip['height']}) for x_t; model's preview costs: {model.previews.budget.summary()}")
    print("preview work per step: " + ", ".join(f"{k} {v:.3%}" for k, v in fraction.items()) + " of the step's time")

    # (2) per job, as the worker runs it.
    with tempfile.TemporaryDirectory(prefix="previews-bench-") as tmp:
        studio = Studio(Path(tmp), None, "cpu", preloaded=model)
        studio.load()
        upload = studio.uploads.save(init).id

        class Never:
            def is_set(self):
                return False

        walls = {"defaults": [], "off": []}
        for round_ in range(rounds + 1):
            for name, extra in (("defaults", {}), ("off", {"preview": "off"})):
                request = GenerationRequest.from_payload({**base, "init_image": upload, **extra},
                                                         defaults=model.defaults)
                wait_for_quiet()
                started = time.perf_counter()
                studio.run_job(Job(f"bench-{name}-{round_}", "bench", request, Never()), lambda *a, **k: None)
                if round_:
                    walls[name].append(time.perf_counter() - started)
    ratio = float(np.median(walls["defaults"]) / np.median(walls["off"]))
    print("job wall s, median: " + ", ".join(f"{k} {np.median(v):.3f}" for k, v in walls.items()))
    print(f"preview_fraction={fraction['auto']:.4f} decoder={plan['decoder']} x0_size={plan['width']}x{plan['height']} "
          f"strip_decoder={strip['decoder']} strip_size={strip['width']}x{strip['height']} "
          f"patch_fraction={fraction['patch']:.4f} vae_fraction={fraction['vae']:.4f} job_ratio_vs_off={ratio:.3f}")


if __name__ == "__main__":
    main()
