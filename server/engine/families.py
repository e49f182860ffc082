"""Which model a single-file checkpoint holds, told from its keys and shapes (never its file name).

The rules follow diffusers' `infer_diffusers_model_type` and InvokeAI's probe:
- the text encoder's keys say the family: CLIP ViT-L under `cond_stage_model.transformer.` is SD 1.x,
  OpenCLIP under `cond_stage_model.model.` is SD 2.x, and `conditioner.embedders.1.model.` (OpenCLIP
  bigG beside CLIP-L) is SDXL base; OpenCLIP alone under `conditioner.embedders.0.model.` is the
  SDXL refiner, which cannot run on its own;
- the UNet's first convolution says inpainting (9 input channels);
- SD 2.x comes as 512 epsilon and 768 v-prediction models with the same keys. An explicit choice
  wins (`--prediction-type`, the `.yaml` beside the file that A1111 reads, the header's
  `modelspec.prediction_type`), then the 512 base's training step (875000, as diffusers checks),
  then ComfyUI's test: the spread of one norm bias is wide only in v models;
- Turbo models have the same keys as their base: the header's `modelspec.*` may say so, and
  `studio_defaults.json` beside the file or `--model-variant turbo` says it otherwise.
Each family's configs are the published ones, shipped as JSON in `model_configs/`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .checkpoint_file import CheckpointFile, CheckpointError

CONFIG_DIR = Path(__file__).resolve().parent / "model_configs"
UNET = "model.diffusion_model."
PREDICTION_TYPES = ("auto", "epsilon", "v_prediction")
MODEL_VARIANTS = ("auto", "base", "turbo")

# What a family's Turbo model asks for: its own sampler, CFG off, a couple of steps, and at
# least one of them taken whatever the strength (2 steps at strength 0.3 would take none).
TURBO_DEFAULTS = {
    "sd2": {"sampler": "euler", "steps": 2, "cfg_scale": 0.0, "min_taken_steps": 1},
    "sdxl": {"sampler": "euler_a", "steps": 2, "cfg_scale": 0.0, "min_taken_steps": 1},
}
FAMILY_DEFAULTS = {"sdxl": {"sampler": "euler"}}  # SDXL's published scheduler is Euler


@dataclass(frozen=True)
class Family:
    key: str  # "sd1" | "sd2" | "sdxl": the model_configs/ file
    label: str  # shown to people, e.g. "Stable Diffusion 2.x (768, v-prediction)"
    inpainting: bool
    prediction_type: str
    turbo: bool
    configs: dict = field(repr=False)  # component -> config dict, the variant applied
    defaults: dict = field(default_factory=dict)  # recommended request settings

    @property
    def native_size(self) -> int:
        return self.configs["unet"]["sample_size"] * 8

    @property
    def scheduler_config(self) -> dict:
        return dict(self.configs["scheduler"])


@dataclass(frozen=True)
class Hints:
    """What a person (flags, files beside the checkpoint) says that the keys cannot."""

    prediction_type: str = "auto"
    variant: str = "auto"


def detect_family(checkpoint: CheckpointFile, hints: Hints = Hints()) -> Family:
    """The family, or CheckpointError naming what was found instead."""
    if f"{UNET}input_blocks.0.0.weight" not in checkpoint:
        raise CheckpointError(f"{checkpoint.path.name} is not a Stable Diffusion model: {_what_else(checkpoint)}.")
    in_channels = checkpoint.shape(f"{UNET}input_blocks.0.0.weight")[1]
    if in_channels not in (4, 9):
        raise CheckpointError(
            f"{checkpoint.path.name} has a UNet with {in_channels} input channels (4 is a normal model, 9 an "
            "inpainting one; 8 is InstructPix2Pix and 5 a depth model, which this studio does not run).")
    inpainting = in_channels == 9

    if checkpoint.count("conditioner.embedders.1.model.") and checkpoint.count("conditioner.embedders.0.transformer."):
        key = "sdxl"
    elif checkpoint.count("conditioner.embedders.0.model."):
        raise CheckpointError(f"{checkpoint.path.name} is an SDXL refiner: it only finishes images an SDXL base "
                              "model made, and cannot run on its own. Load an SDXL base model.")
    elif checkpoint.count("cond_stage_model.model."):
        key = "sd2"
    elif checkpoint.count("cond_stage_model.transformer."):
        key = "sd1"
    else:
        raise CheckpointError(f"{checkpoint.path.name} has a Stable Diffusion UNet but no text encoder this studio "
                              "knows (a UNet-only file?); load the full checkpoint.")

    base = json.loads((CONFIG_DIR / f"{key}.json").read_text())
    variants = base.pop("variants", {})
    base.pop("_comment", None)
    label = base.pop("label")
    prediction = _prediction_type(checkpoint, key, inpainting, hints)
    turbo = _is_turbo(checkpoint, hints)
    chosen = []
    if key == "sd2" and prediction == "v_prediction":
        chosen.append("v")
    if turbo:
        if key not in TURBO_DEFAULTS:
            raise CheckpointError(f"{checkpoint.path.name} was marked as a Turbo model, but it is {label}; "
                                  "Turbo models are SD 2.1 or SDXL.")
        chosen.append("turbo")
    configs = base
    for name in chosen:
        configs = _merged(configs, variants[name])
    configs["scheduler"]["prediction_type"] = prediction

    details = []
    if key == "sd2":
        details.append(f"{configs['unet']['sample_size'] * 8}, {'v-prediction' if prediction != 'epsilon' else 'epsilon'}")
    label = label + (" Turbo" if turbo else "") + (" inpainting" if inpainting else "")
    if details:
        label += f" ({', '.join(details)})"
    defaults = dict(FAMILY_DEFAULTS.get(key, {}))
    if turbo:
        defaults.update(TURBO_DEFAULTS[key])
    return Family(key, label, inpainting, prediction, turbo, configs, defaults)


def _prediction_type(checkpoint: CheckpointFile, key: str, inpainting: bool, hints: Hints) -> str:
    if hints.prediction_type != "auto":
        return hints.prediction_type
    said = _yaml_parameterization(checkpoint.path) or checkpoint.metadata.get("modelspec.prediction_type", "")
    said = said.strip().lower()
    if said in ("v", "v_prediction", "v-prediction"):
        return "v_prediction"
    if said in ("eps", "epsilon"):
        return "epsilon"
    if key != "sd2" or inpainting:  # SD 2.x inpainting models are epsilon, like every other family
        return "epsilon"
    if checkpoint.global_step == 875000:  # the 512 base's last training step
        return "epsilon"
    architecture = checkpoint.metadata.get("modelspec.architecture", "").lower()
    if architecture.endswith("-v") or "768-v" in architecture:
        return "v_prediction"
    if "512" in architecture:
        return "epsilon"
    probe = f"{UNET}output_blocks.11.1.transformer_blocks.0.norm1.bias"
    if probe in checkpoint:
        return "v_prediction" if float(checkpoint.tensor(probe).float().std(unbiased=False)) > 0.09 else "epsilon"
    return "epsilon"


def _yaml_parameterization(path: Path) -> str | None:
    """`parameterization` in the original config A1111 reads beside a checkpoint (same name, .yaml)."""
    yaml_path = path.with_suffix(".yaml")
    if not yaml_path.is_file():
        return None
    import yaml

    try:
        config = yaml.safe_load(yaml_path.read_text(encoding="utf-8"))
        return str(config["model"]["params"].get("parameterization", "eps"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{yaml_path.name} beside the checkpoint is not an original model config ({exc}).") from None


def _is_turbo(checkpoint: CheckpointFile, hints: Hints) -> bool:
    if hints.variant != "auto":
        return hints.variant == "turbo"
    said = " ".join(checkpoint.metadata.get(k, "") for k in ("modelspec.architecture", "modelspec.title"))
    return "turbo" in said.lower()


def _merged(base: dict, override: dict) -> dict:
    out = json.loads(json.dumps(base))
    for component, values in override.items():
        out.setdefault(component, {}).update(values)
    return out


def _what_else(checkpoint: CheckpointFile) -> str:
    """A person-readable name for a checkpoint we do not run."""
    keys = checkpoint.keys()
    if not keys:
        return "it holds no tensors"
    if any(k.startswith(("lora_unet_", "lora_te", "lora_te1_", "lora_te2_")) or ".lora_down." in k or ".lora.down." in k
           or "lora_A" in k or ".lora_up." in k for k in keys):
        return f"it is a LoRA ({len(keys)} tensors), which adds to a model rather than being one"
    if any(".joint_blocks." in k or k.startswith("joint_blocks.") for k in keys):
        return "it is a Stable Diffusion 3 model"
    if any(".double_blocks." in k or k.startswith("double_blocks.") for k in keys):
        return "it is a Flux model"
    if any(k.startswith(("down_blocks.0.0.channelwise", "clf.", "effnet_mapper")) for k in keys):
        return "it is a Stable Cascade model"
    if all(k.startswith(("encoder.", "decoder.", "quant_conv", "post_quant_conv", "first_stage_model.")) for k in keys):
        return "it is a VAE alone"
    try:
        from diffusers.loaders.single_file_utils import infer_diffusers_model_type

        kind = infer_diffusers_model_type({k: _ShapeOnly(checkpoint.shape(k)) for k in keys})
        if kind and not kind.startswith("v1"):
            return f"diffusers takes it for a {kind!r} model"
    except Exception:  # naming the unknown is best effort; the refusal stands either way
        pass
    return f"none of its {len(keys)} keys is a Stable Diffusion UNet's (the first is {keys[0]!r})"


class _ShapeOnly:
    """Lets diffusers' detector look at shapes without loading tensors."""

    def __init__(self, shape):
        self.shape = shape
