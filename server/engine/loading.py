"""Loading a Stable Diffusion model's components, with progress, from a diffusers folder.

The embedded default goes through the same `LoadedModel` as a user checkpoint, so everything
downstream treats them alike.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch

from .checkpoint_file import CHECKPOINT_SUFFIXES
from .families import Hints
from .model_defaults import read_model_defaults

if TYPE_CHECKING:  # for the annotations only; assemble_model imports them where they are used
    from diffusers import StableDiffusionImg2ImgPipeline

    from .previews import LatentRGB, PreviewRenderer  # server.engine.previews imports the engine

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]  # (fraction 0..1, what is happening)

# Folder component -> diffusers/transformers class name, in load order (biggest last).
COMPONENTS = [
    ("scheduler", "diffusers", "LMSDiscreteScheduler"),
    ("tokenizer", "transformers", "CLIPTokenizer"),
    ("tokenizer_2", "transformers", "CLIPTokenizer"),  # SDXL
    ("text_encoder", "transformers", "CLIPTextModel"),
    ("text_encoder_2", "transformers", "CLIPTextModelWithProjection"),  # SDXL
    ("vae", "diffusers", "AutoencoderKL"),
    ("unet", "diffusers", "UNet2DConditionModel"),
]
SUPPORTED_PIPELINES = {"StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline", "StableDiffusionInpaintPipeline",
                       "StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline",
                       "StableDiffusionXLInpaintPipeline"}


# The embedded default: a small model this project trains (training/demo_model/) and ships (server/demo_model/).
DEMO_MODEL_DIR = Path(__file__).resolve().parent.parent / "demo_model" / "weights"
DEMO_MODEL_NAME = "img2img-studio demo model"


def model_folder(model_path: str | Path | None) -> Path:
    """The folder `--model` names, or the embedded demo model's when it names none."""
    return Path(model_path).expanduser().resolve() if model_path else DEMO_MODEL_DIR


class ModelLoadError(Exception):
    pass


@dataclass
class LoadedModel:
    name: str
    source: str | None  # the folder it came from; None when built in memory
    is_demo: bool
    device: torch.device
    dtype: torch.dtype
    pipe: StableDiffusionImg2ImgPipeline  # holds the components and helpers
    scheduler_config: dict  # what every job's sampler is built from
    native_size: int
    previews: PreviewRenderer
    defaults: dict = field(default_factory=dict)  # the folder's recommended settings (model_defaults.py)
    family: str | None = None  # what a single-file checkpoint was detected as

    @property
    def latent_rgb(self) -> LatentRGB:
        return self.previews.latent_rgb


def pick_device(requested: str = "auto") -> torch.device:
    """`auto`, `cpu`, `mps`, `cuda` or `cuda:N` (the N-th GPU), checked against what torch sees."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(requested)
    except (RuntimeError, ValueError):
        raise ModelLoadError(f"--device {requested} is not a device: use auto, cpu, mps, cuda or cuda:N.") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ModelLoadError(f"--device {requested} was asked for, but torch sees no CUDA GPU "
                                 "(is a CUDA build of torch installed?).")
        if device.index is not None and device.index >= count:
            raise ModelLoadError(f"--device {requested} was asked for, but torch sees {count} CUDA GPU(s): "
                                 f"cuda:0 to cuda:{count - 1}.")
    elif device.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ModelLoadError("--device mps was asked for, but this torch build has no MPS support.")
    elif device.type != "cpu":
        raise ModelLoadError(f"--device {requested} is not supported: use auto, cpu, mps, cuda or cuda:N.")
    return device


def _check_folder(path: Path) -> dict:
    """The folder's model_index.json, when it is a pipeline this studio runs."""
    if not path.exists():
        raise ModelLoadError(f"Model folder {path} does not exist.")
    index = path / "model_index.json"
    if not index.exists():
        raise ModelLoadError(f"{path} has no model_index.json, so it is not a diffusers model folder (or a "
                             f"single {', '.join(CHECKPOINT_SUFFIXES)} checkpoint).")
    info = json.loads(index.read_text())
    pipeline = info.get("_class_name", "")
    if pipeline not in SUPPORTED_PIPELINES:
        raise ModelLoadError(
            f"{path} is a {pipeline or 'unknown'} model; this studio runs Stable Diffusion 1.x/2.x and SDXL "
            f"({', '.join(sorted(SUPPORTED_PIPELINES))})."
        )
    if not info.get("text_encoder") or info.get("text_encoder") == [None, None]:
        raise ModelLoadError(f"{path} has no first text encoder (an SDXL refiner?); it cannot run on its own.")
    return info


def _load_from_folder(path: Path, info: dict, dtype: torch.dtype, progress: Progress) -> dict:
    import diffusers
    import transformers

    wanted = [c for c in COMPONENTS if c[0] in info and info[c[0]] not in (None, [None, None])]
    components = {}
    for i, (name, library, class_name) in enumerate(wanted):
        progress(i / (len(wanted) + 1), f"loading {name.replace('_', ' ')}")
        module = diffusers if library == "diffusers" else transformers
        if name == "scheduler":
            components[name] = module.LMSDiscreteScheduler.from_config(read_scheduler_config(path))
        elif name.startswith("tokenizer"):
            components[name] = module.CLIPTokenizer.from_pretrained(path, subfolder=name)
        else:
            kwargs = {"torch_dtype": dtype}
            components[name] = getattr(module, class_name).from_pretrained(path, subfolder=name, **kwargs)
    return components


def read_scheduler_config(path: Path) -> dict:
    """The checkpoint's scheduler config as written (betas, spacing, prediction type). Every
    sampler is built from it, whichever scheduler class the checkpoint happened to ship."""
    from diffusers import LMSDiscreteScheduler

    path = Path(path)
    if not (path / "scheduler").is_dir():
        # Not a local model folder: diffusers would take the name for a hub id and stall on the
        # network before failing. Loading reports the missing folder properly.
        raise OSError(f"{path} has no scheduler/ folder")
    return dict(LMSDiscreteScheduler.load_config(path, subfolder="scheduler", local_files_only=True))


def load_model(
    model_path: str | Path | None = None,
    device: str = "auto",
    cache_dir: Path | None = None,
    progress: Progress | None = None,
    hints: Hints | None = None,
) -> LoadedModel:
    """Load `model_path` (a diffusers folder, or a single .safetensors/.ckpt checkpoint), or the
    embedded demo model when it is None. Every source ends in the same assembly, so the demo
    exercises what a real checkpoint does. `hints` say what a checkpoint's keys cannot (SD 2.x's
    prediction type, Turbo); files beside the checkpoint may say it too."""
    progress = progress or (lambda fraction, message: None)
    torch_device = pick_device(device)
    dtype = torch.float16 if torch_device.type == "cuda" else torch.float32
    path = model_folder(model_path)
    pipeline_options = {}
    try:
        if path.is_file():
            from .single_file import build_components

            checkpoint, family, defaults = _describe_file(path, hints or Hints())
            components = build_components(checkpoint, family, dtype, progress)
            scheduler_config = family.scheduler_config
            pipeline_options = family.configs.get("pipeline", {})
            label = family.label
        else:
            info = _check_folder(path)
            defaults = read_model_defaults(path)  # before the weights, so a bad file fails fast
            components = _load_from_folder(path, info, dtype, progress)
            scheduler_config = read_scheduler_config(path)
            if "force_zeros_for_empty_prompt" in info:
                pipeline_options["force_zeros_for_empty_prompt"] = info["force_zeros_for_empty_prompt"]
            label = None
    except (OSError, ValueError) as exc:  # CheckpointError is a ValueError
        raise ModelLoadError(f"Could not load the model in {path}: {exc}") from exc
    from .assemble import assemble_model

    model = assemble_model(
        components,
        scheduler_config,
        name=DEMO_MODEL_NAME if model_path is None else path.name,
        is_demo=model_path is None,
        source=path,
        device=torch_device,
        cache_dir=cache_dir,
        progress=progress,
        **pipeline_options,
    )
    model.defaults = defaults
    model.family = label
    return model


def _describe_file(path: Path, hints: Hints):
    """A checkpoint file opened, its family told and its recommended settings read (no weights)."""
    from .checkpoint_file import CheckpointFile
    from .families import detect_family
    from .model_defaults import read_checkpoint_defaults

    settings, said = read_checkpoint_defaults(path)
    hints = Hints(prediction_type=hints.prediction_type if hints.prediction_type != "auto"
                  else said.get("prediction_type", "auto"),
                  variant=hints.variant if hints.variant != "auto" else said.get("model_variant", "auto"))
    checkpoint = CheckpointFile(path)
    family = detect_family(checkpoint, hints)
    return checkpoint, family, {**family.defaults, **settings}


def _folder_native_size(path: Path) -> int | None:
    """A diffusers folder's native side: the UNet's sample size times the VAE's downsampling."""
    try:
        unet = json.loads((path / "unet" / "config.json").read_text())
        vae = json.loads((path / "vae" / "config.json").read_text())
        return int(unet["sample_size"]) * 2 ** (len(vae["block_out_channels"]) - 1)
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True)
class ModelSummary:
    """What is known of a model before its weights load: enough to plan steps and fill settings."""

    scheduler_config: dict
    defaults: dict
    family: str | None  # e.g. "Stable Diffusion XL"; None for a diffusers folder
    native_size: int | None = None  # the side it was trained at, from its configs


def summarize_model(model_path: str | Path | None, hints: Hints | None = None) -> ModelSummary:
    """Raises ModelLoadError when the model cannot be read; loading will say the same."""
    path = model_folder(model_path)
    try:
        if path.is_file():
            _checkpoint, family, defaults = _describe_file(path, hints or Hints())
            return ModelSummary(family.scheduler_config, defaults, family.label, family.native_size)
        return ModelSummary(read_scheduler_config(path), read_model_defaults(path), None, _folder_native_size(path))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(str(exc)) from exc
