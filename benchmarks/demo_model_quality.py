"""Quality benchmark for the embedded demo model (issue #4).

    python benchmarks/demo_model_quality.py [--model server/demo_model/weights] [--grid docs/demo-samples.png]

Prints, next to their targets:
  (a) prompt adherence: share of procedural checks passed (training/demo_model/judge.py) over a
      fixed prompt set and seeds, txt2img at the native size;
  (b) layout similarity: correlation of 16x16 luminance between a sketch and the img2img output
      at strengths 0.1..1.0, averaged over sketches; the prompt describes a *different* scene, so
      high strength must leave the sketch's layout behind (same-caption figures are shown too);
  (c) speed: seconds for 20 steps (with guidance, so two UNet passes a step) at the native size;
  (d) mean absolute error of the fitted latent->RGB preview against the full VAE decode
      (downscaled to latent size), in 0..1 units.
Everything goes through the studio's own engine (load_model / generate), on the CPU, at the
model's recommended settings (its studio_defaults.json: what a person gets); `--also-cfg` repeats
(a) and (b) at other guidance scales (default SD's usual 7.5) for comparison.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from server.engine import GenerationRequest, generate, load_model  # noqa: E402
from training.demo_model.judge import adherence, judge, layout_similarity  # noqa: E402
from training.demo_model.scenes import render, scene_from_prompt  # noqa: E402

PROMPTS = [
    "tree on a hill with a river", "fire", "photograph of a tree on a hill with a river",
    "a house and a tree at night", "a lake with a mountain at sunset", "the sun and a cloud", "a red house",
    "a purple tree", "a mountain and a lake", "the moon at night", "fire at night", "a house with a river",
    "a tree and the sun", "a blue hill with a tree", "a lake at sunset", "a white mountain",
    "a river with a fire", "a yellow house on a hill", "a cloud over a lake in the day", "a black tree at sunset",
]
SEEDS = [1, 2, 3]
STRENGTHS = [0.1, 0.3, 0.5, 0.7, 0.9, 1.0]
# (what the sketch shows, what the prompt asks for instead)
SKETCHES = [
    ("a house and a tree", "a lake at night"),
    ("a mountain and a lake at sunset", "a red house with a tree in the day"),
    ("the sun over a hill with a river", "fire at night"),
    ("a tree on a hill at night", "the sun with a mountain and a river"),
]
TARGETS = {"adherence": 0.80, "layout_0.3": 0.8, "layout_1.0": 0.3, "speed_s": 2.0}


def sketch_image(caption: str, seed: int, size: int) -> Image.Image:
    return render(scene_from_prompt(caption), np.random.default_rng(seed), size)


def request(model, cfg, **settings) -> GenerationRequest:
    """Settings as the studio fills them in: the model's recommendations, then `cfg` if given."""
    given = dict(settings, **({"cfg_scale": cfg} if cfg is not None else {}))
    return GenerationRequest.from_payload(given, defaults=model.defaults)


def run_adherence(model, prompts, seeds, steps=20, cfg=None):
    rows, latents = [], []
    for prompt in prompts:
        for seed in seeds:
            out = generate(model, request(model, cfg, prompt=prompt, steps=steps, seed=seed), None)
            rows.append((prompt, seed, out.image, judge(out.image, prompt)))
            latents.append(out.latents)
    return rows, latents


def run_layout(model, sketches, strengths, steps=20, own_caption=False, cfg=None):
    table = {s: [] for s in strengths}
    outputs = {}
    for i, (shows, asks) in enumerate(sketches):
        init = sketch_image(shows, 100 + i, model.native_size)
        prompt = shows if own_caption else asks
        for s in strengths:
            out = generate(model, request(model, cfg, prompt=prompt, steps=steps, strength=s, seed=7 + i), init)
            table[s].append(layout_similarity(init, out.image))
            outputs[(i, s)] = out.image
    return {s: float(np.mean(v)) for s, v in table.items()}, outputs


def run_speed(model, repeats=5):
    req = request(model, None, prompt="tree on a hill with a river", steps=20, seed=0)
    generate(model, req, None)  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        generate(model, req, None)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def run_preview_mae(model, latents) -> float:
    errors = []
    for lat in latents:
        fast = np.asarray(model.previews.render(lat, "latent"), np.float32) / 255
        full = model.previews.render(lat, "vae").resize(fast.shape[1::-1], Image.Resampling.BOX)
        errors.append(np.abs(fast - np.asarray(full, np.float32) / 255).mean())
    return float(np.mean(errors))


def judge_calibration(prompts) -> tuple[float, float]:
    """The judge on the renderer's own images: right captions vs. another prompt's captions."""
    rng = np.random.default_rng(5)
    right = [judge(render(scene_from_prompt(p), rng), p) for p in prompts for _ in range(3)]
    wrong = [judge(render(scene_from_prompt(prompts[(i + 7) % len(prompts)]), rng), p)
             for i, p in enumerate(prompts) for _ in range(3)]
    return adherence(right), adherence(wrong)


def _label(draw, xy, text, width, font):
    words, line, lines = text.split(), "", []
    for w in words:
        trial = (line + " " + w).strip()
        if draw.textlength(trial, font=font) > width - 4 and line:
            lines.append(line)
            line = w
        else:
            line = trial
    lines.append(line)
    for k, ln in enumerate(lines[:3]):
        draw.text((xy[0] + 2, xy[1] + 2 + k * 11), ln, fill=(20, 20, 20), font=font)


def save_grid(path: Path, samples, sketch, strip, native):
    """Two rows of txt2img samples, then one sketch and its img2img outputs by strength."""
    cell, label_h, cols = native, 36, 8
    rows = [samples[:cols], samples[cols : 2 * cols], [("sketch: " + sketch[0], sketch[1])] + strip]
    grid = Image.new("RGB", (cols * cell, len(rows) * (cell + label_h)), (250, 250, 250))
    draw = ImageDraw.Draw(grid)
    font = ImageFont.load_default()
    for r, row in enumerate(rows):
        for c, (text, img) in enumerate(row[:cols]):
            x, y = c * cell, r * (cell + label_h)
            _label(draw, (x, y), text, cell, font)
            grid.paste(img.resize((cell, cell)), (x, y + label_h))
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path, optimize=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(ROOT / "server/demo_model/weights"))
    p.add_argument("--grid", type=Path, help="also save a sample grid PNG here")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="a cut-down run to check the script itself")
    p.add_argument("--also-cfg", default="7.5",
                   help="comma-separated guidance scales to repeat (a) and (b) at; '' for none")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    global PROMPTS, SEEDS, SKETCHES
    if args.quick:
        PROMPTS, SEEDS, SKETCHES = PROMPTS[:16], SEEDS[:1], SKETCHES[:3]

    t0 = time.time()
    model = load_model(args.model, "cpu")
    cfg = request(model, None).cfg_scale
    print(f"model {model.name}: native {model.native_size}px, load {time.time() - t0:.1f}s; "
          f"recommended settings {model.defaults or 'none'}, so cfg {cfg:g}")
    right, wrong = judge_calibration(PROMPTS)
    print(f"judge calibration on scenes.py renders: right captions {right:.0%}, wrong captions {wrong:.0%}")

    rows, latents = run_adherence(model, PROMPTS, SEEDS)
    score = adherence([r for *_, r in rows])
    print(f"\n(a) prompt adherence, txt2img, 20 steps, cfg {cfg:g}")
    for prompt in PROMPTS:
        results = [r for pr, _s, _i, r in rows if pr == prompt]
        passed = sum(sum(r.values()) for r in results)
        total = sum(len(r) for r in results)
        fails = sorted({k for r in results for k, v in r.items() if not v})
        print(f"  {passed:2d}/{total:2d}  {prompt}" + (f"   (missed: {', '.join(fails)})" if fails else ""))
    whole = np.mean([all(r.values()) for *_, r in rows])
    print(f"  adherence {score:.1%} of checks (target >= {TARGETS['adherence']:.0%}); "
          f"images passing every check {whole:.0%}")

    layout, outputs = run_layout(model, SKETCHES, STRENGTHS)
    own, _ = run_layout(model, SKETCHES, STRENGTHS, own_caption=True)
    print("\n(b) layout similarity (16x16 luminance correlation, sketch vs output), mean of "
          f"{len(SKETCHES)} sketches")
    print("  strength   other-scene prompt   sketch's own caption")
    for s in STRENGTHS:
        target = {0.3: f"target >= {TARGETS['layout_0.3']}", 1.0: f"target <= {TARGETS['layout_1.0']}"}.get(s, "")
        print(f"  {s:7.1f}   {layout[s]:18.3f}   {own[s]:20.3f}   {target}")

    speed = run_speed(model)
    print(f"\n(c) speed: 20 steps txt2img at {model.native_size}px, cfg {cfg:g}: {speed:.2f} s median of 5 "
          f"(target <= {TARGETS['speed_s']} s)")

    mae = run_preview_mae(model, latents)
    print(f"\n(d) latent->RGB preview vs full VAE decode (downscaled to latent size): MAE {mae:.3f} "
          f"(0..1 units; {mae * 255:.1f}/255), preview map: {model.latent_rgb.source}")

    for other in [float(c) for c in args.also_cfg.split(",") if c.strip()]:
        if other == cfg:
            continue
        rows_other, _ = run_adherence(model, PROMPTS, SEEDS, cfg=other)
        layout_other, _ = run_layout(model, SKETCHES, STRENGTHS, cfg=other)
        print(f"\n(a, b) at cfg {other:g} instead: adherence {adherence([r for *_, r in rows_other]):.1%}; layout "
              + ", ".join(f"{s:g}: {layout_other[s]:.3f}" for s in STRENGTHS))

    print(f"\nsummary vs targets (cfg {cfg:g}):")
    checks = [
        ("adherence", score, score >= TARGETS["adherence"], f">= {TARGETS['adherence']:.0%}"),
        ("layout @0.3", layout[0.3], layout[0.3] >= TARGETS["layout_0.3"], f">= {TARGETS['layout_0.3']}"),
        ("layout @1.0", layout[1.0], layout[1.0] <= TARGETS["layout_1.0"], f"<= {TARGETS['layout_1.0']}"),
        ("20 steps (s)", speed, speed <= TARGETS["speed_s"], f"<= {TARGETS['speed_s']}"),
    ]
    for name, value, ok, target in checks:
        print(f"  {name:13s} {value:7.3f}  target {target:7s} {'PASS' if ok else 'MISS'}")

    if args.grid:
        picks = []
        for prompt in PROMPTS[:16]:
            img = next(i for pr, s, i, _r in rows if pr == prompt and s == SEEDS[0])
            picks.append((prompt, img))
        i = 2
        sketch = sketch_image(SKETCHES[i][0], 100 + i, model.native_size)
        strip = [(f"'{SKETCHES[i][1]}' @ {s}", outputs[(i, s)]) for s in STRENGTHS]
        save_grid(args.grid, picks, (SKETCHES[i][0], sketch), strip, model.native_size)
        print(f"\nsaved {args.grid}")
    print(f"total {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
