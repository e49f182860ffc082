"""The patch decoder: full-size previews from a linear map of each latent pixel's 3x3 neighbourhood.

Its quality is measured against what a person would otherwise see: the 4x3 latent map's picture
(1x the latent size) drawn smoothly at full size, as the page draws it. Both are compared with the
VAE's own decode at full size, on pictures neither map was fitted on.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL
from PIL import Image

from training.demo_model.scenes import dataset
from server.engine import GenerationRequest, generate, load_model
from server.engine.loading import DEMO_MODEL_DIR
from server.engine.previews import (SHIPPED_FILE, SHIPPED_PATCH_FILE, PreviewRenderer, fit_latent_rgb, fit_patch_decoder,
                             to_pil)
from tests.helpers import sketch

HELD_OUT_SEED = 424242  # the demo's maps were fitted on dataset(48, seed 7) and latents from seeds 10000+


def as_tensor(images) -> torch.Tensor:
    """uint8 H x W x 3 pictures -> N x 3 x H x W in [-1, 1], as the VAE takes them."""
    return torch.stack([torch.tensor(np.asarray(i), dtype=torch.float32).permute(2, 0, 1) / 127.5 - 1 for i in images])


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32)


def errors(renderer: PreviewRenderer, latents: torch.Tensor) -> tuple[float, float]:
    """Mean absolute error, in 0-255 pixel units at full size, against the VAE's decode of each latent:
    (the patch decoder's picture, the latent map's picture drawn bilinearly at full size)."""
    vae = renderer.vae
    with torch.no_grad():  # one batch: the same decode the "vae" preview makes, picture by picture
        decoded = vae.decode(latents / vae.config.scaling_factor).sample.float()
    patch, smooth_map = [], []
    for latent, exact in zip(latents, decoded):
        exact = pixels(to_pil(exact.permute(1, 2, 0)))
        size = exact.shape[1::-1]
        patch.append(np.abs(pixels(renderer.render(latent[None], "patch")) - exact).mean())
        upscaled = renderer.render(latent[None], "latent").resize(size, Image.Resampling.BILINEAR)
        smooth_map.append(np.abs(pixels(upscaled) - exact).mean())
    return float(np.mean(patch)), float(np.mean(smooth_map))


def encoded(vae, images) -> torch.Tensor:
    with torch.no_grad():
        return vae.encode(as_tensor(images)).latent_dist.mean * vae.config.scaling_factor


def test_the_demo_ships_a_small_patch_decoder_tied_to_its_vae(demo_model):
    assert (DEMO_MODEL_DIR / SHIPPED_PATCH_FILE).stat().st_size < 200_000
    assert demo_model.previews.patch.source == "shipped" and demo_model.previews.patch.factor == 8
    assert demo_model.previews.render(torch.zeros(1, 4, 16, 12), "patch").size == (96, 128)  # W x H, 8x


def test_on_held_out_scenes_the_patch_decoder_is_closer_to_the_vae_than_the_smoothed_map(demo_model):
    scenes, _captions = dataset(8, HELD_OUT_SEED, 128)
    latents = encoded(demo_model.pipe.vae, scenes)
    patch_error, map_error = errors(demo_model.previews, latents)
    assert patch_error < map_error


@pytest.fixture(scope="module")
def demo_job_latents(demo_model):
    """Every taken step's x_t and x0 of six jobs (txt2img and img2img) with prompts and seeds of their own."""
    prompts = ["a red house under a blue sky", "a green tree beside a lake at night", "a yellow sun over hills",
               "a small boat on the sea", "a fire in a dark forest", "a white cat on a red roof"]
    x_t, x0 = [], []
    for k, prompt in enumerate(prompts):
        init = sketch(seed=k + 30) if k % 2 else None
        request = GenerationRequest.from_payload({"prompt": prompt, "seed": HELD_OUT_SEED + k, "steps": 8,
                                                  "strength": 0.8 if init else 1.0, "preview": "latent"},
                                                 defaults=demo_model.defaults)
        frames = []
        generate(demo_model, request, init, on_step=frames.append)
        x_t += [f.latents for f in frames if f.x0 is not None]
        x0 += [f.x0 for f in frames if f.x0 is not None]
    return torch.cat(x_t), torch.cat(x0)


@pytest.mark.parametrize("kind", ["x_t", "x0"])
def test_on_the_steps_of_jobs_the_patch_decoder_is_closer_to_the_vae_than_the_smoothed_map(demo_model,
                                                                                           demo_job_latents, kind):
    """What the strip (x_t) and the large view (x0) show. Not every single picture is closer (a
    linear map cannot follow this small VAE everywhere), so the test takes the mean over 6 jobs."""
    latents = demo_job_latents[0 if kind == "x_t" else 1]
    patch_error, map_error = errors(demo_model.previews, latents)
    assert patch_error < map_error


@pytest.fixture
def demo_copy(tmp_path):
    """The demo model's folder without its shipped preview maps: they are fitted at load."""
    folder = tmp_path / "demo"
    shutil.copytree(DEMO_MODEL_DIR, folder)
    (folder / SHIPPED_FILE).unlink()
    (folder / SHIPPED_PATCH_FILE).unlink()
    return folder


def test_fitted_at_load_on_generic_colour_fields_it_still_beats_the_smoothed_map(demo_copy, tmp_path):
    """A model folder that ships no maps: both are fitted at load on the same generic calibration
    pictures, so neither knows the demo's scenes."""
    model = load_model(demo_copy, "cpu", cache_dir=tmp_path / "outputs" / ".cache")
    assert (model.previews.patch.source, model.latent_rgb.source) == ("fitted", "fitted")
    latents = encoded(model.pipe.vae, [sketch(seed=s) for s in range(4)] + list(dataset(4, HELD_OUT_SEED, 128)[0]))
    patch_error, map_error = errors(model.previews, latents)
    assert patch_error < map_error


def test_the_fitted_decoder_is_cached_under_outputs_keyed_by_the_vae(demo_copy, tmp_path):
    cache = tmp_path / "outputs" / ".cache"
    first = load_model(demo_copy, "cpu", cache_dir=cache)
    files = sorted(p.name for p in cache.iterdir())
    assert len(files) == 2 and files[0].startswith("latent-rgb-") and files[1].startswith("patch-decoder-")
    assert files[0].removeprefix("latent-rgb-").removesuffix(".json") == \
        files[1].removeprefix("patch-decoder-").removesuffix(".safetensors")  # one key: the VAE's
    written = (cache / files[1]).stat().st_mtime_ns
    again = load_model(demo_copy, "cpu", cache_dir=cache)
    assert torch.equal(again.previews.patch.weights, first.previews.patch.weights)
    assert (cache / files[1]).stat().st_mtime_ns == written and sorted(p.name for p in cache.iterdir()) == files

    # Another VAE (here: one weight changed) gets a fit of its own, never this one.
    vae_file = demo_copy / "vae" / "diffusion_pytorch_model.safetensors"
    from safetensors.torch import load_file, save_file

    weights = load_file(vae_file)
    weights["decoder.conv_out.bias"] = weights["decoder.conv_out.bias"] + 0.25
    save_file(weights, vae_file)
    load_model(demo_copy, "cpu", cache_dir=cache)
    assert len(list(cache.glob("patch-decoder-*.safetensors"))) == 2


def test_a_shipped_decoder_is_used_only_for_its_own_vae(demo_model, tmp_path):
    folder = tmp_path / "demo"
    shutil.copytree(DEMO_MODEL_DIR, folder)
    vae_file = folder / "vae" / "diffusion_pytorch_model.safetensors"
    from safetensors.torch import load_file, save_file

    weights = load_file(vae_file)
    weights["decoder.conv_out.bias"] = weights["decoder.conv_out.bias"] + 0.25
    save_file(weights, vae_file)
    model = load_model(folder, "cpu", cache_dir=tmp_path / "cache")
    assert model.previews.patch.source == "fitted"  # refitted: the shipped one belongs to another VAE
    assert not torch.equal(model.previews.patch.weights, demo_model.previews.patch.weights)


def test_a_linked_cache_folder_gets_no_file_and_the_model_still_has_previews(demo_copy, tmp_path):
    outputs, elsewhere = tmp_path / "outputs", tmp_path / "elsewhere"
    outputs.mkdir()
    elsewhere.mkdir()
    (outputs / ".cache").symlink_to(elsewhere, target_is_directory=True)
    model = load_model(demo_copy, "cpu", cache_dir=outputs / ".cache")
    assert list(elsewhere.iterdir()) == []
    assert model.previews.render(torch.zeros(1, 4, 16, 16), "patch").size == (128, 128)


def test_the_patch_size_is_the_vaes_own_scale_factor():
    """A 3-block VAE downsamples 4x: its patches are 4x4, and the fit still beats the smoothed map."""
    torch.manual_seed(0)
    vae = AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
                        block_out_channels=(16, 16, 32), layers_per_block=1, latent_channels=4, norm_num_groups=8,
                        sample_size=64).eval()
    patch = fit_patch_decoder(vae, 64, "cpu", torch.float32)
    assert patch.factor == 4 and tuple(patch.weights.shape) == (4 * 9 + 1, 3 * 4 * 4)
    renderer = PreviewRenderer(vae, fit_latent_rgb(vae, 64, "cpu", torch.float32), patch=patch)
    latents = encoded(vae, [sketch(64, 64, seed=s) for s in (50, 51, 52)])
    assert renderer.render(latents[:1], "patch").size == (64, 64)
    patch_error, map_error = errors(renderer, latents)
    assert patch_error < map_error
