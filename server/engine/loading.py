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

from ..previews import LatentRGB, PreviewRenderer
from .model_defaults import read_model_defaults

if TYPE_CHECKING:  # for the annotation only; assemble_model imports it where it is used
    from diffusers import StableDiffusionImg2ImgPipeline

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]  # (fraction 0..1, what is happening)

# Folder component -> diffusers/transformers class name, in load order (biggest last).
COMPONENTS = [
    ("scheduler", "diffusers", "LMSDiscreteScheduler"),
    ("tokenizer", "transformers", "CLIPTokenizer"),
    ("text_encoder", "transformers", "CLIPTextModel"),
    ("vae", "diffusers", "AutoencoderKL"),
    ("unet", "diffusers", "UNet2DConditionModel"),
]
SUPPORTED_PIPELINES = {"StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline", "StableDiffusionInpaintPipeline"}


# The embedded default: a small model this project trains and ships (server/demo_model/).
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

    @property
    def latent_rgb(self) -> LatentRGB:
        return self.previews.latent_rgb


def pick_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("--device cuda was asked for, but torch sees no CUDA GPU (is a CUDA build of torch installed?).")
    if requested == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ModelLoadError("--device mps was asked for, but this torch build has no MPS support.")
    return torch.device(requested)


def _check_folder(path: Path) -> None:
    if not path.exists():
        raise ModelLoadError(f"Model folder {path} does not exist.")
    if path.is_file():
        raise ModelLoadError(
            f"{path} is a single file. Point --model at a diffusers folder (with model_index.json); convert a "
            ".safetensors/.ckpt checkpoint once with diffusers' scripts/convert_original_stable_diffusion_to_diffusers.py."
        )
    index = path / "model_index.json"
    if not index.exists():
        raise ModelLoadError(f"{path} has no model_index.json, so it is not a diffusers model folder.")
    pipeline = json.loads(index.read_text()).get("_class_name", "")
    if pipeline not in SUPPORTED_PIPELINES:
        raise ModelLoadError(
            f"{path} is a {pipeline or 'unknown'} model; this studio runs Stable Diffusion 1.x/2.x "
            f"({', '.join(sorted(SUPPORTED_PIPELINES))})."
        )


def _load_from_folder(path: Path, dtype: torch.dtype, progress: Progress) -> dict:
    import diffusers
    import transformers

    components = {}
    for i, (name, library, class_name) in enumerate(COMPONENTS):
        progress(i / (len(COMPONENTS) + 1), f"loading {name}")
        module = diffusers if library == "diffusers" else transformers
        if name == "scheduler":
            components[name] = module.LMSDiscreteScheduler.from_config(read_scheduler_config(path))
        elif name == "tokenizer":
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
) -> LoadedModel:
    """Load `model_path` (a diffusers SD folder), or the embedded demo model when it is None.

    Both go through the same folder loader, so the demo exercises what a real checkpoint does.
    """
    progress = progress or (lambda fraction, message: None)
    torch_device = pick_device(device)
    dtype = torch.float16 if torch_device.type == "cuda" else torch.float32
    path = model_folder(model_path)
    _check_folder(path)
    try:
        defaults = read_model_defaults(path)  # before the weights, so a bad file fails fast
        components = _load_from_folder(path, dtype, progress)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"Could not load the model in {path}: {exc}") from exc
    from .assemble import assemble_model

    model = assemble_model(
        components,
        read_scheduler_config(path),
        name=DEMO_MODEL_NAME if model_path is None else path.name,
        is_demo=model_path is None,
        source=path,
        device=torch_device,
        cache_dir=cache_dir,
        progress=progress,
    )
    model.defaults = defaults
    return model
