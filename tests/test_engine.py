"""The engine without Flask: same pixels as diffusers, determinism, strength 0, cancel, samplers."""
import numpy as np
import pytest
import torch
from diffusers import LCMScheduler, StableDiffusionImg2ImgPipeline, StableDiffusionPipeline

from server.engine import SAMPLERS, GenerationCancelled, GenerationRequest, generate
from server.engine.samplers import make_scheduler

from tests.helpers import sketch


def pixels(image):
    return np.asarray(image, dtype=np.int16)


def diffusers_img2img(model, sampler, init, **kw):
    pipe = StableDiffusionImg2ImgPipeline(
        **{**model.pipe.components, "scheduler": make_scheduler(sampler, model.pipe.scheduler.config)}
    )
    pipe.set_progress_bar_config(disable=True)
    seed = kw.pop("seed")
    return pipe(image=init, generator=torch.Generator().manual_seed(seed), **kw).images[0]


@pytest.mark.parametrize("preview", ["latent", "off"])
@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_img2img_equals_diffusers_pipeline(tiny_model, sampler, preview):
    init = sketch(seed=1)
    frames = []
    request = GenerationRequest(prompt="tree on a hill", negative_prompt="blurry", steps=10, strength=0.7,
                                cfg_scale=7.5, seed=1234, sampler=sampler, preview=preview)
    ours = generate(tiny_model, request, init, on_step=frames.append)
    theirs = diffusers_img2img(tiny_model, sampler, init, prompt="tree on a hill", negative_prompt="blurry",
                               strength=0.7, num_inference_steps=10, guidance_scale=7.5, seed=1234)
    assert np.array_equal(pixels(ours.image), pixels(theirs))
    expected_frames = 0 if preview == "off" else ours.plan.taken
    assert [f.kind for f in frames] == ["init"] + ["x_t"] * expected_frames


def test_txt2img_equals_diffusers_pipeline(tiny_model):
    request = GenerationRequest(prompt="fire", steps=8, seed=99, width=128, height=96)
    ours = generate(tiny_model, request, None)
    pipe = StableDiffusionPipeline(**tiny_model.pipe.components)
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe("fire", num_inference_steps=8, height=96, width=128,
                  generator=torch.Generator().manual_seed(99)).images[0]
    assert ours.mode == "txt2img" and ours.plan.taken == 8
    assert ours.image.size == (128, 96)
    assert np.array_equal(pixels(ours.image), pixels(theirs))


def test_same_seed_same_pixels_and_other_seed_differs(tiny_model):
    init = sketch(seed=2)
    request = GenerationRequest(prompt="river", steps=6, strength=0.6, seed=7)
    first = generate(tiny_model, request, init)
    again = generate(tiny_model, request, init)
    other = generate(tiny_model, GenerationRequest(prompt="river", steps=6, strength=0.6, seed=8), init)
    assert np.array_equal(pixels(first.image), pixels(again.image))
    assert not np.array_equal(pixels(first.image), pixels(other.image))


def test_random_seed_is_reported_and_reproduces(tiny_model):
    init = sketch(seed=3)
    result = generate(tiny_model, GenerationRequest(prompt="sun", steps=4, strength=0.5), init)
    assert isinstance(result.seed, int)
    replay = generate(tiny_model, GenerationRequest(prompt="sun", steps=4, strength=0.5, seed=result.seed), init)
    assert np.array_equal(pixels(result.image), pixels(replay.image))


def _count_decodes(model):
    calls = []
    handle = model.pipe.vae.decoder.register_forward_hook(lambda *a: calls.append(1))
    return calls, handle


def test_strength_zero_returns_init_without_touching_the_model(tiny_model):
    init = sketch(seed=4)
    calls, handle = _count_decodes(tiny_model)
    try:
        result = generate(tiny_model, GenerationRequest(prompt="x", steps=10, strength=0.0, seed=1), init)
    finally:
        handle.remove()
    assert calls == []
    assert np.array_equal(pixels(result.image), pixels(init))
    assert (result.plan.taken, result.plan.skipped) == (0, 10)


def test_cancel_stops_within_a_step_and_skips_the_final_decode(tiny_model):
    init = sketch(seed=5)
    frames = []
    calls, handle = _count_decodes(tiny_model)
    try:
        with pytest.raises(GenerationCancelled):
            generate(tiny_model, GenerationRequest(prompt="x", steps=20, strength=1.0, seed=1, preview="latent"),
                     init, on_step=frames.append, should_cancel=lambda: len(frames) >= 4)
    finally:
        handle.remove()
    assert calls == [], "a cancelled job must not run the VAE decode"
    assert [f.index for f in frames] == [-1, 0, 1, 2], "no step runs after the cancel is seen"


def test_x0_previews_are_cleaner_than_x_t(tiny_model):
    """x0 frames are the predicted result, so they sit closer to the final latents than x_t frames."""
    init = sketch(seed=6)
    x_t, x0 = [], []
    base = dict(prompt="lake", steps=10, strength=1.0, seed=3)
    final = generate(tiny_model, GenerationRequest(**base, preview_kind="x_t"), init, on_step=x_t.append)
    generate(tiny_model, GenerationRequest(**base, preview_kind="x0"), init, on_step=x0.append)
    assert [f.kind for f in x0[1:]] == ["x0"] * 10
    early_xt = (x_t[2].latents - final.latents).abs().mean()
    early_x0 = (x0[2].latents - final.latents).abs().mean()
    assert early_x0 < early_xt


def test_fit_shrinks_keeping_aspect_and_warns_when_small(tiny_model):
    init = sketch(width=400, height=200, seed=7)
    result = generate(tiny_model, GenerationRequest(prompt="x", steps=2, strength=0.5, seed=1,
                                                    width=128, height=128, fit=True), init)
    assert result.image.size == (128, 64)
    assert any("smaller than this model's native 128" in w for w in result.warnings)


def test_without_fit_the_init_keeps_its_size_rounded_down(tiny_model):
    init = sketch(width=139, height=133, seed=8)
    result = generate(tiny_model, GenerationRequest(prompt="x", steps=2, strength=0.0, seed=1), init)
    assert result.image.size == (136, 128)
    # Rounding trims the edge rather than resampling, so the kept pixels are the original ones.
    assert np.array_equal(pixels(result.image), pixels(init)[:128, :136])
    assert result.warnings == []


@pytest.mark.parametrize("payload,message", [
    ({"steps": 0}, "steps"),
    ({"strength": 1.5}, "strength"),
    ({"sampler": "plms9000"}, "sampler"),
    ({"width": 100}, "multiple of 8"),
    ({"seed": -1}, "seed"),
    ({"preview": "gif"}, "preview"),
    ({"exact_steps": "yes"}, "exact_steps"),
    ({"cfg_scale": "high"}, "cfg_scale"),
    ({"min_taken_steps": -1}, "min_taken_steps"),
    ({"min_taken_steps": 201}, "min_taken_steps"),
    ({"min_taken_steps": 2.5}, "min_taken_steps"),
    ({"min_taken_steps": True}, "min_taken_steps"),
])
def test_bad_settings_explain_themselves(payload, message):
    with pytest.raises(ValueError, match=message):
        GenerationRequest.from_payload({"prompt": "x", **payload})


# --- few-step models: LCM, and at least N taken steps -------------------------------------------

@pytest.mark.parametrize("steps,strength,cfg_scale", [(1, 1.0, 1.0), (2, 0.5, 1.0), (4, 0.75, 1.5), (4, 1.0, 1.0),
                                                      (6, 0.35, 1.5), (8, 0.6, 1.0)])
def test_lcm_img2img_equals_diffusers_with_lcm_scheduler(tiny_model, steps, strength, cfg_scale):
    """diffusers' own recipe for LCM LoRAs: the img2img pipeline with LCMScheduler swapped in."""
    init = sketch(seed=11)
    frames = []
    request = GenerationRequest(prompt="a red barn", steps=steps, strength=strength, cfg_scale=cfg_scale, seed=77,
                                sampler="lcm", preview_kind="x0")
    ours = generate(tiny_model, request, init, on_step=frames.append)
    pipe = StableDiffusionImg2ImgPipeline(
        **{**tiny_model.pipe.components, "scheduler": LCMScheduler.from_config(tiny_model.pipe.scheduler.config)})
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe(prompt="a red barn", image=init, strength=strength, num_inference_steps=steps,
                  guidance_scale=cfg_scale, generator=torch.Generator().manual_seed(77)).images[0]
    assert np.array_equal(pixels(ours.image), pixels(theirs))
    assert ours.plan.taken == int(steps * strength) and [f.kind for f in frames] == ["init"] + ["x0"] * ours.plan.taken
    # LCM's last step hands back its denoised prediction as the result: the last x0 preview is it.
    assert torch.equal(frames[-1].latents, ours.latents)


@pytest.mark.parametrize("sampler,scheduler_for", [
    ("k_lms", lambda config: make_scheduler("k_lms", config)),
    ("lcm", lambda config: LCMScheduler.from_config(config)),
])
def test_min_taken_steps_runs_the_raised_total(tiny_model, sampler, scheduler_for):
    """10 steps at strength 0.3 would take int(10 * 0.3) = 3; at least 5 taken asks for the
    smallest total N with int(N * 0.3) >= 5, which is 17, and runs exactly what diffusers runs at 17."""
    init = sketch(seed=12)
    frames = []
    request = GenerationRequest(prompt="a red barn", steps=10, strength=0.3, cfg_scale=1.5, seed=5, sampler=sampler,
                                min_taken_steps=5)
    ours = generate(tiny_model, request, init, on_step=frames.append)
    total = next(n for n in range(10, 100) if int(n * 0.3) >= 5)
    assert total == 17 and ours.plan.num_inference_steps == total and ours.plan.raised_for_min_taken
    assert [f.index for f in frames] == [-1, 0, 1, 2, 3, 4]  # the init frame, then 5 taken steps
    pipe = StableDiffusionImg2ImgPipeline(
        **{**tiny_model.pipe.components, "scheduler": scheduler_for(tiny_model.pipe.scheduler.config)})
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe(prompt="a red barn", image=init, strength=0.3, num_inference_steps=total, guidance_scale=1.5,
                  generator=torch.Generator().manual_seed(5)).images[0]
    assert np.array_equal(pixels(ours.image), pixels(theirs))


def test_min_taken_steps_leaves_strength_zero_unchanged(tiny_model):
    init = sketch(seed=13)
    calls, handle = _count_decodes(tiny_model)
    try:
        result = generate(tiny_model, GenerationRequest(prompt="x", steps=10, strength=0.0, seed=1, min_taken_steps=8),
                          init)
    finally:
        handle.remove()
    assert calls == [] and np.array_equal(pixels(result.image), pixels(init))
    assert (result.plan.taken, result.plan.raised_for_min_taken) == (0, False)
