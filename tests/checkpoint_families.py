"""Random-weight diffusers components for each single-file family (SD 1.x, SD 2.x, SDXL),
at the published size ("full") or scaled down in the same layout ("small"), and a cache for
checkpoint files built from them.

Full size uses the family JSON's configs exactly. Small keeps every rule the loader reads
shapes by (norm groups of 32, 64-wide attention heads given as `attention_head_dim` = heads for
SD 2.x / SDXL, 8 heads for SD 1.x, linear projections where the family has them, SDXL's
text_time embedding sized from the text encoders), so a shape-derived config reproduces it.

Weights: modules are constructed on the `meta` device, materialised with `to_empty`, and every
parameter is filled in place from a seeded generator with uniform values (norm weights 1 ± 0.035,
embeddings and biases ± 0.035, i.e. std 0.02; other weights ± 1/sqrt(fan_in), PyTorch's default
init), and CLIP's position_ids buffer is set to arange. Values are drawn in the requested dtype,
so a float16 build is deterministic but is not the float32 build rounded. This takes seconds
(see build_components for timings), where the classes' own init is much slower on two cores.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from tests import checkpoint_layouts as layouts

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / "server" / "engine" / "model_configs"
FAMILIES = layouts.FAMILIES
SIZES = ("full", "small")

# Bump when what build_components makes changes; cache names also hash this file, the layout
# module and the family JSON, so an edit to any of them never reuses a stale file.
CACHE_VERSION = "1"
CACHE_ENV = "IMG2IMG_TEST_CACHE"
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "img2img-studio-tests"

_UNIT = 0.02 * 3 ** 0.5  # uniform half-width for std 0.02
_COMPONENT_SEEDS = {"unet": 1, "vae": 2, "text_encoder": 3, "text_encoder_2": 4}


# ----------------------------------------------------------------------------------------
# configs


def family_config(family: str) -> dict:
    """The family JSON (a fresh copy)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")
    with open(CONFIG_DIR / f"{family}.json", encoding="utf-8") as fh:
        return json.load(fh)


def _variant(fam: dict, variant: str | None, part: str) -> dict:
    if variant is None:
        return {}
    variants = fam.get("variants", {})
    if variant not in variants:
        raise ValueError(f"unknown variant {variant!r}; expected one of {sorted(variants)}")
    return dict(variants[variant].get(part, {}))


def _small_text(base: dict, *, layers: int = 2, projection_dim: int = 64) -> dict:
    cfg = dict(base)
    cfg.update(hidden_size=64, intermediate_size=128, num_attention_heads=1, num_hidden_layers=layers,
               vocab_size=49408, max_position_embeddings=77, projection_dim=projection_dim)
    return cfg


def unet_config(family: str, size: str = "full", *, inpaint: bool = False, variant: str | None = None) -> dict:
    fam = family_config(family)
    cfg = copy.deepcopy(fam["unet"])
    if size == "small":
        te = text_encoder_configs(family, "small")
        if family == "sd1":
            cfg.update(block_out_channels=[32, 64], layers_per_block=1, attention_head_dim=8,
                       use_linear_projection=False, cross_attention_dim=te["text_encoder"]["hidden_size"],
                       down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
                       up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"])
        elif family == "sd2":
            block_out = [64, 128]
            cfg.update(block_out_channels=block_out, layers_per_block=1,
                       attention_head_dim=[c // 64 for c in block_out], use_linear_projection=True,
                       cross_attention_dim=te["text_encoder"]["hidden_size"],
                       down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
                       up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"])
        else:
            block_out = [64, 128]
            time_dim = 8
            te1, te2 = te["text_encoder"], te["text_encoder_2"]
            # layers_per_block 2 (as the published SDXL): the small families then cover both
            # 1 and 2 resnets per level, and SDXL's 3-entry up levels.
            cfg.update(block_out_channels=block_out, layers_per_block=2,
                       transformer_layers_per_block=[1, 2], attention_head_dim=[c // 64 for c in block_out],
                       use_linear_projection=True,
                       down_block_types=["DownBlock2D", "CrossAttnDownBlock2D"],
                       up_block_types=["CrossAttnUpBlock2D", "UpBlock2D"],
                       addition_embed_type="text_time", addition_time_embed_dim=time_dim,
                       cross_attention_dim=te1["hidden_size"] + te2["hidden_size"],
                       projection_class_embeddings_input_dim=te2["projection_dim"] + 6 * time_dim)
    elif size != "full":
        raise ValueError(f"size is 'full' or 'small', not {size!r}")
    cfg.update(_variant(fam, variant, "unet"))
    if inpaint:
        cfg["in_channels"] = 9
    return cfg


def vae_config(family: str, size: str = "full", *, variant: str | None = None) -> dict:
    fam = family_config(family)
    cfg = copy.deepcopy(fam["vae"])
    if size == "small":
        # Three levels (x4 downsampling): with two, the mid-block attention over 128x128 latents
        # makes every preview fit at load take seconds.
        cfg.update(block_out_channels=[32, 64, 64], layers_per_block=1, latent_channels=4, norm_num_groups=32,
                   down_block_types=["DownEncoderBlock2D"] * 3, up_block_types=["UpDecoderBlock2D"] * 3)
    elif size != "full":
        raise ValueError(f"size is 'full' or 'small', not {size!r}")
    cfg.update(_variant(fam, variant, "vae"))
    return cfg


def text_encoder_configs(family: str, size: str = "full") -> dict[str, dict]:
    """{"text_encoder": {...}} (+ "text_encoder_2" for SDXL): CLIPTextConfig keyword dicts."""
    fam = family_config(family)
    names = ["text_encoder"] + (["text_encoder_2"] if "text_encoder_2" in fam else [])
    out = {}
    for name in names:
        cfg = copy.deepcopy(fam[name])
        if size == "small":
            # SD 2.x: 2 layers in diffusers, so the file holds 3 resblocks (see checkpoint_layouts)
            cfg = _small_text(cfg)
        elif size != "full":
            raise ValueError(f"size is 'full' or 'small', not {size!r}")
        out[name] = cfg
    return out


# ----------------------------------------------------------------------------------------
# building


def _fill(module: nn.Module, generator: torch.Generator) -> None:
    """Deterministic values for every parameter, in module order; arange for position_ids."""
    with torch.no_grad():
        for mod in module.modules():
            is_norm = isinstance(mod, (nn.GroupNorm, nn.LayerNorm))
            is_embedding = isinstance(mod, nn.Embedding)
            for name, param in mod.named_parameters(recurse=False):
                # uniform, in place, in the parameter's own dtype: no temporaries (SDXL holds 3.5G
                # values) and twice as fast as normal_; half-width b gives std b / sqrt(3)
                if is_norm and name == "weight":
                    param.uniform_(1.0 - _UNIT, 1.0 + _UNIT, generator=generator)
                elif is_embedding or param.ndim < 2:
                    param.uniform_(-_UNIT, _UNIT, generator=generator)
                else:
                    bound = param[0].numel() ** -0.5
                    param.uniform_(-bound, bound, generator=generator)
            for name, buf in mod.named_buffers(recurse=False):
                if name == "position_ids":
                    buf.copy_(torch.arange(buf.shape[-1]).expand_as(buf))
                else:
                    raise RuntimeError(f"no fill rule for buffer {name!r} of {type(mod).__name__}")


def _materialise(make: Callable[[], nn.Module], *, device: str, dtype: torch.dtype, seed: int, which: str) -> nn.Module:
    with torch.device("meta"):
        module = make()
    if dtype != torch.float32:
        # nn.Module.to: diffusers' ModelMixin.to warns about fp32-kept modules these classes lack
        nn.Module.to(module, dtype=dtype)
    if device != "meta":
        module = module.to_empty(device=device)
        generator = torch.Generator().manual_seed(seed * 1000 + _COMPONENT_SEEDS[which])
        _fill(module, generator)
    return module.eval().requires_grad_(False)


def build_components(family: str, size: str = "full", seed: int = 0, dtype: torch.dtype = torch.float32,
                     inpaint: bool = False, *, variant: str | None = None, device: str = "cpu") -> dict:
    """Random-weight diffusers components: {"unet", "vae", "text_encoder"} (+ "text_encoder_2"
    for SDXL). device="meta" gives shapes only (no values), for key/shape checks at full size."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    common = dict(device=device, dtype=dtype, seed=seed)
    ucfg = unet_config(family, size, inpaint=inpaint, variant=variant)
    vcfg = vae_config(family, size, variant=variant)
    out = {
        "unet": _materialise(lambda: UNet2DConditionModel(**ucfg), which="unet", **common),
        "vae": _materialise(lambda: AutoencoderKL(**vcfg), which="vae", **common),
    }
    for name, cfg in text_encoder_configs(family, size).items():
        cls = CLIPTextModelWithProjection if name == "text_encoder_2" else CLIPTextModel
        config = CLIPTextConfig(**cfg)
        out[name] = _materialise(lambda: cls(config), which=name, **common)
    return out


def build_state_dict(family: str, size: str = "full", seed: int = 0, dtype: torch.dtype = torch.float32,
                     inpaint: bool = False, **layout_kwargs) -> dict[str, torch.Tensor]:
    """build_components -> checkpoint_layouts.original_state_dict in one call."""
    parts = build_components(family, size, seed=seed, dtype=dtype, inpaint=inpaint)
    return layouts.original_state_dict(family, parts["unet"], parts["vae"], parts["text_encoder"],
                                       parts.get("text_encoder_2"), seed=seed, **layout_kwargs)


# ----------------------------------------------------------------------------------------
# cache


def cache_dir() -> Path:
    """$IMG2IMG_TEST_CACHE, else ~/.cache/img2img-studio-tests."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else DEFAULT_CACHE_DIR


def _sources_digest(family: str) -> str:
    h = hashlib.sha256()
    for path in (Path(__file__), Path(layouts.__file__), CONFIG_DIR / f"{family}.json"):
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def checkpoint_cache_name(family: str, size: str = "small", dtype: torch.dtype = torch.float32, *,
                          inpaint: bool = False, seed: int = 0, fmt: str = "safetensors") -> str:
    dtype_name = str(dtype).removeprefix("torch.")
    tag = "-inpaint" if inpaint else ""
    return (f"v{CACHE_VERSION}.{layouts.LAYOUT_VERSION}-{_sources_digest(family)}-"
            f"{family}{tag}-{size}-{dtype_name}-seed{seed}.{fmt}")


def cached_file(name: str, build: Callable[[Path], None], directory: Path | None = None) -> Path:
    """`directory/name`, built by `build(tmp_path)` the first time. The build writes to a
    temporary name in the same folder that is renamed into place, so a failed or concurrent
    build never leaves a half-written file under the final name."""
    folder = Path(directory) if directory is not None else cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if path.exists():
        return path
    tmp = folder / f".{name}.{os.getpid()}.building"
    try:
        build(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def cached_checkpoint(family: str, size: str = "small", dtype: torch.dtype = torch.float32, *,
                      inpaint: bool = False, seed: int = 0, fmt: str = "safetensors",
                      directory: Path | None = None, metadata: dict[str, str] | None = None) -> Path:
    """Path to a single-file checkpoint of this family built from build_components, written
    once and reused while the builders, the layout and the family JSON are unchanged.
    fmt: "safetensors" or "ckpt"."""
    if fmt not in ("safetensors", "ckpt"):
        raise ValueError(f"fmt is 'safetensors' or 'ckpt', not {fmt!r}")
    name = checkpoint_cache_name(family, size, dtype, inpaint=inpaint, seed=seed, fmt=fmt)
    if metadata:
        digest = hashlib.sha256(json.dumps(metadata, sort_keys=True).encode()).hexdigest()[:8]
        name = name.removesuffix(f".{fmt}") + f"-meta{digest}.{fmt}"

    def build(tmp: Path) -> None:
        # Builds from older sources are never reused: drop them rather than pile up gigabytes.
        stale_tail = name.split("-", 2)[2]
        for old in tmp.parent.glob(f"v*-{stale_tail}"):
            if old.name != name:
                old.unlink(missing_ok=True)
        state = build_state_dict(family, size, seed=seed, dtype=dtype, inpaint=inpaint)
        if fmt == "safetensors":
            layouts.save_checkpoint(state, tmp, metadata=metadata)
        else:
            layouts.save_ckpt(state, tmp)

    return cached_file(name, build, directory)
