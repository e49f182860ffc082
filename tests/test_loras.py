"""LoRAs in the engine: diffusers' pixels, both key formats, a cached set, clean unloading, refusals.

Every LoRA here is built by tests/lora_files.py on random weights. The reference for each picture is
diffusers' own img2img pipeline, built from fresh copies of the same (seeded) components, with the same
files loaded through `load_lora_weights` + `set_adapters`: the studio must give exactly its pixels."""
from __future__ import annotations

import hashlib
import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionXLImg2ImgPipeline
from peft.tuners.tuners_utils import BaseTunerLayer

from server.engine import GenerationRequest, generate
from server.engine.loras import LoraError, applied_loras, apply_loras, read_lora
from server.engine.samplers import make_scheduler
from tests.tiny_model import (build_tiny_components, build_tiny_xl_components, load_tiny_model,
                                      load_tiny_xl_model)
from tests.helpers import sketch
from tests.lora_files import random_lora, write_diffusers_lora, write_kohya_lora

INIT = sketch(64, 64, seed=1)
REQUEST = GenerationRequest(prompt="tree on a hill", negative_prompt="blurry", steps=6, strength=0.7, cfg_scale=7.5,
                            seed=1234)
XL_REQUEST = GenerationRequest(prompt="tree on a hill", negative_prompt="blurry", steps=6, strength=0.7,
                               cfg_scale=7.5, seed=1234, sampler="euler")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("loras")
    style = random_lora(build_tiny_components(), seed=1)
    detail = random_lora(build_tiny_components(), seed=2, parts=("unet",))  # a UNet-only LoRA
    xl_style = random_lora(build_tiny_xl_components(), seed=3)
    return SimpleNamespace(
        folder=folder,
        style=write_diffusers_lora(style, folder / "style.safetensors"),
        style_kohya=write_kohya_lora(style, folder / "style-kohya.safetensors"),
        detail=write_diffusers_lora(detail, folder / "detail.safetensors"),
        xl_style=write_diffusers_lora(xl_style, folder / "sdxl-style-diffusers.safetensors"),
        xl_style_kohya=write_kohya_lora(xl_style, folder / "sdxl-style.safetensors", sgm=True),  # Kohya's SDXL names
    )


@pytest.fixture(scope="module")
def sd_model(tmp_path_factory):
    return load_tiny_model("cpu", cache_dir=tmp_path_factory.mktemp("previews"))


@pytest.fixture(scope="module")
def xl_model(tmp_path_factory):
    return load_tiny_xl_model("cpu", cache_dir=tmp_path_factory.mktemp("previews-xl"))


@pytest.fixture
def sd(sd_model):
    yield sd_model
    apply_loras(sd_model, [])


@pytest.fixture
def xl(xl_model):
    yield xl_model
    apply_loras(xl_model, [])


@pytest.fixture(scope="module")
def sd_base(sd_model):
    return ours(sd_model)


def ours(model, request=REQUEST) -> np.ndarray:
    return np.asarray(generate(model, request, INIT).image)


def theirs(loras, xl=False, request=REQUEST) -> np.ndarray:
    """diffusers' img2img pipeline over fresh components, with `loras` [(path, weight)] loaded its own way."""
    components = build_tiny_xl_components() if xl else build_tiny_components()
    model_scheduler = components["scheduler"]
    components["scheduler"] = make_scheduler(request.sampler, dict(model_scheduler.config))
    if xl:
        pipe = StableDiffusionXLImg2ImgPipeline(**components, requires_aesthetics_score=False,
                                                force_zeros_for_empty_prompt=True, add_watermarker=False)
    else:
        pipe = StableDiffusionImg2ImgPipeline(**components, safety_checker=None, feature_extractor=None,
                                              requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    for i, (path, _) in enumerate(loras):
        pipe.load_lora_weights(str(path), adapter_name=f"reference-{i}")
    if loras:
        pipe.set_adapters([f"reference-{i}" for i in range(len(loras))], adapter_weights=[w for _, w in loras])
    image = pipe(request.prompt, negative_prompt=request.negative_prompt, image=INIT, strength=request.strength,
                 num_inference_steps=request.steps, guidance_scale=request.cfg_scale,
                 generator=torch.Generator().manual_seed(request.seed)).images[0]
    return np.asarray(image)


def peft_layers(model) -> int:
    return sum(isinstance(m, BaseTunerLayer) for part in ("unet", "text_encoder", "text_encoder_2")
               if getattr(model.pipe, part, None) is not None for m in getattr(model.pipe, part).modules())


def test_unloading_gives_the_base_models_exact_pixels(sd, sd_base, files):
    apply_loras(sd, [(read_lora(files.style_kohya), 1.0)])
    assert peft_layers(sd) > 0
    assert (ours(sd) != sd_base).mean() > 0.5  # the LoRA changes the picture
    state = apply_loras(sd, [])
    assert state.names == [] and peft_layers(sd) == 0  # no wrappers left behind
    np.testing.assert_array_equal(ours(sd), sd_base)


@pytest.mark.parametrize("weight", [0.5, 1.0])
def test_sd_lora_pixels_equal_diffusers_in_both_key_formats(sd, sd_base, files, weight):
    apply_loras(sd, [(read_lora(files.style), weight)])
    diffusers_format = ours(sd)
    np.testing.assert_array_equal(diffusers_format, theirs([(files.style, weight)]))
    apply_loras(sd, [(read_lora(files.style_kohya), weight)])
    np.testing.assert_array_equal(ours(sd), diffusers_format)  # Kohya's names and alpha: the same LoRA
    assert (diffusers_format != sd_base).mean() > 0.5


@pytest.mark.parametrize("weight", [0.5, 1.0])
def test_sdxl_lora_pixels_equal_diffusers_in_both_key_formats(xl, files, weight):
    apply_loras(xl, [(read_lora(files.xl_style_kohya), weight)])
    kohya_format = ours(xl, XL_REQUEST)
    np.testing.assert_array_equal(kohya_format, theirs([(files.xl_style_kohya, weight)], xl=True, request=XL_REQUEST))
    apply_loras(xl, [(read_lora(files.xl_style), weight)])
    np.testing.assert_array_equal(ours(xl, XL_REQUEST), kohya_format)


def test_two_loras_at_once_equal_diffusers_and_dropping_one_keeps_the_other(sd, files):
    both = apply_loras(sd, [(read_lora(files.style_kohya), 0.8), (read_lora(files.detail), 0.6)])
    assert len(both.names) == 2 and both.weights == [0.8, 0.6]
    np.testing.assert_array_equal(ours(sd), theirs([(files.style_kohya, 0.8), (files.detail, 0.6)]))
    loads = both.loads
    one = apply_loras(sd, [(read_lora(files.detail), 0.6)])
    assert one.loads == loads  # dropping a LoRA loads nothing
    assert sd.pipe.get_list_adapters() == {"unet": one.names}  # the text encoder's adapter went with it
    np.testing.assert_array_equal(ours(sd), theirs([(files.detail, 0.6)]))


def test_reapplying_the_same_set_loads_nothing_and_new_weights_only_reweight(sd, files):
    state = apply_loras(sd, [(read_lora(files.style), 1.0)])
    loads, names = state.loads, list(state.names)
    assert sd.pipe.get_list_adapters() == {"unet": names, "text_encoder": names}
    again = apply_loras(sd, [(read_lora(files.style), 1.0)])  # read afresh, as a new job would
    assert again is state and again.loads == loads and again.names == names
    reweighted = apply_loras(sd, [(read_lora(files.style), 0.5)])
    assert reweighted.loads == loads and reweighted.names == names and reweighted.weights == [0.5]
    np.testing.assert_array_equal(ours(sd), theirs([(files.style, 0.5)]))
    twice = apply_loras(sd, [(read_lora(files.style), 0.25), (read_lora(files.style), 0.25)])
    assert twice.loads == loads and twice.weights == [0.5]  # the same file twice adds up, as in A1111
    assert applied_loras(sd).records() == [{"name": "style.safetensors", "weight": 0.5,
                                            "sha256": hashlib.sha256(files.style.read_bytes()).hexdigest()}]


def test_a_lora_for_another_family_is_refused_and_the_model_left_as_it_was(sd, xl, sd_base, files):
    with pytest.raises(LoraError, match=r"^sdxl-style\.safetensors is a LoRA for Stable Diffusion XL .*"
                                        r"the model is Stable Diffusion 1\.x\.$"):
        apply_loras(sd, [(read_lora(files.xl_style_kohya), 1.0)])
    assert peft_layers(sd) == 0
    np.testing.assert_array_equal(ours(sd), sd_base)
    # With a set applied, a refused one leaves that set in place.
    apply_loras(sd, [(read_lora(files.detail), 0.7)])
    with_detail = ours(sd)
    with pytest.raises(LoraError, match="sdxl-style.safetensors"):
        apply_loras(sd, [(read_lora(files.detail), 0.7), (read_lora(files.xl_style_kohya), 1.0)])
    assert applied_loras(sd).weights == [0.7]
    np.testing.assert_array_equal(ours(sd), with_detail)
    with pytest.raises(LoraError, match=r"^style-kohya\.safetensors is a LoRA for Stable Diffusion 1\.x .*"
                                        r"the model is Stable Diffusion XL\.$"):
        apply_loras(xl, [(read_lora(files.style_kohya), 1.0)])
    assert peft_layers(xl) == 0


def test_a_lora_whose_layers_do_not_fit_is_refused_naming_it(sd, sd_base, files, tmp_path):
    misfit = random_lora(build_tiny_components(), seed=5)
    for name, (down, up) in list(misfit.layers["unet"].items()):
        if name.endswith("attn2.to_k"):  # trained for 48-wide text embeddings; this model's are 32 wide
            misfit.layers["unet"][name] = (torch.randn(down.shape[0], 48), up)
    misfit_file = read_lora(write_kohya_lora(misfit, tmp_path / "misfit.safetensors"))
    assert misfit_file.family == "sd1"  # its layout says SD 1.x: only loading finds out
    nowhere = random_lora(build_tiny_components(), seed=6, parts=("unet",))
    nowhere.layers["unet"] = {"extra_" + name: pair for name, pair in nowhere.layers["unet"].items()}
    nowhere_file = read_lora(write_diffusers_lora(nowhere, tmp_path / "nowhere.safetensors"))
    for lora in (misfit_file, nowhere_file):
        with pytest.raises(LoraError, match=rf"^{lora.name} (does not fit this Stable Diffusion 1\.x model|: none)"):
            apply_loras(sd, [(lora, 1.0)])
        assert peft_layers(sd) == 0 and applied_loras(sd).names == []
        np.testing.assert_array_equal(ours(sd), sd_base)
    apply_loras(sd, [(read_lora(files.detail), 0.7)])
    with_detail = ours(sd)
    with pytest.raises(LoraError, match="misfit.safetensors"):
        apply_loras(sd, [(read_lora(files.detail), 0.7), (misfit_file, 1.0)])
    assert len(applied_loras(sd).names) == 1
    assert sd.pipe.get_list_adapters() == {"unet": applied_loras(sd).names}
    np.testing.assert_array_equal(ours(sd), with_detail)


def test_read_lora_tells_family_format_and_parts_from_the_header(files):
    expected = {files.style: ("sd1", "diffusers", ("unet", "text_encoder")),
                files.style_kohya: ("sd1", "kohya", ("unet", "text_encoder")),
                files.detail: ("sd1", "diffusers", ("unet",)),
                files.xl_style: ("sdxl", "diffusers", ("unet", "text_encoder", "text_encoder_2")),
                files.xl_style_kohya: ("sdxl", "kohya", ("unet", "text_encoder", "text_encoder_2"))}
    for path, (family, fmt, parts) in expected.items():
        lora = read_lora(path)
        assert (lora.family, lora.format, lora.parts) == (family, fmt, parts), path.name
        assert lora.size == path.stat().st_size and lora.name == path.name
    assert read_lora(files.style).layers == read_lora(files.style_kohya).layers == 60


def test_read_lora_never_reads_tensor_data(files, tmp_path, monkeypatch):
    import safetensors

    # Every byte after the header overwritten: the answer is the same, because it never looks there.
    header_end = 8 + int.from_bytes(files.style_kohya.read_bytes()[:8], "little")
    garbled = tmp_path / "garbled.safetensors"
    data = bytearray(files.style_kohya.read_bytes())
    data[header_end:] = b"\xff" * (len(data) - header_end)
    garbled.write_bytes(bytes(data))
    monkeypatch.setattr(safetensors, "safe_open", lambda *a, **k: pytest.fail("read_lora opened the tensors"))
    original, copy = read_lora(files.style_kohya), read_lora(garbled)
    assert (copy.family, copy.format, copy.layers, copy.parts) == (original.family, original.format,
                                                                   original.layers, original.parts)
    # A file shorter than its header says (an interrupted download) is refused by name.
    truncated = tmp_path / "half.safetensors"
    truncated.write_bytes(bytes(data[: header_end + 100]))
    with pytest.raises(LoraError, match=r"^half\.safetensors is truncated"):
        read_lora(truncated)


@pytest.mark.parametrize("family, parts, expected", [
    ("sd1", ("unet",), "sd1"), ("sd2", ("unet",), "sd2"), ("sdxl", ("unet",), "sdxl"),
    ("sd2", ("text_encoder",), "sd2"),  # OpenCLIP-H: 1024 wide
    ("sd1", ("text_encoder",), "unknown"),  # CLIP-L alone could be SD 1.x's or SDXL's first encoder
])
def test_full_size_loras_are_told_by_layout_and_width(family, parts, expected, tmp_path):
    from tests.checkpoint_families import build_components

    components = build_components(family, "full", device="meta")  # shapes only
    lora = random_lora(components, rank=1, parts=parts, zeros=True)
    for path in (write_kohya_lora(lora, tmp_path / "k.safetensors", sgm=family == "sdxl"),
                 write_diffusers_lora(lora, tmp_path / "d.safetensors")):
        found = read_lora(path)
        assert found.family == expected, (path.name, found.why)
    if expected == "unknown":
        assert set(found.could_be) == {"sd1", "sdxl"}  # an SD 2.x model still refuses it


@pytest.mark.parametrize("suffix", [".ckpt", ".pt"])
def test_pickle_loras_are_refused_without_loading(suffix, tmp_path, monkeypatch):
    path = tmp_path / f"style{suffix}"
    torch.save({"lora_unet_x.lora_down.weight": torch.zeros(1, 1)}, path)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("a pickle was loaded"))
    with pytest.raises(LoraError, match=rf"^style\{suffix} was refused: .*\.safetensors"):
        read_lora(path)


def test_recommended_settings_beside_a_lora(files, tmp_path):
    lcm = tmp_path / "lcm-lora.safetensors"
    shutil.copy(files.style_kohya, lcm)
    assert read_lora(lcm).defaults == {}
    (tmp_path / "studio_defaults.json").write_text(json.dumps({"steps": 30}))  # the folder's speaks for no LoRA
    assert read_lora(lcm).defaults == {}
    settings = {"sampler": "lcm", "steps": 4, "cfg_scale": 1.0, "min_taken_steps": 1}
    (tmp_path / "lcm-lora.studio_defaults.json").write_text(json.dumps(settings))
    assert read_lora(lcm).defaults == settings
    (tmp_path / "lcm-lora.studio_defaults.json").write_text(json.dumps({"strength": 0.5}))
    with pytest.raises(LoraError, match=r"^lcm-lora\.safetensors: .*strength"):
        read_lora(lcm)
