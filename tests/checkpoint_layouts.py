"""Test oracle: diffusers-format components -> the ORIGINAL single-file checkpoint layout.

Model sites ship Stable Diffusion as one `.safetensors`/`.ckpt` in the layout of the code that
trained it: CompVis LDM for SD 1.x / 2.x, Stability's SGM for SDXL. The studio's loader converts
such files with diffusers' forward functions; these helpers do the inverse, written from the
module structure of the diffusers components (not from hard-coded SD sizes), so scaled-down
models in the same layout get the same treatment as the published ones.

Layout, per component (prefix + key):

* UNet `model.diffusion_model.`: `input_blocks.0.0` = conv_in; then per down level its resnets
  (`input_blocks.N.0`, renamed in_layers/emb_layers/out_layers/skip_connection) with their
  attention (`input_blocks.N.1`, inner names unchanged) and, but for the last level, the
  downsampler (`input_blocks.N.0.op`); `middle_block.{0,1,2}` = resnet, attention, resnet;
  per up level its resnets/attentions (`output_blocks.N.0` / `.1`) and the upsampler on the
  level's last entry (`output_blocks.N.1.conv`, or `.2.conv` after an attention); `time_embed.{0,2}`,
  `label_emb.0.{0,2}` (SDXL's add_embedding), `out.{0,2}`. Attention proj_in/proj_out keep
  their diffusers shapes (linear with use_linear_projection, 1x1 conv otherwise).
* VAE `first_stage_model.`: `encoder.down.I.block.J` / `.downsample`, `decoder.up.I.block.J` /
  `.upsample` with the decoder levels numbered in reverse, `mid.block_1/attn_1/block_2`,
  `norm_out`, `nin_shortcut`; the mid attention's q/k/v/proj_out are 1x1 conv weights.
* CLIP-L (HF layout kept): `cond_stage_model.transformer.text_model.` (SD 1.x) or
  `conditioner.embedders.0.transformer.text_model.` (SDXL).
* OpenCLIP: `cond_stage_model.model.` (SD 2.x) or `conditioner.embedders.1.model.` (SDXL):
  `token_embedding.weight`, `positional_embedding`, `transformer.resblocks.N.{ln_1, ln_2,
  attn.in_proj_weight/bias (q;k;v stacked), attn.out_proj, mlp.c_fc, mlp.c_proj}`, `ln_final`,
  `text_projection` ([hidden, proj], the transpose of a Linear weight), `logit_scale`.
  SD 2.x conditions on the penultimate layer, so diffusers keeps one layer fewer than the file
  holds; the file's last resblock and its text_projection are written with random values.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Mapping

import torch

# Bump when the layout written here changes: cached checkpoint files are keyed by it.
LAYOUT_VERSION = "1"

FAMILIES = ("sd1", "sd2", "sdxl")

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_PREFIXES = {
    # family: (text_encoder prefix, text_encoder_2 prefix)
    "sd1": ("cond_stage_model.transformer.", None),
    "sd2": ("cond_stage_model.model.", None),
    "sdxl": ("conditioner.embedders.0.transformer.", "conditioner.embedders.1.model."),
}
OPEN_CLIP_LOGIT_SCALE = math.log(100.0)  # the trained value in the published OpenCLIP models

_UNET_RESNET_NAMES = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_UNET_TOP_LEVEL = {
    "conv_in.": "input_blocks.0.0.",
    "time_embedding.linear_1.": "time_embed.0.",
    "time_embedding.linear_2.": "time_embed.2.",
    "add_embedding.linear_1.": "label_emb.0.0.",
    "add_embedding.linear_2.": "label_emb.0.2.",
    "class_embedding.linear_1.": "label_emb.0.0.",
    "class_embedding.linear_2.": "label_emb.0.2.",
    "conv_norm_out.": "out.0.",
    "conv_out.": "out.2.",
}
_VAE_RESNET_NAMES = {"conv_shortcut": "nin_shortcut"}
_VAE_ATTENTION_NAMES = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
_VAE_CONV_ATTENTION = ("q", "k", "v", "proj_out")
_OPEN_CLIP_LAYER_NAMES = {
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
    "self_attn.out_proj": "attn.out_proj",
}


# ----------------------------------------------------------------------------------------
# generic prefix renaming


def _rename_inner(rest: str, names: Mapping[str, str]) -> str:
    """`rest` is what follows a block prefix ("norm1.weight", "to_out.0.bias"); rename its head."""
    for old, new in names.items():
        if rest.startswith(old + "."):
            return new + rest[len(old):]
    return rest


def _apply_prefix_map(state: Mapping[str, torch.Tensor], prefix_map: list[tuple[str, str, Mapping[str, str]]],
                      what: str) -> dict[str, torch.Tensor]:
    """Rename every key by its longest matching diffusers prefix; an unmapped key is an error
    (the oracle must account for every weight the component has)."""
    ordered = sorted(prefix_map, key=lambda item: len(item[0]), reverse=True)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for old, new, inner in ordered:
            if key.startswith(old):
                new_key = new + _rename_inner(key[len(old):], inner)
                break
        else:
            raise KeyError(f"{what}: no original-layout name for diffusers key {key!r}")
        if new_key in out:
            raise KeyError(f"{what}: two diffusers keys map to {new_key!r}")
        out[new_key] = value
    return out


# ----------------------------------------------------------------------------------------
# UNet


def unet_prefix_map(unet) -> list[tuple[str, str, Mapping[str, str]]]:
    """(diffusers prefix, LDM prefix, inner renames) for every block of `unet`, read from the
    module itself: any number of levels, resnets per level and transformer depth."""
    pm: list[tuple[str, str, Mapping[str, str]]] = [(k, v, {}) for k, v in _UNET_TOP_LEVEL.items()]

    n = 1  # input_blocks.0 is conv_in
    for i, block in enumerate(unet.down_blocks):
        attentions = getattr(block, "attentions", None)
        for j in range(len(block.resnets)):
            pm.append((f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{n}.0.", _UNET_RESNET_NAMES))
            if attentions is not None:
                pm.append((f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{n}.1.", {}))
            n += 1
        if block.downsamplers is not None:
            pm.append((f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{n}.0.op.", {}))
            n += 1

    mid = unet.mid_block
    if mid is not None:  # LDM interleaves: resnet, attention, resnet (, attention, resnet ...)
        for k in range(len(mid.resnets)):
            pm.append((f"mid_block.resnets.{k}.", f"middle_block.{2 * k}.", _UNET_RESNET_NAMES))
        for k in range(len(getattr(mid, "attentions", None) or [])):
            pm.append((f"mid_block.attentions.{k}.", f"middle_block.{2 * k + 1}.", {}))

    n = 0
    for i, block in enumerate(unet.up_blocks):
        attentions = getattr(block, "attentions", None)
        count = len(block.resnets)
        for j in range(count):
            pm.append((f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{n}.0.", _UNET_RESNET_NAMES))
            if attentions is not None:
                pm.append((f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{n}.1.", {}))
            if j == count - 1 and block.upsamplers is not None:
                slot = 2 if attentions is not None else 1
                pm.append((f"up_blocks.{i}.upsamplers.0.", f"output_blocks.{n}.{slot}.", {}))
            n += 1
    return pm


def unet_to_original(unet, prefix: str = UNET_PREFIX) -> dict[str, torch.Tensor]:
    state = _apply_prefix_map(unet.state_dict(), unet_prefix_map(unet), "unet")
    return {prefix + k: v for k, v in state.items()}


# ----------------------------------------------------------------------------------------
# VAE


def vae_prefix_map(vae) -> list[tuple[str, str, Mapping[str, str]]]:
    pm: list[tuple[str, str, Mapping[str, str]]] = []
    for side in ("encoder", "decoder"):
        pm += [(f"{side}.conv_in.", f"{side}.conv_in.", {}),
               (f"{side}.conv_out.", f"{side}.conv_out.", {}),
               (f"{side}.conv_norm_out.", f"{side}.norm_out.", {})]
        mid = getattr(vae, side).mid_block
        for k in range(len(mid.resnets)):
            pm.append((f"{side}.mid_block.resnets.{k}.", f"{side}.mid.block_{k + 1}.", _VAE_RESNET_NAMES))
        for k in range(len(mid.attentions or [])):
            pm.append((f"{side}.mid_block.attentions.{k}.", f"{side}.mid.attn_{k + 1}.", _VAE_ATTENTION_NAMES))

    for i, block in enumerate(vae.encoder.down_blocks):
        for j in range(len(block.resnets)):
            pm.append((f"encoder.down_blocks.{i}.resnets.{j}.", f"encoder.down.{i}.block.{j}.", _VAE_RESNET_NAMES))
        if block.downsamplers is not None:
            pm.append((f"encoder.down_blocks.{i}.downsamplers.0.", f"encoder.down.{i}.downsample.", {}))

    levels = len(vae.decoder.up_blocks)
    for i, block in enumerate(vae.decoder.up_blocks):
        ldm = levels - 1 - i  # LDM numbers the decoder levels from the latent side's opposite end
        for j in range(len(block.resnets)):
            pm.append((f"decoder.up_blocks.{i}.resnets.{j}.", f"decoder.up.{ldm}.block.{j}.", _VAE_RESNET_NAMES))
        if block.upsamplers is not None:
            pm.append((f"decoder.up_blocks.{i}.upsamplers.0.", f"decoder.up.{ldm}.upsample.", {}))

    pm += [("quant_conv.", "quant_conv.", {}), ("post_quant_conv.", "post_quant_conv.", {})]
    return pm


def vae_to_original(vae, prefix: str = VAE_PREFIX) -> dict[str, torch.Tensor]:
    state = _apply_prefix_map(vae.state_dict(), vae_prefix_map(vae), "vae")
    for key, value in state.items():
        parts = key.split(".")
        # {encoder,decoder}.mid.attn_1.{q,k,v,proj_out}.weight: Linear in diffusers, 1x1 conv in LDM
        if ".mid.attn_" in key and parts[-1] == "weight" and parts[-2] in _VAE_CONV_ATTENTION and value.ndim == 2:
            state[key] = value.reshape(*value.shape, 1, 1)
    return {prefix + k: v for k, v in state.items()}


# ----------------------------------------------------------------------------------------
# text encoders


def _text_state(text_encoder) -> dict[str, torch.Tensor]:
    """The text encoder's state dict with HF's `text_model.` wrapper names, whatever the
    transformers version (5.x flattened CLIPTextModel; CLIPTextModelWithProjection still wraps)."""
    state = text_encoder.state_dict()
    if hasattr(text_encoder, "text_model"):
        return dict(state)
    return {("text_model." + k): v for k, v in state.items()}


def clip_to_original(text_encoder, prefix: str, position_ids: bool = False) -> dict[str, torch.Tensor]:
    """CLIP-L keeps the HF names in the original files, under `prefix` + `text_model.`."""
    state = _text_state(text_encoder)
    state = {k: v for k, v in state.items() if not k.endswith("position_ids")}
    if position_ids:
        # Real SD 1.x / SDXL files carry this buffer (int64 in most, float in some);
        # diffusers' convert_ldm_clip_checkpoint passes it through as an unexpected key.
        positions = text_encoder.config.max_position_embeddings
        state["text_model.embeddings.position_ids"] = torch.arange(positions, dtype=torch.int64)[None]
    return {prefix + k: v for k, v in state.items()}


def _open_clip_layer(layer_state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """One HF CLIP encoder layer (keys relative to the layer) -> one OpenCLIP resblock."""
    out: dict[str, torch.Tensor] = {}
    for kind in ("weight", "bias"):
        out[f"attn.in_proj_{kind}"] = torch.cat([layer_state[f"self_attn.{p}_proj.{kind}"] for p in "qkv"], dim=0)
    for key, value in layer_state.items():
        if key.startswith(("self_attn.q_proj.", "self_attn.k_proj.", "self_attn.v_proj.")):
            continue
        new = _rename_inner(key, _OPEN_CLIP_LAYER_NAMES)
        if new == key:
            raise KeyError(f"open_clip: no original-layout name for layer key {key!r}")
        out[new] = value
    return out


def open_clip_to_original(text_encoder, prefix: str, extra_layers: int = 0, seed: int = 0) -> dict[str, torch.Tensor]:
    """HF CLIP text model -> OpenCLIP layout under `prefix`.

    `extra_layers` random resblocks are appended after the model's own (SD 2.x files hold the
    last layer diffusers drops). text_projection is the transpose of diffusers'
    `text_projection.weight` where the model has one, else a random [hidden, hidden] matrix as the
    ViT-H text tower of SD 2.x has. logit_scale is written as real files hold it."""
    state = _text_state(text_encoder)
    config = text_encoder.config
    layers = config.num_hidden_layers
    out: dict[str, torch.Tensor] = {}
    consumed: set[str] = set()

    simple = {
        "text_model.embeddings.token_embedding.weight": "token_embedding.weight",
        "text_model.embeddings.position_embedding.weight": "positional_embedding",
        "text_model.final_layer_norm.weight": "ln_final.weight",
        "text_model.final_layer_norm.bias": "ln_final.bias",
    }
    for hf, oc in simple.items():
        out[oc] = state[hf]
        consumed.add(hf)

    for n in range(layers):
        lp = f"text_model.encoder.layers.{n}."
        layer_state = {k[len(lp):]: v for k, v in state.items() if k.startswith(lp)}
        consumed.update(lp + k for k in layer_state)
        for k, v in _open_clip_layer(layer_state).items():
            out[f"transformer.resblocks.{n}.{k}"] = v

    reference = state["text_model.final_layer_norm.weight"]
    dtype = reference.dtype
    if extra_layers:
        template = {k[len("text_model.encoder.layers.0."):]: v for k, v in state.items()
                    if k.startswith("text_model.encoder.layers.0.")}
        generator = torch.Generator().manual_seed(10_007 + seed)
        for e in range(extra_layers):
            fake = {k: _random_like(k, v, generator) for k, v in sorted(template.items())}
            for k, v in _open_clip_layer(fake).items():
                out[f"transformer.resblocks.{layers + e}.{k}"] = v

    if "text_projection.weight" in state:
        out["text_projection"] = state["text_projection.weight"].T.contiguous()
        consumed.add("text_projection.weight")
    else:
        hidden = config.hidden_size
        generator = torch.Generator().manual_seed(20_011 + seed)
        out["text_projection"] = (torch.randn(hidden, hidden, generator=generator) * hidden ** -0.5).to(dtype)
    out["logit_scale"] = torch.tensor(OPEN_CLIP_LOGIT_SCALE, dtype=dtype)

    left = set(state) - consumed - {k for k in state if k.endswith("position_ids")}
    if left:
        raise KeyError(f"open_clip: no original-layout name for {sorted(left)}")
    return {prefix + k: v for k, v in out.items()}


def _random_like(name: str, like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    if like.device.type == "meta":
        return torch.empty_like(like)
    if name.startswith("layer_norm") and name.endswith(".weight"):
        value = 1 + 0.02 * torch.randn(like.shape, generator=generator)
    elif like.ndim >= 2:
        value = torch.randn(like.shape, generator=generator) * (3 * like[0].numel()) ** -0.5
    else:
        value = 0.02 * torch.randn(like.shape, generator=generator)
    return value.to(like.dtype)


# ----------------------------------------------------------------------------------------
# extras real files hold


def ldm_schedule_buffers(num_train_timesteps: int = 1000, beta_start: float = 0.00085,
                         beta_end: float = 0.012) -> dict[str, torch.Tensor]:
    """The DDPM buffers CompVis' LatentDiffusion registers and saves (float32, [1000] each)."""
    betas = torch.linspace(beta_start ** 0.5, beta_end ** 0.5, num_train_timesteps, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    prev = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]])
    posterior_variance = betas * (1 - prev) / (1 - alphas_cumprod)
    buffers = {
        "betas": betas,
        "alphas_cumprod": alphas_cumprod,
        "alphas_cumprod_prev": prev,
        "sqrt_alphas_cumprod": alphas_cumprod.sqrt(),
        "sqrt_one_minus_alphas_cumprod": (1 - alphas_cumprod).sqrt(),
        "log_one_minus_alphas_cumprod": (1 - alphas_cumprod).log(),
        "sqrt_recip_alphas_cumprod": (1 / alphas_cumprod).sqrt(),
        "sqrt_recipm1_alphas_cumprod": (1 / alphas_cumprod - 1).sqrt(),
        "posterior_variance": posterior_variance,
        "posterior_log_variance_clipped": posterior_variance.clamp(min=1e-20).log(),
        "posterior_mean_coef1": betas * prev.sqrt() / (1 - alphas_cumprod),
        "posterior_mean_coef2": (1 - prev) * (1 - betas).sqrt() / (1 - alphas_cumprod),
    }
    return {k: v.to(torch.float32) for k, v in buffers.items()}


def extra_keys(family: str) -> dict[str, torch.Tensor]:
    """Keys outside every component prefix that real files carry and a loader must ignore.

    LDM files (SD 1.x / 2.x): the 12 DDPM schedule buffers plus `model_ema.decay` /
    `model_ema.num_updates` (pruned "emaonly" files keep those two counters, full training
    files also hold `model_ema.<flattened unet key>` copies of every UNet weight).
    SGM files (SDXL): the base release holds no schedule buffers; the turbo releases carry
    `denoiser.sigmas`, which is written here as the SDXL stand-in."""
    if family == "sdxl":
        acp = ldm_schedule_buffers()["alphas_cumprod"]
        return {"denoiser.sigmas": ((1 - acp) / acp).sqrt()}
    extras = ldm_schedule_buffers()
    extras["model_ema.decay"] = torch.tensor(0.9999, dtype=torch.float32)
    extras["model_ema.num_updates"] = torch.tensor(0, dtype=torch.int32)
    return extras


# ----------------------------------------------------------------------------------------
# the whole file


def original_state_dict(family: str, unet, vae, text_encoder, text_encoder_2=None, *, extras: bool = True,
                        position_ids: bool = False, seed: int = 0) -> dict[str, torch.Tensor]:
    """The single-file state dict a model site would ship for these diffusers components.

    family: "sd1", "sd2" or "sdxl". extras: add the non-weight keys real files carry
    (see extra_keys). position_ids: also write CLIP-L's `embeddings.position_ids` buffer as most
    real SD 1.x / SDXL files do. seed: for the SD 2.x file's random last resblock/text_projection."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")
    if (family == "sdxl") != (text_encoder_2 is not None):
        raise ValueError("text_encoder_2 is given for SDXL, and only for SDXL")
    state: dict[str, torch.Tensor] = {}
    state.update(unet_to_original(unet))
    state.update(vae_to_original(vae))
    te_prefix, te2_prefix = TEXT_PREFIXES[family]
    if family == "sd1":
        state.update(clip_to_original(text_encoder, te_prefix, position_ids=position_ids))
    elif family == "sd2":
        state.update(open_clip_to_original(text_encoder, te_prefix, extra_layers=1, seed=seed))
    else:
        state.update(clip_to_original(text_encoder, te_prefix, position_ids=position_ids))
        state.update(open_clip_to_original(text_encoder_2, te2_prefix))
    if extras:
        state.update(extra_keys(family))
    return state


def _plain(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # own, contiguous, CPU storage per tensor: safetensors refuses shared or strided storage
    return {k: v.detach().to("cpu").contiguous().clone() if _shares(v) else v.detach().to("cpu").contiguous()
            for k, v in state.items()}


def _shares(t: torch.Tensor) -> bool:
    return t.untyped_storage().nbytes() != t.numel() * t.element_size()


def save_checkpoint(state: Mapping[str, torch.Tensor], path, metadata: Mapping[str, str] | None = None) -> Path:
    """Write `state` as a .safetensors file (optional string metadata in its header)."""
    from safetensors.torch import save_file

    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file(_plain(state), str(tmp), metadata=dict(metadata) if metadata else None)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save_ckpt(state: Mapping[str, torch.Tensor], path, global_step: int = 470000) -> Path:
    """Write `state` as a pickled .ckpt the way Lightning saved SD: {"state_dict": ..., "global_step": ...}."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save({"state_dict": _plain(state), "global_step": global_step}, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
