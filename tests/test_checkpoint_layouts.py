"""The single-file test oracle (checkpoint_layouts + checkpoint_families) against diffusers' own
forward conversion: writing the small models of each family in the original layout and
converting back with diffusers.loaders.single_file_utils must give the diffusers state dicts
exactly; the full-size layouts are checked on the meta device (names, shapes, counts).
Nothing here goes through the studio's loader."""
from __future__ import annotations

import json

import pytest
import torch
from diffusers.loaders.single_file_utils import (
    CHECKPOINT_KEY_NAMES,
    convert_ldm_clip_checkpoint,
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
    convert_open_clip_checkpoint,
    infer_diffusers_model_type,
)

from tests import checkpoint_families as families
from tests import checkpoint_layouts as layouts

FAMILIES = ("sd1", "sd2", "sdxl")


@pytest.fixture(scope="module")
def small():
    built = {}

    def get(family, inpaint=False):
        if (family, inpaint) not in built:
            parts = families.build_components(family, "small", inpaint=inpaint)
            state = layouts.original_state_dict(family, parts["unet"], parts["vae"], parts["text_encoder"],
                                                parts.get("text_encoder_2"))
            built[family, inpaint] = parts, state
        return built[family, inpaint]

    return get


@pytest.fixture(scope="module")
def full_meta():
    built = {}

    def get(family):
        if family not in built:
            parts = families.build_components(family, "full", device="meta")
            state = layouts.original_state_dict(family, parts["unet"], parts["vae"], parts["text_encoder"],
                                                parts.get("text_encoder_2"), position_ids=True)
            built[family] = parts, state
        return built[family]

    return get


def _flat(state):
    """transformers 5.x CLIPTextModel has no `text_model.` wrapper; diffusers' CLIP converters
    still produce `text_model.`-prefixed names (its own loader strips them the same way)."""
    return {k.removeprefix("text_model."): v for k, v in state.items()}


def _text_reference(model):
    return _flat(model.state_dict()) if not hasattr(model, "text_model") else dict(model.state_dict())


def assert_same_state(converted, reference):
    assert set(converted) == set(reference), (sorted(set(converted) - set(reference))[:5],
                                              sorted(set(reference) - set(converted))[:5])
    for key, value in reference.items():
        assert converted[key].shape == value.shape, key
        assert converted[key].dtype == value.dtype, key
        if value.device.type != "meta":
            assert torch.equal(converted[key], value), key


def _prefixed(state, prefix):
    return {k: v for k, v in state.items() if k.startswith(prefix)}


# ---------------------------------------------------------------------------------------
# small models: exact round trip through diffusers' forward conversion


@pytest.mark.parametrize("family,inpaint", [("sd1", False), ("sd2", False), ("sdxl", False), ("sd1", True)])
def test_unet_round_trips_through_diffusers(small, family, inpaint):
    parts, state = small(family, inpaint)
    unet = parts["unet"]
    converted = convert_ldm_unet_checkpoint(state, dict(unet.config))
    assert_same_state(converted, unet.state_dict())
    # and nothing under the UNet prefix is left over
    assert len(_prefixed(state, layouts.UNET_PREFIX)) == len(unet.state_dict())


@pytest.mark.parametrize("family", FAMILIES)
def test_vae_round_trips_through_diffusers(small, family):
    parts, state = small(family)
    vae = parts["vae"]
    converted = convert_ldm_vae_checkpoint(state, dict(vae.config))
    assert_same_state(converted, vae.state_dict())
    assert len(_prefixed(state, layouts.VAE_PREFIX)) == len(vae.state_dict())
    q = state["first_stage_model.decoder.mid.attn_1.q.weight"]
    assert q.shape == (64, 64, 1, 1)  # a 1x1 conv in the original layout


def test_sd1_text_encoder_round_trips(small):
    parts, state = small("sd1")
    converted = _flat(convert_ldm_clip_checkpoint(state))
    assert_same_state(converted, _text_reference(parts["text_encoder"]))


def test_sd2_open_clip_round_trips_but_for_the_extra_last_layer(small):
    parts, state = small("sd2")
    te = parts["text_encoder"]
    layers = te.config.num_hidden_layers
    prefix = "cond_stage_model.model."
    assert f"{prefix}transformer.resblocks.{layers}.attn.in_proj_weight" in state  # the penultimate-layer extra
    assert f"{prefix}transformer.resblocks.{layers + 1}.ln_1.weight" not in state
    assert state[prefix + "text_projection"].shape == (64, 64)
    assert state[prefix + "logit_scale"].shape == ()

    converted = _flat(convert_open_clip_checkpoint(te, state, prefix=prefix))
    # diffusers drops the file's last resblock only through SD_2_TEXT_ENCODER_KEYS_TO_IGNORE,
    # which names index 23 (the published 24-layer ViT-H) literally. For this 3-resblock file
    # the extra layer comes back as encoder.layers.2.*, which the 2-layer model does not have:
    # a loader must drop encoder.layers.N.* for N >= num_hidden_layers itself. text_projection
    # is in that list by name, so it is dropped at any size.
    extra = {k for k in converted if k.startswith(f"encoder.layers.{layers}.")}
    assert len(extra) == 16
    kept = {k: v for k, v in converted.items() if k not in extra}
    assert_same_state(kept, _text_reference(te))


def test_sdxl_text_encoders_round_trip(small):
    parts, state = small("sdxl")
    te1, te2 = parts["text_encoder"], parts["text_encoder_2"]
    converted = _flat(convert_ldm_clip_checkpoint(state))
    assert_same_state(converted, _text_reference(te1))

    prefix = "conditioner.embedders.1.model."
    converted2 = convert_open_clip_checkpoint(te2, state, prefix=prefix)
    assert_same_state(converted2, _text_reference(te2))  # text_projection.weight included, transposed back
    assert state[prefix + "text_projection"].shape == (64, 64)
    assert torch.equal(state[prefix + "text_projection"], te2.text_projection.weight.T)
    assert prefix + "logit_scale" in state  # written as real files have it; the converter skips it


def test_position_ids_are_optional_and_pass_through_diffusers(small):
    parts, _ = small("sd1")
    te = parts["text_encoder"]
    key = "cond_stage_model.transformer.text_model.embeddings.position_ids"
    plain = layouts.original_state_dict("sd1", parts["unet"], parts["vae"], te)
    with_ids = layouts.original_state_dict("sd1", parts["unet"], parts["vae"], te, position_ids=True)
    assert key not in plain
    assert with_ids[key].dtype == torch.int64 and torch.equal(with_ids[key], torch.arange(77)[None])
    # convert_ldm_clip_checkpoint copies it through: an unexpected key for transformers 5.x,
    # where position_ids is a non-persistent buffer (not in the state dict)
    assert "text_model.embeddings.position_ids" in convert_ldm_clip_checkpoint(with_ids)
    assert "embeddings.position_ids" not in te.state_dict()
    assert torch.equal(te.embeddings.position_ids, torch.arange(77)[None])


def test_extras_mimic_real_files(small):
    _, sd1 = small("sd1")
    for key in ("alphas_cumprod", "betas", "model_ema.decay", "model_ema.num_updates", "posterior_mean_coef2"):
        assert key in sd1
    assert sd1["alphas_cumprod"].shape == (1000,) and sd1["alphas_cumprod"].dtype == torch.float32
    assert 0.004 < float(sd1["alphas_cumprod"][-1]) < 0.005  # SD's scaled_linear schedule ends at 0.0047
    _, sdxl = small("sdxl")
    assert "denoiser.sigmas" in sdxl and "alphas_cumprod" not in sdxl


def test_small_components_run_together(small):
    """The small configs are consistent: text encoder width = cross-attention width, and the
    SDXL text_time embedding takes te2's pooled projection plus six time ids."""
    for family in FAMILIES:
        parts, _ = small(family)
        ids = torch.tensor([[49406, 320, 1125, 49407] + [49407] * 73])
        with torch.no_grad():
            hidden = parts["text_encoder"](ids, output_hidden_states=True).hidden_states[-2]
            added = None
            if family == "sdxl":
                out2 = parts["text_encoder_2"](ids, output_hidden_states=True)
                hidden = torch.cat([hidden, out2.hidden_states[-2]], dim=-1)
                added = {"text_embeds": out2.text_embeds, "time_ids": torch.tensor([[64.0, 64, 0, 0, 64, 64]])}
            latents = parts["vae"].encode(torch.zeros(1, 3, 64, 64)).latent_dist.mean  # x4 down
            noise = parts["unet"](latents, 10, encoder_hidden_states=hidden, added_cond_kwargs=added).sample
        assert noise.shape == latents.shape == (1, 4, 16, 16)
        assert torch.isfinite(noise).all()


def test_builds_are_deterministic():
    a = families.build_components("sd2", "small", seed=3)
    b = families.build_components("sd2", "small", seed=3)
    c = families.build_components("sd2", "small", seed=4)
    for name in a:
        assert_same_state(a[name].state_dict(), b[name].state_dict())
    assert not torch.equal(a["unet"].conv_in.weight, c["unet"].conv_in.weight)
    sa = layouts.original_state_dict("sd2", a["unet"], a["vae"], a["text_encoder"], seed=3)
    sb = layouts.original_state_dict("sd2", b["unet"], b["vae"], b["text_encoder"], seed=3)
    assert_same_state(sa, sb)  # the random extra resblock too
    half = families.build_components("sd1", "small", dtype=torch.float16)
    assert {p.dtype for m in half.values() for p in m.parameters()} == {torch.float16}


# ---------------------------------------------------------------------------------------
# full size, on the meta device: names, shapes and counts of the published layouts


# Component weight counts of the published models in the original layout. A real file holds
# more: CLIP-L's `...embeddings.position_ids` buffer (so a real SD 1.5 file has 686 + 248 + 196
# + 1 = 1131 weight keys, SDXL base 2514 + 1 = 2515), for LDM files (SD 1.x / 2.x) the 12 DDPM
# schedule buffers (betas, alphas_cumprod, ...) and model_ema.decay / model_ema.num_updates, and
# in unpruned training files a `model_ema.<flattened name>` copy of each of the 686 UNet weights
# (and sometimes `cond_stage_model` / `model_ema` duplicates or optimizer-free `loss.*` keys).
FULL_COUNTS = {
    #        unet, vae, text encoder(s) incl. text_projection/logit_scale for OpenCLIP
    "sd1": (686, 248, 196),
    "sd2": (686, 248, 24 * 12 + 4 + 2),  # 24 resblocks in the file, 23 in diffusers
    "sdxl": (1680, 248, 196 + 32 * 12 + 4 + 2),
}
EXTRA_COUNTS = {"sd1": 14, "sd2": 14, "sdxl": 1}


@pytest.mark.parametrize("family", FAMILIES)
def test_full_layout_counts(full_meta, family):
    parts, state = full_meta(family)
    unet_n, vae_n, text_n = FULL_COUNTS[family]
    assert len(_prefixed(state, layouts.UNET_PREFIX)) == unet_n
    assert len(_prefixed(state, layouts.VAE_PREFIX)) == vae_n
    text = {k for k in state if k.startswith(("cond_stage_model.", "conditioner."))}
    position_ids = 0 if family == "sd2" else 1  # written here with position_ids=True
    assert len(text) == text_n + position_ids
    assert len(state) == unet_n + vae_n + text_n + position_ids + EXTRA_COUNTS[family]
    if family == "sd1":
        assert len(state) - EXTRA_COUNTS[family] == 1131
    if family == "sdxl":
        assert len(state) - EXTRA_COUNTS[family] == 2515


KNOWN_SHAPES = {
    "sd1": {
        "model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3),
        "model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight": (640, 768),
        "model.diffusion_model.input_blocks.1.1.proj_in.weight": (320, 320, 1, 1),
        "model.diffusion_model.input_blocks.3.0.op.weight": (320, 320, 3, 3),
        "model.diffusion_model.input_blocks.4.0.skip_connection.weight": (640, 320, 1, 1),
        "model.diffusion_model.middle_block.1.proj_out.weight": (1280, 1280, 1, 1),
        "model.diffusion_model.output_blocks.2.1.conv.weight": (1280, 1280, 3, 3),
        "model.diffusion_model.output_blocks.5.2.conv.weight": (1280, 1280, 3, 3),
        "model.diffusion_model.output_blocks.11.0.skip_connection.weight": (320, 640, 1, 1),
        "model.diffusion_model.time_embed.0.weight": (1280, 320),
        "model.diffusion_model.out.2.weight": (4, 320, 3, 3),
        "first_stage_model.decoder.mid.attn_1.q.weight": (512, 512, 1, 1),
        "first_stage_model.encoder.down.1.block.0.nin_shortcut.weight": (256, 128, 1, 1),
        "first_stage_model.decoder.up.0.block.0.nin_shortcut.weight": (128, 256, 1, 1),
        "first_stage_model.decoder.up.3.upsample.conv.weight": (512, 512, 3, 3),
        "first_stage_model.quant_conv.weight": (8, 8, 1, 1),
        "cond_stage_model.transformer.text_model.encoder.layers.11.self_attn.q_proj.weight": (768, 768),
        "cond_stage_model.transformer.text_model.final_layer_norm.weight": (768,),
        "cond_stage_model.transformer.text_model.embeddings.position_ids": (1, 77),
    },
    "sd2": {
        "model.diffusion_model.input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight": (320, 1024),
        "model.diffusion_model.input_blocks.1.1.proj_in.weight": (320, 320),
        "cond_stage_model.model.transformer.resblocks.23.attn.in_proj_weight": (3072, 1024),
        "cond_stage_model.model.transformer.resblocks.0.mlp.c_fc.weight": (4096, 1024),
        "cond_stage_model.model.positional_embedding": (77, 1024),
        "cond_stage_model.model.token_embedding.weight": (49408, 1024),
        "cond_stage_model.model.text_projection": (1024, 1024),
        "cond_stage_model.model.logit_scale": (),
    },
    "sdxl": {
        "model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3),
        "model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight": (640, 2048),
        "model.diffusion_model.input_blocks.4.1.proj_in.weight": (640, 640),
        "model.diffusion_model.input_blocks.7.1.transformer_blocks.9.attn1.to_q.weight": (1280, 1280),
        "model.diffusion_model.middle_block.1.transformer_blocks.9.ff.net.0.proj.weight": (10240, 1280),
        "model.diffusion_model.output_blocks.2.2.conv.weight": (1280, 1280, 3, 3),
        "model.diffusion_model.output_blocks.5.2.conv.weight": (640, 640, 3, 3),
        "model.diffusion_model.label_emb.0.0.weight": (1280, 2816),
        "model.diffusion_model.label_emb.0.2.weight": (1280, 1280),
        "first_stage_model.decoder.mid.attn_1.q.weight": (512, 512, 1, 1),
        "conditioner.embedders.0.transformer.text_model.encoder.layers.11.mlp.fc2.weight": (768, 3072),
        "conditioner.embedders.1.model.transformer.resblocks.31.attn.in_proj_weight": (3840, 1280),
        "conditioner.embedders.1.model.transformer.resblocks.31.attn.in_proj_bias": (3840,),
        "conditioner.embedders.1.model.ln_final.weight": (1280,),
        "conditioner.embedders.1.model.text_projection": (1280, 1280),
        "conditioner.embedders.1.model.positional_embedding": (77, 1280),
    },
}
ABSENT = {
    "sd1": ["model.diffusion_model.input_blocks.12.0.in_layers.0.weight", "model.diffusion_model.label_emb.0.0.weight",
            "cond_stage_model.transformer.text_model.text_projection.weight"],
    "sd2": ["cond_stage_model.model.transformer.resblocks.24.ln_1.weight",
            "cond_stage_model.model.text_model.embeddings.position_ids"],
    "sdxl": ["model.diffusion_model.input_blocks.9.0.in_layers.0.weight",
             "model.diffusion_model.input_blocks.1.1.proj_in.weight",
             "conditioner.embedders.1.model.transformer.resblocks.32.ln_1.weight"],
}


@pytest.mark.parametrize("family", FAMILIES)
def test_full_layout_known_keys(full_meta, family):
    _, state = full_meta(family)
    for key, shape in KNOWN_SHAPES[family].items():
        assert key in state, key
        assert tuple(state[key].shape) == shape, (key, tuple(state[key].shape))
    for key in ABSENT[family]:
        assert key not in state, key
    # the keys diffusers (and other tools) sniff to tell the families apart
    model_type = {"sd1": "v1", "sd2": "v2", "sdxl": "xl_base"}[family]
    assert infer_diffusers_model_type(state) == model_type
    # SD 2.x shares the SD 1.x UNet layout: only the cross-attention width (to_k) tells them apart
    assert (CHECKPOINT_KEY_NAMES["v1"] in state) == (family != "sdxl")


@pytest.mark.parametrize("family", FAMILIES)
def test_full_layout_round_trips_on_meta(full_meta, family):
    """diffusers' forward conversion maps the full-size layout back onto exactly the diffusers
    names and shapes (values are not there on meta)."""
    parts, state = full_meta(family)
    assert_same_state(convert_ldm_unet_checkpoint(state, dict(parts["unet"].config)), parts["unet"].state_dict())
    assert_same_state(convert_ldm_vae_checkpoint(state, dict(parts["vae"].config)), parts["vae"].state_dict())
    te = parts["text_encoder"]
    if family == "sd2":
        # at full size the ignore list does drop resblocks.23 (and text_projection)
        converted = _flat(convert_open_clip_checkpoint(te, state, prefix="cond_stage_model.model."))
    else:
        converted = {k: v for k, v in _flat(convert_ldm_clip_checkpoint(state)).items()
                     if not k.endswith("position_ids")}
    assert_same_state(converted, _text_reference(te))
    if family == "sdxl":
        te2 = parts["text_encoder_2"]
        converted2 = convert_open_clip_checkpoint(te2, state, prefix="conditioner.embedders.1.model.")
        assert_same_state(converted2, _text_reference(te2))


def test_full_inpaint_is_recognised():
    parts = families.build_components("sd1", "full", inpaint=True, device="meta")
    state = layouts.original_state_dict("sd1", parts["unet"], parts["vae"], parts["text_encoder"])
    assert tuple(state["model.diffusion_model.input_blocks.0.0.weight"].shape) == (320, 9, 3, 3)
    assert infer_diffusers_model_type(state) == "inpainting"


def test_full_configs_are_the_family_json():
    for family in FAMILIES:
        fam = json.loads((families.CONFIG_DIR / f"{family}.json").read_text())
        assert families.unet_config(family) == fam["unet"]
        assert families.vae_config(family) == fam["vae"]
        assert families.text_encoder_configs(family)["text_encoder"] == fam["text_encoder"]
    v = families.unet_config("sd2", variant="v")
    assert v["upcast_attention"] is True and v["sample_size"] == 96


# ---------------------------------------------------------------------------------------
# files


def test_save_safetensors_and_ckpt(small, tmp_path):
    from safetensors import safe_open

    _, state = small("sd1")
    path = layouts.save_checkpoint(state, tmp_path / "model.safetensors", metadata={"modelspec.title": "x"})
    with safe_open(str(path), "pt") as fh:
        assert fh.metadata() == {"modelspec.title": "x"}
        assert set(fh.keys()) == set(state)
        key = "first_stage_model.decoder.mid.attn_1.proj_out.weight"
        assert torch.equal(fh.get_tensor(key), state[key])
    ckpt = layouts.save_ckpt(state, tmp_path / "model.ckpt")
    loaded = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert set(loaded) == {"state_dict", "global_step"}
    assert set(loaded["state_dict"]) == set(state)
    key = "cond_stage_model.transformer.text_model.encoder.layers.1.mlp.fc1.weight"
    assert torch.equal(loaded["state_dict"][key], state[key])
    assert not list(tmp_path.glob(".*tmp"))


def test_cached_checkpoint_builds_once(tmp_path, monkeypatch):
    path = families.cached_checkpoint("sd1", "small", torch.float16, directory=tmp_path)
    assert path.parent == tmp_path and path.suffix == ".safetensors"
    assert "sd1-small-float16-seed0" in path.name and path.name.startswith(f"v{families.CACHE_VERSION}.")
    calls = []
    monkeypatch.setattr(families, "build_state_dict", lambda *a, **k: calls.append(a))
    assert families.cached_checkpoint("sd1", "small", torch.float16, directory=tmp_path) == path
    assert calls == []
    assert families.checkpoint_cache_name("sd1", "small", torch.float32) != path.name
    assert families.checkpoint_cache_name("sd2", "small", torch.float16) != path.name
    assert families.checkpoint_cache_name("sd1", "full", torch.float16) != path.name
    assert families.checkpoint_cache_name("sd1", "small", torch.float16, inpaint=True) != path.name
    monkeypatch.setenv(families.CACHE_ENV, str(tmp_path / "elsewhere"))
    assert families.cache_dir() == tmp_path / "elsewhere"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
