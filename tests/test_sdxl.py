"""SDXL through the studio's own loop: the same pixels as diffusers' SDXL pipelines.

The tiny SDXL model (two text encoders, pooled embeddings, size ids, an upcast VAE with SDXL's
scaling factor, SDXL's Euler schedule) runs through `Generation` exactly as SD 1.x does; each
test compares with StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline or
StableDiffusionXLInpaintPipeline built from the very same components, seed and settings."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from diffusers import (
    StableDiffusionXLImg2ImgPipeline,
    StableDiffusionXLInpaintPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from server.engine import SAMPLERS, GenerationCancelled, GenerationRequest, generate
from server.engine.assemble import assemble_model
from server.engine.batch import output_items
from server.engine.conditioning import encode_conditioning
from server.engine.generate import Generation
from server.engine.inpaint import feathered
from server.engine.loading import pick_device
from server.engine.samplers import make_scheduler
from tests.tiny_model import (
    TINY_XL_MODEL_NAME,
    build_tiny_xl_components,
    load_tiny_xl_model,
    sdxl_scheduler_config,
)
from server.engine.variations import slerp
from tests.helpers import sketch

SIZE = 64  # 8x8 latents: fast, and every feature still has room
HOLE = (slice(16, 40), slice(24, 48))  # rows, columns; on the 8-pixel grid (see test_inpaint_*)


@pytest.fixture(scope="module")
def preview_cache(tmp_path_factory):
    """One latent->RGB fit per VAE for the whole module (the models below share the tiny VAE)."""
    return tmp_path_factory.mktemp("sdxl") / "cache"


@pytest.fixture(scope="module")
def xl_model(preview_cache):
    return load_tiny_xl_model("cpu", cache_dir=preview_cache)


@pytest.fixture
def assemble(preview_cache):
    def build(components, **kw):
        return assemble_model(components, sdxl_scheduler_config(), TINY_XL_MODEL_NAME, is_demo=False, source=None,
                              device=pick_device("cpu"), cache_dir=preview_cache, **kw)
    return build


def pixels(image):
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def pipeline(cls, model, sampler, **components):
    """A diffusers SDXL pipeline over the model's own components, with the job's sampler."""
    extra = {} if cls is StableDiffusionXLPipeline else {"requires_aesthetics_score": False}
    pipe = cls(**{**model.pipe.components, "scheduler": make_scheduler(sampler, model.scheduler_config), **components},
               force_zeros_for_empty_prompt=model.pipe.config.force_zeros_for_empty_prompt, add_watermarker=False,
               **extra)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def with_hole(image: Image.Image) -> Image.Image:
    arr = np.asarray(image.convert("RGBA")).copy()
    arr[HOLE[0], HOLE[1], 3] = 0
    return Image.fromarray(arr, "RGBA")


def test_sdxl_components_assemble_into_an_sdxl_pipeline_with_fitted_previews(xl_model):
    pipe = xl_model.pipe
    assert isinstance(pipe, StableDiffusionXLImg2ImgPipeline)
    assert pipe.config.requires_aesthetics_score is False and pipe.config.force_zeros_for_empty_prompt is True
    assert pipe.watermark is None
    assert pipe.vae.config.scaling_factor == 0.13025 and pipe.vae.config.force_upcast
    assert xl_model.native_size == 128
    # The latent->RGB map is fitted to this VAE (SD 1.x's published factors would be wrong for it).
    assert xl_model.latent_rgb.source == "fitted"
    preview = xl_model.previews.render(torch.randn(1, 4, 8, 8), "latent")
    assert preview.size == (8, 8)
    assert xl_model.previews.render(torch.randn(1, 4, 8, 8), "vae").size == (SIZE, SIZE)
    assert not xl_model.previews.available("taesd")  # TAESD stays optional


@pytest.mark.parametrize("strength", [0.4, 0.7])
@pytest.mark.parametrize("sampler", ["euler", "euler_a"])
def test_img2img_equals_the_sdxl_img2img_pipeline(xl_model, sampler, strength):
    init = sketch(SIZE, SIZE, seed=1)
    frames = []
    request = GenerationRequest(prompt="tree on a hill", negative_prompt="blurry", steps=8, strength=strength,
                                cfg_scale=7.5, seed=1234, sampler=sampler)
    ours = generate(xl_model, request, init, on_step=frames.append)
    theirs = pipeline(StableDiffusionXLImg2ImgPipeline, xl_model, sampler)(
        "tree on a hill", negative_prompt="blurry", image=init, strength=strength, num_inference_steps=8,
        guidance_scale=7.5, generator=torch.Generator().manual_seed(1234)).images[0]
    assert np.array_equal(pixels(ours.image), pixels(theirs))
    assert ours.plan.taken == int(8 * strength)
    assert [f.kind for f in frames] == ["init"] + ["x_t"] * ours.plan.taken
    assert [f.step for f in frames[1:]] == list(range(ours.plan.skipped, ours.plan.steps_total))


@pytest.mark.parametrize("sampler", [s for s in SAMPLERS if s not in ("euler", "euler_a")])
def test_every_sampler_runs_on_sdxls_euler_config_as_diffusers_does(xl_model, sampler):
    init = sketch(SIZE, SIZE, seed=2)
    ours = generate(xl_model, GenerationRequest(prompt="fire", steps=4, strength=0.75, seed=5, sampler=sampler), init)
    theirs = pipeline(StableDiffusionXLImg2ImgPipeline, xl_model, sampler)(
        "fire", image=init, strength=0.75, num_inference_steps=4, guidance_scale=7.5,
        generator=torch.Generator().manual_seed(5)).images[0]
    assert np.array_equal(pixels(ours.image), pixels(theirs))


@pytest.mark.parametrize("negative", ["", "dark"])
def test_txt2img_equals_the_sdxl_pipeline(xl_model, negative):
    request = GenerationRequest(prompt="fire", negative_prompt=negative, steps=5, seed=99, width=SIZE, height=48,
                                sampler="euler")
    ours = generate(xl_model, request, None)
    # An empty negative prompt is diffusers' None: zeros, with force_zeros_for_empty_prompt.
    theirs = pipeline(StableDiffusionXLPipeline, xl_model, "euler")(
        "fire", negative_prompt=negative or None, num_inference_steps=5, height=48, width=SIZE, guidance_scale=7.5,
        generator=torch.Generator().manual_seed(99)).images[0]
    assert ours.mode == "txt2img" and ours.image.size == (SIZE, 48) and ours.plan.taken == 5
    assert np.array_equal(pixels(ours.image), pixels(theirs))


def test_conditioning_has_pooled_embeddings_size_ids_and_zeros_for_an_empty_negative(xl_model, assemble):
    request = GenerationRequest(prompt="fire", cfg_scale=7.5)
    cond = encode_conditioning(xl_model.pipe, request, xl_model.device, width=SIZE, height=48)
    added = cond.unet_kwargs["added_cond_kwargs"]
    assert cond.do_cfg and cond.prompt_embeds.shape == (2, 77, 64)  # both encoders' hidden states, side by side
    assert added["text_embeds"].shape == (2, 32)
    assert added["time_ids"].tolist() == [[48, SIZE, 0, 0, 48, SIZE]] * 2  # (h, w) original, crop, target
    assert not cond.prompt_embeds[0].any() and not added["text_embeds"][0].any()  # the negative half is zeros
    # Without force_zeros_for_empty_prompt the empty negative prompt is encoded, as in diffusers.
    encoded = assemble(build_tiny_xl_components(), force_zeros_for_empty_prompt=False)
    cond = encode_conditioning(encoded.pipe, request, encoded.device, width=SIZE, height=48)
    assert cond.prompt_embeds[0].any() and cond.unet_kwargs["added_cond_kwargs"]["text_embeds"][0].any()
    # No guidance at CFG 1: one half only.
    single = encode_conditioning(xl_model.pipe, GenerationRequest(prompt="fire", cfg_scale=1.0), xl_model.device,
                                 SIZE, SIZE)
    assert single.prompt_embeds.shape[0] == 1 and single.unet_kwargs["added_cond_kwargs"]["time_ids"].shape == (1, 6)


def inpaint_and_compare(model, sampler, strength=0.75):
    """Our inpaint vs StableDiffusionXLInpaintPipeline given our fitted init and our mask: the
    final latents are equal, and our image is the pipeline's composited over the init with the
    feathered mask, which keeps the opaque pixels exact."""
    init = sketch(SIZE, SIZE, seed=3)
    request = GenerationRequest(prompt="fire", steps=6, strength=strength, seed=11, sampler=sampler)
    generation = Generation(model, request, with_hole(init))
    ours = generation.run(strength, 11)
    pipe = pipeline(StableDiffusionXLInpaintPipeline, model, sampler)
    settings = dict(image=generation.init_image, mask_image=generation.mask, height=SIZE, width=SIZE,
                    strength=strength, num_inference_steps=6, guidance_scale=7.5)
    latents = pipe("fire", output_type="latent", generator=torch.Generator().manual_seed(11), **settings).images
    theirs = pipe("fire", generator=torch.Generator().manual_seed(11), **settings).images[0]
    assert ours.mode == "inpaint"
    assert torch.equal(ours.latents, latents)
    expected = Image.composite(theirs, generation.init_image, feathered(generation.mask))
    assert np.array_equal(pixels(ours.image), pixels(expected))
    far = np.ones((SIZE, SIZE), bool)
    far[HOLE[0].start - 4: HOLE[0].stop + 4, HOLE[1].start - 4: HOLE[1].stop + 4] = False
    assert np.array_equal(pixels(ours.image)[far], pixels(init)[far])
    return ours


@pytest.mark.parametrize("sampler", ["euler", "euler_a"])
def test_inpaint_with_a_4_channel_unet_equals_the_sdxl_inpaint_pipeline(xl_model, sampler):
    """Latent blending. Compared at strength < 1: at exactly 1.0 the pipeline starts from pure
    noise (is_strength_max), while the studio noises the init as img2img does (see generate.py)."""
    inpaint_and_compare(xl_model, sampler)


def test_inpaint_with_a_9_channel_unet_equals_the_sdxl_inpaint_pipeline(assemble):
    components = build_tiny_xl_components()
    components["unet"] = UNet2DConditionModel.from_config({**components["unet"].config, "in_channels": 9}).eval()
    seen = []
    components["unet"].conv_in.register_forward_hook(lambda mod, args, out: seen.append(args[0].shape[1]))
    inpaint_and_compare(assemble(components), "euler_a")
    assert seen and set(seen) == {9}


def test_sweep_items_equal_single_runs(xl_model):
    init = sketch(SIZE, SIZE, seed=4)
    request = GenerationRequest(prompt="fire", steps=6, seed=9, strengths=(0.5, 0.8), init_image="x", sampler="euler")
    generation = Generation(xl_model, request, init)
    swept = [generation.run(i.strength, i.seed, i.with_variations, item=i.index) for i in output_items(request)]
    single = generate(xl_model, GenerationRequest(prompt="fire", steps=6, seed=9, strength=0.8, sampler="euler"), init)
    assert [(r.plan.taken, r.plan.skipped) for r in swept] == [(3, 3), (4, 2)]
    assert np.array_equal(pixels(swept[1].image), pixels(single.image))


def test_variations_blend_the_starting_noise_as_diffusers_would_take_it(xl_model):
    """A txt2img variation equals the pipeline given the slerped noise as its `latents`."""
    base = dict(prompt="sun", steps=4, seed=3, width=SIZE, height=SIZE, sampler="euler")
    plain = generate(xl_model, GenerationRequest(**base), None)
    assert np.array_equal(pixels(generate(xl_model, GenerationRequest(**base, with_variations=((7, 0.0),)), None).image),
                          pixels(plain.image))
    varied = generate(xl_model, GenerationRequest(**base, variation_amount=0.3, variation_seed=7), None)
    assert varied.with_variations == ((7, 0.3),) and not np.array_equal(pixels(varied.image), pixels(plain.image))
    shape = (1, 4, SIZE // 8, SIZE // 8)
    noise = slerp(0.3, randn_tensor(shape, generator=torch.Generator().manual_seed(3)),
                  randn_tensor(shape, generator=torch.Generator().manual_seed(7)))
    theirs = pipeline(StableDiffusionXLPipeline, xl_model, "euler")(
        "sun", latents=noise, num_inference_steps=4, height=SIZE, width=SIZE, guidance_scale=7.5,
        generator=torch.Generator().manual_seed(3)).images[0]
    assert np.array_equal(pixels(varied.image), pixels(theirs))


def _count_decodes(model):
    calls = []
    return calls, model.pipe.vae.decoder.register_forward_hook(lambda *a: calls.append(1))


def test_cancel_lands_within_a_step_and_skips_the_decode(xl_model):
    frames = []
    calls, handle = _count_decodes(xl_model)
    try:
        with pytest.raises(GenerationCancelled):
            generate(xl_model, GenerationRequest(prompt="x", steps=10, strength=1.0, seed=1, sampler="euler"),
                     sketch(SIZE, SIZE, seed=5), on_step=frames.append, should_cancel=lambda: len(frames) >= 3)
    finally:
        handle.remove()
    assert calls == [] and [f.index for f in frames] == [-1, 0, 1]


def test_x0_previews_are_produced_and_cleaner_than_x_t(xl_model):
    init = sketch(SIZE, SIZE, seed=6)
    x_t, x0 = [], []
    base = dict(prompt="lake", steps=6, strength=1.0, seed=3, sampler="euler")
    final = generate(xl_model, GenerationRequest(**base, preview_kind="x_t"), init, on_step=x_t.append)
    generate(xl_model, GenerationRequest(**base, preview_kind="x0"), init, on_step=x0.append)
    assert [f.kind for f in x0] == ["init"] + ["x0"] * final.plan.taken
    assert (x0[2].latents - final.latents).abs().mean() < (x_t[2].latents - final.latents).abs().mean()
    assert xl_model.previews.render(x0[2].latents, "latent").size == (SIZE // 8, SIZE // 8)


def test_float16_unet_keeps_the_vae_in_float32_and_equals_the_upcasting_pipeline(assemble):
    """A float16 model (what a GPU runs) on the CPU: the SDXL VAE stays float32, and casting at its
    boundary gives what the pipeline's upcast-around-each-call gives."""
    model = assemble(build_tiny_xl_components(), dtype=torch.float16)
    assert model.dtype == torch.float16 and model.pipe.unet.dtype == torch.float16
    assert model.pipe.vae.dtype == torch.float32
    init = sketch(SIZE, SIZE, seed=7)
    frames = []
    ours = generate(model, GenerationRequest(prompt="fire", steps=4, strength=0.5, seed=2, sampler="euler"), init,
                    on_step=frames.append)
    assert ours.latents.dtype == torch.float16 and frames[-1].latents.dtype == torch.float16
    # The pipeline gets a float16 VAE of its own (it moves it to float32 and back on every call).
    pipe = pipeline(StableDiffusionXLImg2ImgPipeline, model, "euler", vae=copy.deepcopy(model.pipe.vae).half())
    theirs = pipe("fire", image=init, strength=0.5, num_inference_steps=4, guidance_scale=7.5,
                  generator=torch.Generator().manual_seed(2)).images[0]
    assert np.array_equal(pixels(ours.image), pixels(theirs))
    assert model.previews.render(frames[-1].latents, "vae").size == (SIZE, SIZE)  # float16 latents, float32 VAE
