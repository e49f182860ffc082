"""Single-file checkpoints load through the studio as the models they were written from.

The files are written by tests/checkpoint_layouts.py, an inverse of diffusers' conversion written
independently, from random-weight components in each family's real layout: scaled down here (same
keys, smaller widths), full size for SD 1.5 behind the `heavy` marker, and full-size SD 1.x, SD 2.x
and SDXL layouts checked on the `meta` device without writing gigabytes.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from server.engine import GenerationRequest, generate, load_model
from server.engine.assemble import assemble_model
from server.engine.checkpoint_file import CheckpointFile
from server.engine.clip_tokenizer import clip_tokenizer
from server.engine.families import Hints, detect_family
from server.engine.single_file import converted_weights
from tests import checkpoint_families as families
from tests import checkpoint_layouts as layouts

MODULES = ("unet", "vae", "text_encoder", "text_encoder_2")


def write(tmp_path, family, *, inpaint=False, seed=0, fmt="safetensors", metadata=None, name="model"):
    """A small checkpoint of the family in its original layout, and the components it holds."""
    parts = families.build_components(family, "small", seed=seed, inpaint=inpaint)
    state = layouts.original_state_dict(family, parts["unet"], parts["vae"], parts["text_encoder"],
                                        parts.get("text_encoder_2"), position_ids=True, seed=seed)
    path = tmp_path / f"{name}.{fmt}"
    if fmt == "ckpt":
        layouts.save_ckpt(state, path)
    else:
        layouts.save_checkpoint(state, path, metadata=metadata)
    return path, parts


def assert_same_weights(loaded_pipe, parts):
    for name in MODULES:
        if name not in parts:
            assert getattr(loaded_pipe, name, None) is None
            continue
        expected = parts[name].state_dict()
        got = getattr(loaded_pipe, name).state_dict()
        assert set(got) == set(expected), name
        for key, tensor in expected.items():
            assert torch.equal(got[key].to(tensor.dtype), tensor), f"{name}.{key}"


@pytest.mark.parametrize("family, inpaint, label", [
    ("sd1", False, "Stable Diffusion 1.x"),
    ("sd1", True, "Stable Diffusion 1.x inpainting"),
    ("sd2", False, "Stable Diffusion 2.x (512, epsilon)"),
    ("sdxl", False, "Stable Diffusion XL"),
    ("sdxl", True, "Stable Diffusion XL inpainting"),
])
def test_every_tensor_of_a_single_file_loads_as_written(tmp_path, family, inpaint, label):
    path, parts = write(tmp_path, family, inpaint=inpaint)
    loaded = load_model(path, "cpu", cache_dir=tmp_path / "cache")
    assert loaded.family == label
    assert loaded.name == path.name
    assert_same_weights(loaded.pipe, parts)
    assert loaded.pipe.unet.config.in_channels == (9 if inpaint else 4)


def test_a_ckpt_of_plain_tensors_loads_like_the_safetensors(tmp_path):
    path, parts = write(tmp_path, "sd1", fmt="ckpt")
    loaded = load_model(path, "cpu", cache_dir=tmp_path / "cache")
    assert_same_weights(loaded.pipe, parts)


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_a_loaded_checkpoint_makes_the_pixels_of_the_model_it_was_written_from(tmp_path, family):
    """Same weights, same configs, same offline tokenizers: the same picture, bit for bit."""
    path, parts = write(tmp_path, family)
    loaded = load_model(path, "cpu", cache_dir=tmp_path / "cache")
    config = families.family_config(family)
    source = dict(parts, tokenizer=clip_tokenizer(config["tokenizer"]["pad_token"]),
                  scheduler=loaded.pipe.scheduler)
    if family == "sdxl":
        source["tokenizer_2"] = clip_tokenizer(config["tokenizer_2"]["pad_token"])
    reference = assemble_model(source, config["scheduler"], "source", is_demo=False, source=None,
                               device=torch.device("cpu"), cache_dir=tmp_path / "cache")
    request = GenerationRequest(prompt="a red barn in a field", steps=3, seed=7, width=64, height=64,
                                sampler="euler", cfg_scale=5.0)
    got = np.asarray(generate(loaded, request).image)
    want = np.asarray(generate(reference, request).image)
    assert got.shape == (64, 64, 3)
    assert got.std() > 0  # a picture, not a blank
    np.testing.assert_array_equal(got, want)


def _sd2_file(tmp_path, spread: float, **kwargs):
    """A small SD 2.x file whose probe norm bias has the given spread (wide in v models)."""
    parts = families.build_components("sd2", "small")
    state = layouts.original_state_dict("sd2", parts["unet"], parts["vae"], parts["text_encoder"])
    probe = "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.norm1.bias"
    if probe not in state:  # the small UNet has fewer output blocks: the last attention's norm
        probe = sorted(k for k in state if k.endswith("transformer_blocks.0.norm1.bias") and "output_blocks" in k)[-1]
    state[probe] = torch.linspace(-1, 1, state[probe].numel()) * spread * 3 ** 0.5
    path = tmp_path / "sd2.safetensors"
    save_file(state, str(path), **kwargs)
    return path, probe


def test_sd2_prediction_type_comes_from_what_the_file_and_the_user_say(tmp_path):
    path, _ = _sd2_file(tmp_path, spread=0.02)
    checkpoint = CheckpointFile(path)
    assert detect_family(checkpoint).prediction_type == "epsilon"
    v = detect_family(checkpoint, Hints(prediction_type="v_prediction"))
    assert v.prediction_type == "v_prediction" and v.native_size == 768
    assert v.scheduler_config["prediction_type"] == "v_prediction"
    assert v.label == "Stable Diffusion 2.x (768, v-prediction)"

    (tmp_path / "sd2.yaml").write_text("model:\n  params:\n    parameterization: \"v\"\n")
    assert detect_family(CheckpointFile(path)).prediction_type == "v_prediction"
    assert detect_family(CheckpointFile(path), Hints(prediction_type="epsilon")).prediction_type == "epsilon"

    metadata = tmp_path / "meta"
    metadata.mkdir()
    path, _ = _sd2_file(metadata, spread=0.02, metadata={"modelspec.prediction_type": "v"})
    assert detect_family(CheckpointFile(path)).prediction_type == "v_prediction"


def test_sd2_v_models_are_told_by_the_spread_of_a_norm_bias_as_comfyui_does(tmp_path):
    """The heuristic reads output_blocks.11's norm: only full-size files have it."""
    full = families.build_components("sd2", "full", device="meta")
    state = layouts.original_state_dict("sd2", full["unet"], full["vae"], full["text_encoder"])
    probe = "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.norm1.bias"
    for spread, expected in ((0.2, "v_prediction"), (0.02, "epsilon")):
        state[probe] = torch.linspace(-1, 1, 320) * spread * 3 ** 0.5
        assert detect_family(CheckpointFile.from_state_dict(state)).prediction_type == expected


def test_turbo_models_are_told_by_their_header_or_a_defaults_file_beside_them(tmp_path):
    path, _ = write(tmp_path, "sdxl", metadata={"modelspec.architecture": "stable-diffusion-xl-v1-base",
                                                 "modelspec.title": "SDXL Turbo 1.0"})
    loaded = load_model(path, "cpu", cache_dir=tmp_path / "cache")
    assert loaded.family == "Stable Diffusion XL Turbo"
    assert loaded.scheduler_config["_class_name"] == "EulerAncestralDiscreteScheduler"
    assert loaded.scheduler_config["timestep_spacing"] == "trailing"
    assert loaded.defaults == {"sampler": "euler_a", "steps": 2, "cfg_scale": 0.0, "min_taken_steps": 1}

    plain = tmp_path / "plain"
    plain.mkdir()
    path, _ = write(plain, "sd2", name="sd_turbo")
    assert detect_family(CheckpointFile(path)).turbo is False
    (plain / "sd_turbo.studio_defaults.json").write_text(json.dumps({"model_variant": "turbo", "steps": 1}))
    loaded = load_model(path, "cpu", cache_dir=tmp_path / "cache")
    assert loaded.family == "Stable Diffusion 2.x Turbo (512, epsilon)"
    assert loaded.defaults == {"sampler": "euler", "steps": 1, "cfg_scale": 0.0, "min_taken_steps": 1}
    assert loaded.scheduler_config["timestep_spacing"] == "trailing"


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_full_size_layouts_convert_onto_every_weight_of_the_published_architecture(family):
    """On the meta device: the detected configs are the published ones, and the converted keys
    and shapes are exactly the diffusers modules' (nothing missing, nothing left over)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    parts = families.build_components(family, "full", device="meta")
    state = layouts.original_state_dict(family, parts["unet"], parts["vae"], parts["text_encoder"],
                                        parts.get("text_encoder_2"), position_ids=True)
    checkpoint = CheckpointFile.from_state_dict(state)
    found = detect_family(checkpoint, Hints(prediction_type="epsilon"))
    published = families.family_config(family)
    for name, config, weights in converted_weights(checkpoint, found):
        for key, value in published[name].items():
            assert config[key] == value, f"{name}.{key}"
        if name.startswith("text_encoder"):
            cls = CLIPTextModelWithProjection if name == "text_encoder_2" else CLIPTextModel
            with torch.device("meta"):
                module = cls(CLIPTextConfig(**config))
        else:
            cls = UNet2DConditionModel if name == "unet" else AutoencoderKL
            with torch.device("meta"):
                module = cls.from_config(config)
        expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
        assert {k: tuple(v.shape) for k, v in weights.items()} == expected, name


@pytest.mark.heavy
def test_full_size_sd15_single_file_loads_every_tensor_and_matches_diffusers_pixels(tmp_path):
    """A 2 GB fp16 SD 1.5 file (cached between runs): every tensor as written, and img2img
    pixels equal to diffusers' own pipeline on the source components."""
    from diffusers import PNDMScheduler, StableDiffusionImg2ImgPipeline
    from PIL import Image

    path = families.cached_checkpoint("sd1", "full", torch.float16)
    loaded = load_model(path, "cpu", cache_dir=tmp_path / "cache")
    assert loaded.family == "Stable Diffusion 1.x" and loaded.native_size == 512
    parts = families.build_components("sd1", "full", dtype=torch.float16)
    assert_same_weights(loaded.pipe, parts)

    parts = {k: v.float() for k, v in parts.items()}
    pipe = StableDiffusionImg2ImgPipeline(**parts, tokenizer=clip_tokenizer(), 
                                          scheduler=PNDMScheduler.from_config(families.family_config("sd1")["scheduler"]),
                                          safety_checker=None, feature_extractor=None,
                                          requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    init = Image.new("RGB", (64, 64), (200, 40, 40))
    init.paste((30, 90, 200), (16, 16, 48, 48))
    want = pipe("a red barn", image=init, strength=0.5, num_inference_steps=4, guidance_scale=7.5,
                generator=torch.Generator().manual_seed(3)).images[0]

    request = GenerationRequest(prompt="a red barn", strength=0.5, steps=4, seed=3, cfg_scale=7.5, sampler="pndm",
                                width=64, height=64)
    got = generate(loaded, request, init_image=init).image
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_the_command_line_generates_from_a_single_sdxl_file(tmp_path, monkeypatch):
    """`img2img-studio generate --model file.safetensors`: the same picture the engine makes."""
    from click.testing import CliRunner
    from PIL import Image

    from server.cli import main

    path, _ = write(tmp_path, "sdxl")
    monkeypatch.chdir(tmp_path)
    init = Image.new("RGB", (64, 64), (40, 120, 200))
    init.paste((220, 200, 40), (8, 8, 40, 40))
    init.save(tmp_path / "sketch.png")
    result = CliRunner().invoke(main, ["generate", "a lighthouse", "-I", "sketch.png", "-f", "0.6", "-s", "4",
                                       "-S", "11", "-A", "euler", "-C", "4", "--model", str(path)])
    assert result.exit_code == 0, result.output
    saved = tmp_path / result.stdout.splitlines()[0].strip()
    with Image.open(saved) as image:
        got = np.asarray(image.convert("RGB"))
        stored = json.loads(image.text["img2img-studio"])
    assert stored["steps"] == 4 and stored["seed"] == 11 and stored["sampler"] == "euler"

    loaded = load_model(path, "cpu", cache_dir=tmp_path / "outputs" / ".cache")  # the CLI's fitted previews
    request = GenerationRequest(prompt="a lighthouse", strength=0.6, steps=4, seed=11, sampler="euler", cfg_scale=4.0)
    want = np.asarray(generate(loaded, request, init_image=init).image)
    np.testing.assert_array_equal(got, want)


def test_loading_a_single_file_never_opens_a_network_connection(tmp_path, monkeypatch):
    """Offline by construction, not by luck: any connection attempt during the load fails the test."""
    import socket

    attempts = []

    def refuse(self, address, *args, **kwargs):
        attempts.append(address)
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    path, parts = write(tmp_path, "sdxl")
    loaded = load_model(path, "cpu", cache_dir=tmp_path / "cache")
    assert attempts == []
    assert loaded.family == "Stable Diffusion XL"


def test_the_studio_serves_a_turbo_checkpoint_file_with_its_own_plan_and_settings(tmp_path):
    """`python -m server --model file.safetensors`, as scripts/studio.sh runs it: the page's
    health, plan and a job over the socket all come from the checkpoint."""
    import requests
    import socketio

    from tests.helpers import StudioProcess

    path, _ = write(tmp_path, "sdxl", metadata={"modelspec.title": "SDXL Turbo"}, name="sdxl_turbo")
    with StudioProcess(tmp_path / "outputs", tmp_path / "server.log", "--model", path) as studio:
        health = requests.get(studio.url + "/api/health", timeout=10).json()
        assert health["family"] == "Stable Diffusion XL Turbo" and health["model"] == "sdxl_turbo.safetensors"
        assert health["defaults"] == {"sampler": "euler_a", "steps": 2, "cfg_scale": 0.0, "min_taken_steps": 1}
        plan = requests.get(studio.url + "/api/plan", params={"strength": 0.3}, timeout=10).json()
        assert (plan["steps_total"], plan["taken"], plan["raised_for_min_taken"]) == (4, 1, True)

        client = socketio.Client(reconnection=False)
        events = []
        for name in ("job_plan", "job_step", "job_done", "job_error"):
            client.on(name, lambda payload, name=name: events.append((name, payload)))
        client.connect(studio.url, transports=["websocket"], wait_timeout=30)
        try:
            ack = client.call("generate", {"prompt": "a lighthouse", "width": 64, "height": 64, "seed": 5},
                              timeout=30)
            assert "job_id" in ack, ack
            for _ in range(600):
                if any(name in ("job_done", "job_error") for name, _ in events):
                    break
                client.sleep(0.1)
        finally:
            client.disconnect()
    done = [payload for name, payload in events if name == "job_done"]
    assert done, events[-3:]
    metadata = done[0]["metadata"]
    assert (metadata["steps"], metadata["sampler"], metadata["cfg_scale"]) == (2, "euler_a", 0.0)
    steps = [payload["index"] for name, payload in events if name == "job_step"]
    assert steps == [-1, 0, 1]  # the start frame, then the Turbo model's 2 steps
    assert len(list((tmp_path / "outputs").glob("*.png"))) == 1
