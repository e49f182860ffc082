"""How long a single-file checkpoint takes to load, and how much memory it takes, per family.

Run from the repo root:

    .venv/bin/python benchmarks/checkpoint_load.py                      # sd1, sd2, sdxl at full size
    .venv/bin/python benchmarks/checkpoint_load.py --families sd1,sd2   # without the 7 GB SDXL file
    .venv/bin/python benchmarks/checkpoint_load.py --size small         # a quick check of the script

Per family (SD 1.x, SD 2.x, SDXL; random weights in the published architecture and the original
single-file layout, written once as float16 by tests.checkpoint_families.cached_checkpoint and
reused across runs): the file is read once so it sits in the page cache, then each measurement
runs in a fresh subprocess, so its peak RSS is that load's own:

(a) studio:    server.engine.load_model(path, "cpu", cache_dir=<an empty folder>): family detection,
               conversion, modules built on `meta`, and the latent-preview fit a first load pays
               (reported apart: studio_preview_fit_s, and studio_load_before_fit_s);
(a') studio_warm: the same with the fitted map left in cache_dir by (a), as every later load runs
               (warm_preview_cache_hit says whether the studio found it there);
(b) diffusers: StableDiffusionPipeline / StableDiffusionXLPipeline.from_single_file(path,
               config=<a diffusers-layout folder written from the family JSON configs and the
               studio's offline tokenizer>, local_files_only=True), in float32 as the studio loads
               on a CPU. If that fails offline, the script says so and falls back to what a
               hand-written offline loader does: safetensors.torch.load_file + diffusers'
               conversion functions into modules made by `from_config` (default init).

Load time is wall clock around the load call; peak RSS is ru_maxrss minus the RSS after imports
(file pages the load maps count too). The paths run one at a time, each started on an idle machine
(up to 30 s wait), alternating --repeats times (default 3); medians of the runs other programs did
not disturb are reported (of all runs when every one was), and the detail line shows each run
with the CPU seconds other programs used during it. A family whose load would not fit in MemAvailable is skipped (full
SDXL needs ~21 GB). One line per family (ratio: studio / diffusers), then the extra keys:

    family=sd1 size=full studio_load_s=… diffusers_load_s=… ratio=… studio_peak_rss_gb=… diffusers_peak_rss_gb=… file_gb=…
    … studio_preview_fit_s=… studio_load_before_fit_s=… studio_warm_load_s=… warm_ratio=… studio_warm_peak_rss_gb=…
    … warm_preview_cache_hit=yes|no
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: `server` and `tests` importable without installing
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may reach a model hub

GB = 1024 ** 3
PIPELINES = {"sd1": "StableDiffusionPipeline", "sd2": "StableDiffusionPipeline", "sdxl": "StableDiffusionXLPipeline"}


def proc_bytes(file: str, key: str) -> int:
    """A kB figure from /proc (VmRSS in /proc/self/status, MemAvailable in /proc/meminfo), in bytes."""
    line = next(line for line in Path(file).read_text().splitlines() if line.startswith(key + ":"))
    return int(line.split()[1]) * 1024


def available_bytes() -> int:
    return proc_bytes("/proc/meminfo", "MemAvailable")


# -- the diffusers-layout config folder from_single_file is pointed at -----------------------------------
def family_configs(family: str, size: str) -> dict:
    """The family JSON with the configs of the size the file was built at (full: exactly the JSON's)."""
    from tests import checkpoint_families as cf

    config = cf.family_config(family)
    config.update(unet=cf.unet_config(family, size), vae=cf.vae_config(family, size),
                  **cf.text_encoder_configs(family, size))
    return config


def write_config_folder(family: str, size: str, folder: Path) -> Path:
    """model_index.json and each component's config (no weights), from the studio's family JSON."""
    from transformers import CLIPTextConfig

    from server.engine.clip_tokenizer import clip_tokenizer

    config = family_configs(family, size)
    xl = family == "sdxl"
    index = {"_class_name": PIPELINES[family], "_diffusers_version": "0.42.1",
             "scheduler": ["diffusers", config["scheduler"]["_class_name"]],
             "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
             "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}
    if xl:
        index.update(text_encoder_2=["transformers", "CLIPTextModelWithProjection"],
                     tokenizer_2=["transformers", "CLIPTokenizer"], force_zeros_for_empty_prompt=True)
    else:
        index.update(safety_checker=[None, None], feature_extractor=[None, None], requires_safety_checker=False)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model_index.json").write_text(json.dumps(index, indent=1))
    for name, file_name, values in (("unet", "config.json", dict(config["unet"], _class_name="UNet2DConditionModel")),
                                    ("vae", "config.json", dict(config["vae"], _class_name="AutoencoderKL")),
                                    ("scheduler", "scheduler_config.json", config["scheduler"])):
        (folder / name).mkdir(exist_ok=True)
        (folder / name / file_name).write_text(json.dumps(values, indent=1))
    for name, cls in (("text_encoder", "CLIPTextModel"), ("text_encoder_2", "CLIPTextModelWithProjection")):
        if name in config:
            CLIPTextConfig(**config[name], architectures=[cls]).save_pretrained(folder / name)
            tokenizer = name.replace("text_encoder", "tokenizer")
            clip_tokenizer(config[tokenizer]["pad_token"]).save_pretrained(folder / tokenizer)
    return folder


# -- the loads, each in its own process ------------------------------------------------------------------
def load_studio(path: Path, family: str, size: str, config_dir: Path, preview_cache: str | None = None) -> dict:
    """With preview_cache: a load that finds the preview map cached there. Without: a first load
    (an empty cache folder), whose fitted map is then copied there, untimed."""
    from server.engine import load_model

    marks = {}
    cached_before = set(Path(preview_cache).glob("*.json")) if preview_cache else set()
    with tempfile.TemporaryDirectory(prefix="ckpt-load-cache-") as cache:
        started = time.perf_counter()
        load_model(path, "cpu", cache_dir=Path(preview_cache or cache),
                   progress=lambda fraction, message: marks.setdefault(message, time.perf_counter()))
        ended = time.perf_counter()
        if not preview_cache:
            (config_dir / "preview-cache").mkdir(exist_ok=True)
            for fitted in Path(cache).glob("*.json"):
                shutil.copy(fitted, config_dir / "preview-cache" / fitted.name)
    fit = ended - marks["calibrating latent previews"] if "calibrating latent previews" in marks else None
    # A load that missed the cache fitted a map and wrote a new file there.
    hit = set(Path(preview_cache).glob("*.json")) == cached_before if preview_cache else None
    return {"load_s": ended - started, "preview_fit_s": fit, "cache_hit": hit}


def load_diffusers(path: Path, family: str, size: str, config_dir: Path, preview_cache=None) -> dict:
    import diffusers
    import torch

    cls = getattr(diffusers, PIPELINES[family])
    extra = {} if family == "sdxl" else {"safety_checker": None, "requires_safety_checker": False}
    started = time.perf_counter()
    try:
        cls.from_single_file(str(path), config=str(config_dir), local_files_only=True, torch_dtype=torch.float32,
                             **extra)
        how = "from_single_file"
    except Exception as exc:  # offline loading failed: the hand-written loader instead, and say why
        print(f"from_single_file failed offline ({type(exc).__name__}: {exc}); falling back", file=sys.stderr)
        started = time.perf_counter()
        hand_written_load(path, family, size)
        how = "load_file+convert"
    return {"load_s": time.perf_counter() - started, "how": how}


def hand_written_load(path: Path, family: str, size: str) -> dict:
    """What an offline loader without the studio does: the whole file, diffusers' conversions,
    modules made with their default init, load_state_dict."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders import single_file_utils as su
    from safetensors.torch import load_file
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config, state = family_configs(family, size), load_file(str(path))
    unet = UNet2DConditionModel.from_config(config["unet"])
    unet.load_state_dict(su.convert_ldm_unet_checkpoint(state, config["unet"]))
    vae = AutoencoderKL.from_config(config["vae"])
    vae.load_state_dict(su.convert_ldm_vae_checkpoint(state, config["vae"]))
    parts = {"unet": unet, "vae": vae}
    encoders = {"sd1": [("text_encoder", "cond_stage_model.transformer.text_model.")],
                "sd2": [("text_encoder", "cond_stage_model.model.")],
                "sdxl": [("text_encoder", "conditioner.embedders.0.transformer.text_model."),
                         ("text_encoder_2", "conditioner.embedders.1.model.")]}[family]
    for name, prefix in encoders:
        text_config = CLIPTextConfig(**config[name])
        model = (CLIPTextModelWithProjection if name == "text_encoder_2" else CLIPTextModel)(text_config)
        if ".transformer." in prefix:
            weights = su.convert_ldm_clip_checkpoint(state)
        else:
            weights = su.convert_open_clip_checkpoint(model, state, prefix)
        if name == "text_encoder":
            weights = {k.removeprefix("text_model.") if not hasattr(model, "text_model") else k: v
                       for k, v in weights.items() if not k.startswith("text_projection")}
        missing = [k for k in model.load_state_dict(weights, strict=False).missing_keys if "position_ids" not in k]
        if missing:
            raise RuntimeError(f"the hand-written loader missed {len(missing)} {name} weights, e.g. {missing[0]}")
        parts[name] = model
    for module in parts.values():
        module.to(torch.float32)
    return parts


def child(args) -> None:
    import diffusers  # noqa: F401  (the imports both paths need, before the baseline RSS)
    import torch  # noqa: F401
    import transformers  # noqa: F401

    import server.engine.loading  # noqa: F401

    baseline = proc_bytes("/proc/self/status", "VmRSS")
    load = load_diffusers if args.child == "diffusers" else load_studio
    result = load(Path(args.path), args.family, args.size, Path(args.config_dir), args.preview_cache)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    result.update(peak_rss_bytes=peak - baseline, import_rss_bytes=baseline)
    print("RESULT " + json.dumps(result), flush=True)


def machine_busy_seconds() -> float:
    """CPU seconds every program has used since boot (user, nice, system, irq, softirq, steal)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(ticks[:3]) + sum(ticks[5:8])) / os.sysconf("SC_CLK_TCK")


def wait_for_quiet(limit: float = 30.0) -> None:
    """Start each load on an idle machine (it may be shared): under 15% of its cores busy."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        busy, wall = machine_busy_seconds(), time.monotonic()
        time.sleep(0.5)
        if (machine_busy_seconds() - busy) / (time.monotonic() - wall) / os.cpu_count() < 0.15:
            return


def measure(which: str, path: Path, family: str, size: str, config_dir: Path) -> dict:
    """One load in a fresh process. "studio" is a first load (it fits the latent-preview map);
    "studio_warm" finds the map cached (every "studio" load leaves it), as every later load does.
    other_cpu_s: CPU seconds other programs used meanwhile (a busy machine slows the load)."""
    cache = ["--preview-cache", str(config_dir / "preview-cache")]
    wait_for_quiet()
    busy, ours = machine_busy_seconds(), resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, __file__, "--child", which, "--path", str(path), "--family", family,
                           "--size", size, "--config-dir", str(config_dir), *(cache if which == "studio_warm" else [])],
                          cwd=ROOT, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    child_cpu = after.ru_utime - ours.ru_utime + after.ru_stime - ours.ru_stime
    results = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not results:
        raise RuntimeError(f"the {which} load of {path.name} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    for line in proc.stderr.splitlines():
        if "falling back" in line:
            print(f"  note ({family}): {line}")
    return dict(json.loads(results[-1][len("RESULT "):]), other_cpu_s=machine_busy_seconds() - busy - child_cpu)


def warm_page_cache(path: Path) -> None:
    with open(path, "rb") as fh:
        while fh.read(64 << 20):
            pass


# -- the run -----------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=("full", "small"), default="full")
    parser.add_argument("--families", default="sd1,sd2,sdxl", help="comma-separated: sd1, sd2, sdxl")
    parser.add_argument("--repeats", type=int, default=3, help="measurements of each path (medians reported)")
    parser.add_argument("--ignore-memory", action="store_true", help="run a family even if memory looks short")
    parser.add_argument("--child", choices=("studio", "studio_warm", "diffusers"), help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--family", help=argparse.SUPPRESS)
    parser.add_argument("--config-dir", help=argparse.SUPPRESS)
    parser.add_argument("--preview-cache", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    import importlib.util

    import torch

    from tests.checkpoint_families import cached_checkpoint, cache_dir

    families = [f.strip() for f in args.families.split(",") if f.strip()]
    unknown = set(families) - set(PIPELINES)
    if unknown:
        parser.error(f"unknown families {sorted(unknown)}; choose from {sorted(PIPELINES)}")
    print(f"settings: {args.size} size, float16 files in {cache_dir()}, loaded as float32 on the CPU; "
          f"{args.repeats} measurement(s) per path, each in a fresh process; torch threads "
          f"{torch.get_num_threads()} of {os.cpu_count()} cores; accelerate "
          f"{'installed' if importlib.util.find_spec('accelerate') else 'not installed (diffusers inits weights)'}; "
          f"MemAvailable {available_bytes() / GB:.1f} GB")
    with tempfile.TemporaryDirectory(prefix="ckpt-load-") as tmp:
        for family in families:
            # A float16 file loaded as float32: float32 modules (4 bytes a weight) beside the float16
            # tensors read from the file (2 more); writing the file the first time needs less.
            billions = {"sd1": 1.07, "sd2": 1.30, "sdxl": 3.47}[family] * (1 if args.size == "full" else 0.02)
            need = billions * 6 * 1e9 / GB + 1.5
            if available_bytes() / GB < need and not args.ignore_memory:
                print(f"family={family} size={args.size} skipped: a load needs ~{need:.0f} GB of memory, "
                      f"{available_bytes() / GB:.1f} GB is available (--ignore-memory runs it anyway)", flush=True)
                continue
            started = time.perf_counter()
            path = cached_checkpoint(family, args.size, torch.float16)
            built = time.perf_counter() - started
            warm_page_cache(path)
            config_dir = write_config_folder(family, args.size, Path(tmp) / family)
            runs = {"studio": [], "studio_warm": [], "diffusers": []}
            for _ in range(args.repeats):
                for which in runs:
                    runs[which].append(measure(which, path, family, args.size, config_dir))
            # Medians of the undisturbed runs (other programs used < 0.5 CPU s, or 5% of the cores), all if none was.
            kept = {w: [r for r in rs if r["other_cpu_s"] < max(0.5, 0.05 * r["load_s"] * os.cpu_count())] or rs
                    for w, rs in runs.items()}
            med = {w: {k: statistics.median(r[k] for r in rs) for k in ("load_s", "peak_rss_bytes")}
                   for w, rs in kept.items()}
            fits = [r["preview_fit_s"] for r in kept["studio"] if r["preview_fit_s"] is not None]
            before_fit = [r["load_s"] - r["preview_fit_s"] for r in kept["studio"] if r["preview_fit_s"] is not None]
            print(f"  {family}: file ready in {built:.1f} s ({path.name}); load s (other programs' CPU s): "
                  + ", ".join(f"{w} {[(round(r['load_s'], 1), round(r['other_cpu_s'], 1)) for r in rs]}"
                              for w, rs in runs.items())
                  + f"; diffusers via {'/'.join(sorted({r['how'] for r in runs['diffusers']}))}; undisturbed runs used: "
                  + ", ".join(f"{w} {len(kept[w]) if kept[w] is not rs else 0}/{len(rs)}"
                              for w, rs in runs.items()))
            s, w, d = med["studio"], med["studio_warm"], med["diffusers"]
            print(f"family={family} size={args.size} studio_load_s={s['load_s']:.2f} "
                  f"diffusers_load_s={d['load_s']:.2f} ratio={s['load_s'] / d['load_s']:.2f} "
                  f"studio_peak_rss_gb={s['peak_rss_bytes'] / GB:.2f} diffusers_peak_rss_gb={d['peak_rss_bytes'] / GB:.2f} "
                  f"file_gb={path.stat().st_size / GB:.2f} "
                  f"studio_preview_fit_s={statistics.median(fits) if fits else float('nan'):.2f} "
                  f"studio_load_before_fit_s={statistics.median(before_fit) if before_fit else float('nan'):.2f} "
                  f"studio_warm_load_s={w['load_s']:.2f} warm_ratio={w['load_s'] / d['load_s']:.2f} "
                  f"studio_warm_peak_rss_gb={w['peak_rss_bytes'] / GB:.2f} "
                  f"warm_preview_cache_hit={'yes' if all(r['cache_hit'] for r in runs['studio_warm']) else 'no'}",
                  flush=True)

if __name__ == "__main__":
    main()
