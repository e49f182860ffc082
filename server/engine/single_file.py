"""A single-file checkpoint -> diffusers components, offline.

diffusers' `from_single_file` looks up configs and tokenizers on a model hub unless it is handed
them, so the studio hands it nothing and does the three steps itself:
1. configs: the family's published ones (`model_configs/`), with the sizes the tensors show
   (channels, depths, widths) read from their shapes, as ComfyUI's model detection does: a full-size
   checkpoint gets exactly the published config, a scaled-down one in the same layout still loads;
2. weights: diffusers' own conversion functions rename the original (LDM/SGM) keys;
3. tokenizers: CLIP's vocabulary from open_clip_torch's package data (`clip_tokenizer.py`).
The modules are built on the `meta` device and take the checkpoint's tensors as they are, so no
random initialisation runs and nothing is copied twice.
"""
from __future__ import annotations

import re
from types import SimpleNamespace

import torch

from .checkpoint_file import CheckpointError, CheckpointFile
from .families import UNET, Family

VAE = "first_stage_model."
# Where each family keeps its text encoders: (component, prefix, layout).
TEXT_ENCODERS = {
    "sd1": [("text_encoder", "cond_stage_model.transformer.text_model.", "clip")],
    "sd2": [("text_encoder", "cond_stage_model.model.", "open_clip")],
    "sdxl": [("text_encoder", "conditioner.embedders.0.transformer.text_model.", "clip"),
             ("text_encoder_2", "conditioner.embedders.1.model.", "open_clip")],
}


# -- 1. configs from the family's and the tensors' shapes -----------------------------------------
def _indices(checkpoint: CheckpointFile, prefix: str) -> list[int]:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    return sorted({int(m.group(1)) for k in checkpoint.keys() if (m := pattern.match(k))})


def unet_config(family: Family, checkpoint: CheckpointFile) -> dict:
    config = dict(family.configs["unet"])
    first = checkpoint.shape(f"{UNET}input_blocks.0.0.weight")
    config["in_channels"] = first[1]
    config["out_channels"] = checkpoint.shape(f"{UNET}out.2.weight")[0]
    levels: list[list[int]] = [[]]
    for i in _indices(checkpoint, f"{UNET}input_blocks.")[1:]:
        if f"{UNET}input_blocks.{i}.0.op.weight" in checkpoint:  # a downsampler ends the level
            levels.append([])
        else:
            levels[-1].append(i)
    channels = [checkpoint.shape(f"{UNET}input_blocks.{lv[0]}.0.out_layers.3.weight")[0] for lv in levels]
    attention = [f"{UNET}input_blocks.{lv[0]}.1.proj_in.weight" in checkpoint for lv in levels]
    depths = [len(_indices(checkpoint, f"{UNET}input_blocks.{lv[0]}.1.transformer_blocks.")) or 1 for lv in levels]
    config["block_out_channels"] = channels
    config["layers_per_block"] = len(levels[0])
    config["down_block_types"] = ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attention]
    config["up_block_types"] = ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention)]
    if "transformer_layers_per_block" in config or any(d != 1 for d in depths):
        config["transformer_layers_per_block"] = depths
    to_k = next(k for k in checkpoint.keys() if k.startswith(UNET) and k.endswith("attn2.to_k.weight"))
    config["cross_attention_dim"] = checkpoint.shape(to_k)[1]
    proj_in = next(k for k in checkpoint.keys() if k.startswith(UNET) and k.endswith(".proj_in.weight"))
    config["use_linear_projection"] = len(checkpoint.shape(proj_in)) == 2
    if family.key != "sd1":  # SD 2.x and SDXL attend in 64-wide heads; SD 1.x in 8 heads
        config["attention_head_dim"] = [c // 64 for c in channels]
    if family.key == "sdxl":
        added = checkpoint.shape(f"{UNET}label_emb.0.0.weight")[1]
        pooled = checkpoint.shape("conditioner.embedders.1.model.text_projection")[1]
        config["projection_class_embeddings_input_dim"] = added
        config["addition_time_embed_dim"] = (added - pooled) // 6  # 6 time ids
    return config


def vae_config(family: Family, checkpoint: CheckpointFile) -> dict:
    config = dict(family.configs["vae"])
    levels = _indices(checkpoint, f"{VAE}encoder.down.")
    if not levels:
        raise CheckpointError(f"{checkpoint.path.name} has no VAE (first_stage_model.*); this studio needs a full "
                              "checkpoint with its VAE.")
    channels = [checkpoint.shape(f"{VAE}encoder.down.{i}.block.0.conv2.weight")[0] for i in levels]
    config["block_out_channels"] = channels
    config["down_block_types"] = ["DownEncoderBlock2D"] * len(levels)
    config["up_block_types"] = ["UpDecoderBlock2D"] * len(levels)
    config["layers_per_block"] = len(_indices(checkpoint, f"{VAE}encoder.down.0.block."))
    config["latent_channels"] = checkpoint.shape(f"{VAE}decoder.conv_in.weight")[1]
    return config


def text_encoder_config(family: Family, checkpoint: CheckpointFile, name: str, prefix: str, layout: str) -> dict:
    config = dict(family.configs[name])
    if layout == "clip":
        vocab, hidden = checkpoint.shape(f"{prefix}embeddings.token_embedding.weight")
        positions = checkpoint.shape(f"{prefix}embeddings.position_embedding.weight")[0]
        layers = len(_indices(checkpoint, f"{prefix}encoder.layers."))
        intermediate = checkpoint.shape(f"{prefix}encoder.layers.0.mlp.fc1.weight")[0]
    else:
        vocab, hidden = checkpoint.shape(f"{prefix}token_embedding.weight")
        positions = checkpoint.shape(f"{prefix}positional_embedding")[0]
        layers = len(_indices(checkpoint, f"{prefix}transformer.resblocks."))
        intermediate = checkpoint.shape(f"{prefix}transformer.resblocks.0.mlp.c_fc.weight")[0]
        if family.key == "sd2":
            layers -= 1  # SD 2.x conditions on the penultimate layer; diffusers' encoder stops there
        if f"{prefix}text_projection" in checkpoint and name == "text_encoder_2":
            config["projection_dim"] = checkpoint.shape(f"{prefix}text_projection")[1]
    config.update(vocab_size=vocab, hidden_size=hidden, max_position_embeddings=positions,
                  num_hidden_layers=layers, intermediate_size=intermediate, num_attention_heads=max(hidden // 64, 1))
    return config


# -- 2. weights, converted by diffusers --------------------------------------------------------------
def _diffusers_module(cls, config: dict, weights: dict, dtype, what: str, checkpoint: CheckpointFile):
    with torch.device("meta"):
        module = cls.from_config(config)
    missing, unexpected = module.load_state_dict(weights, strict=False, assign=True)
    _check_complete(what, missing, checkpoint)
    left = [n for n, t in [*module.named_parameters(), *module.named_buffers()] if t.is_meta]
    _check_complete(what, left, checkpoint)
    if module.dtype != dtype:
        torch.nn.Module.to(module, dtype=dtype)  # every weight: fp16 files run in fp32 on a CPU
    return module.eval()


def _text_module(cls, config: dict, weights: dict, dtype, what: str, checkpoint: CheckpointFile):
    from transformers import CLIPTextConfig
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # the studio shows its own progress
    module, info = cls.from_pretrained(None, config=CLIPTextConfig(**config), state_dict=weights,
                                       output_loading_info=True, dtype=dtype)
    missing = [k for k in info.get("missing_keys", ()) if not k.endswith("position_ids")]
    _check_complete(what, missing + list(info.get("mismatched_keys", ())), checkpoint)
    return module.eval()


def _check_complete(what: str, missing, checkpoint: CheckpointFile) -> None:
    missing = list(missing)
    if missing:
        raise CheckpointError(
            f"{checkpoint.path.name} lacks {len(missing)} of the {what}'s weights (e.g. {missing[0]}): the file "
            "may be damaged or cut short, or a variant of the model this studio does not know.")


def _text_weights(checkpoint: CheckpointFile, config: dict, prefix: str, layout: str, with_projection: bool) -> dict:
    from diffusers.loaders.single_file_utils import convert_ldm_clip_checkpoint, convert_open_clip_checkpoint

    state = checkpoint.state_dict((prefix,))
    if layout == "clip":
        converted = convert_ldm_clip_checkpoint(state)
    else:
        # Resblocks past the encoder's depth (SD 2.x's last one) are not part of the model.
        depth = config["num_hidden_layers"]
        state = {k: v for k, v in state.items()
                 if not (m := re.match(re.escape(prefix) + r"transformer\.resblocks\.(\d+)\.", k)) or int(m[1]) < depth}
        converted = convert_open_clip_checkpoint(SimpleNamespace(config=SimpleNamespace(**config)), state, prefix)
    # Most files carry CLIP's position_ids; transformers rebuilds them, they are not weights.
    converted = {k: v for k, v in converted.items() if not k.endswith("position_ids")}
    if not with_projection:  # transformers' CLIPTextModel is flat: no text_model. prefix, no projection
        converted = {k.removeprefix("text_model."): v for k, v in converted.items() if not k.startswith("text_projection")}
    return converted


def converted_weights(checkpoint: CheckpointFile, family: Family):
    """(component, config, diffusers-named weights) for each model in the checkpoint, in load
    order (text encoders, VAE, UNet): what `build_components` instantiates."""
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint

    for name, prefix, layout in TEXT_ENCODERS[family.key]:
        config = text_encoder_config(family, checkpoint, name, prefix, layout)
        yield name, config, _text_weights(checkpoint, config, prefix, layout, name == "text_encoder_2")
    config = vae_config(family, checkpoint)
    yield "vae", config, convert_ldm_vae_checkpoint(checkpoint.state_dict((VAE,)), config)
    config = unet_config(family, checkpoint)
    yield "unet", config, convert_ldm_unet_checkpoint(checkpoint.state_dict((UNET,)), config)


def build_components(checkpoint: CheckpointFile, family: Family, dtype: torch.dtype, progress) -> dict:
    """The family's components from the checkpoint's tensors, plus offline tokenizers."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    from .clip_tokenizer import clip_tokenizer

    from diffusers import LMSDiscreteScheduler

    classes = {"text_encoder": CLIPTextModel, "text_encoder_2": CLIPTextModelWithProjection,
               "vae": AutoencoderKL, "unet": UNet2DConditionModel}
    # The pipeline holds a scheduler; each job builds its own from the family's config (samplers.py).
    components = {"scheduler": LMSDiscreteScheduler.from_config(family.scheduler_config)}
    weights_done = {"text_encoder": 0.05, "text_encoder_2": 0.15, "vae": 0.3, "unet": 0.4}
    for name, config, weights in converted_weights(checkpoint, family):
        progress(weights_done[name], f"loading {name.replace('_', ' ')}")
        what = {"vae": "VAE", "unet": "UNet"}.get(name, name.replace("_", " "))
        if name.startswith("text_encoder"):
            components[name] = _text_module(classes[name], config, weights, dtype, what, checkpoint)
            tokenizer = name.replace("text_encoder", "tokenizer")
            components[tokenizer] = clip_tokenizer(pad_token=family.configs[tokenizer]["pad_token"])
        else:
            components[name] = _diffusers_module(classes[name], config, weights, dtype, what, checkpoint)
    return components
