"""A tiny Stable Diffusion model built from config: the model the fast tests use.

Same architecture family as SD 1.x (CLIP text encoder, 8x-downsampling AutoencoderKL, a
cross-attention UNet, LMS scheduler with SD's beta schedule), just very small and seeded, so it
builds offline in a second and runs a step in milliseconds. Its weights are random: it makes
noise, not pictures.
"""
from __future__ import annotations

import string

import torch
from diffusers import AutoencoderKL, LMSDiscreteScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

TINY_NATIVE_SIZE = 128
TINY_MODEL_NAME = "tiny-random-sd (built from config)"


def load_tiny_model(device: str = "cpu", cache_dir=None):
    """The tiny model as a LoadedModel, through the same assembly as any checkpoint."""
    from .assemble import assemble_model
    from .loading import pick_device

    components = build_tiny_components()
    return assemble_model(components, components["scheduler"].config, TINY_MODEL_NAME, is_demo=False,
                          source=None, device=pick_device(device), cache_dir=cache_dir)


def character_tokenizer(max_length: int = 77) -> CLIPTokenizer:
    """A CLIP tokenizer over printable characters with no merges: every word is split into
    letters, so any prompt tokenizes (unknown words cannot exist) without a hub download."""
    symbols = sorted(set(string.ascii_lowercase + string.digits + string.punctuation))
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in symbols:
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=max_length)


def tiny_scheduler() -> LMSDiscreteScheduler:
    """SD 1.x's noise schedule."""
    return LMSDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1)


def build_tiny_components(seed: int = 0) -> dict:
    """Components in the shape StableDiffusionImg2ImgPipeline takes, seeded for repeatability."""
    tokenizer = character_tokenizer()
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            max_position_embeddings=77,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(16, 16, 32, 32),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=TINY_NATIVE_SIZE,
    )
    unet = UNet2DConditionModel(
        sample_size=TINY_NATIVE_SIZE // 8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=32,
    )
    scheduler = tiny_scheduler()
    for module in (text_encoder, vae, unet):
        module.eval()
    return {
        "tokenizer": tokenizer,
        "text_encoder": text_encoder,
        "vae": vae,
        "unet": unet,
        "scheduler": scheduler,
    }
