"""Tiny Stable Diffusion models built from config: the models the fast tests use.

`build_tiny_components` has SD 1.x's architecture (CLIP text encoder, 8x-downsampling
AutoencoderKL, a cross-attention UNet, LMS scheduler with SD's beta schedule);
`build_tiny_xl_components` has SDXL's (two text encoders, the second with a projection for the
pooled embedding, a "text_time" UNet, an upcast VAE with SDXL's scaling factor, SDXL's Euler
schedule). Both are very small and seeded, so they build offline in a second and run a step in
milliseconds. Their weights are random: they make noise, not pictures.
"""
from __future__ import annotations

import json
import string

import torch
from diffusers import AutoencoderKL, EulerDiscreteScheduler, LMSDiscreteScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from server.engine.families import CONFIG_DIR

TINY_NATIVE_SIZE = 128
TINY_MODEL_NAME = "tiny-random-sd (built from config)"
TINY_XL_MODEL_NAME = "tiny-random-sdxl (built from config)"
SDXL_CONFIG = CONFIG_DIR / "sdxl.json"


def load_tiny_model(device: str = "cpu", cache_dir=None):
    """The tiny model as a LoadedModel, through the same assembly as any checkpoint."""
    from server.engine.assemble import assemble_model
    from server.engine.loading import pick_device

    components = build_tiny_components()
    return assemble_model(components, components["scheduler"].config, TINY_MODEL_NAME, is_demo=False,
                          source=None, device=pick_device(device), cache_dir=cache_dir)


def load_tiny_xl_model(device: str = "cpu", cache_dir=None, dtype: torch.dtype | None = None):
    """The tiny SDXL model as a LoadedModel, through the same assembly as any checkpoint."""
    from server.engine.assemble import assemble_model
    from server.engine.loading import pick_device

    components = build_tiny_xl_components()
    return assemble_model(components, sdxl_scheduler_config(), TINY_XL_MODEL_NAME, is_demo=False, source=None,
                          device=pick_device(device), cache_dir=cache_dir, dtype=dtype)


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


def tiny_vae(**overrides) -> AutoencoderKL:
    """An 8x-downsampling AutoencoderKL with 4 small blocks (a 2-block VAE downsamples only 2x)."""
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(16, 16, 32, 32),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=TINY_NATIVE_SIZE,
        **overrides,
    )


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
    vae = tiny_vae()
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


def sdxl_scheduler_config() -> dict:
    """SDXL base's published scheduler config (EulerDiscreteScheduler, "leading" spacing,
    steps_offset 1), read from the family config that single-file loading also uses."""
    config = dict(json.loads(SDXL_CONFIG.read_text())["scheduler"])
    config.pop("_class_name", None)
    return config


def _tiny_clip_config(vocab_size: int) -> CLIPTextConfig:
    return CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=77,
        hidden_act="gelu",
        projection_dim=32,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )


def build_tiny_xl_components(seed: int = 0) -> dict:
    """Components in the shape StableDiffusionXLImg2ImgPipeline takes, seeded for repeatability,
    in the shape of diffusers' own SDXL pipeline tests.

    The UNet's cross-attention width is the two encoders' hidden states side by side (32 + 32) and
    its added embedding takes 6 size ids x 8 plus the second encoder's 32-wide pooled projection
    (80). Both tokenizers are the character tokenizer: SDXL's second tokenizer pads with "!", but
    here both sides of every parity test share the tokenizers, so the pad token changes nothing
    that is compared."""
    tokenizer = character_tokenizer()
    tokenizer_2 = character_tokenizer()
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(_tiny_clip_config(len(tokenizer)))
    text_encoder_2 = CLIPTextModelWithProjection(_tiny_clip_config(len(tokenizer_2)))
    vae = tiny_vae(force_upcast=True, scaling_factor=0.13025)
    unet = UNet2DConditionModel(
        sample_size=TINY_NATIVE_SIZE // 8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=2,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=6 * 8 + 32,
        cross_attention_dim=64,
        norm_num_groups=32,
    )
    scheduler = EulerDiscreteScheduler.from_config(sdxl_scheduler_config())
    for module in (text_encoder, text_encoder_2, vae, unet):
        module.eval()
    return {
        "tokenizer": tokenizer,
        "tokenizer_2": tokenizer_2,
        "text_encoder": text_encoder,
        "text_encoder_2": text_encoder_2,
        "vae": vae,
        "unet": unet,
        "scheduler": scheduler,
    }
