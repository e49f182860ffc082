"""Loading a model folder the way a real checkpoint is loaded, and the preview decoders."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import AutoencoderTiny

from server.engine import GenerationRequest, ModelLoadError, generate, load_model
from server.engine.previews import SHIPPED_FILE, fit_latent_rgb, save_shipped_latent_rgb, sd_factors
from tests.helpers import sketch


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory, tiny_model):
    """The tiny model written out in diffusers' folder format, plus a (random) TAESD."""
    folder = tmp_path_factory.mktemp("models") / "tiny-sd"
    tiny_model.pipe.save_pretrained(folder)
    torch.manual_seed(0)
    AutoencoderTiny().save_pretrained(folder / "taesd")  # TAESD's own config, random weights
    return folder


def test_folder_loads_and_gives_the_same_pixels(model_folder, tiny_model, tmp_path):
    progress = []
    loaded = load_model(model_folder, "cpu", cache_dir=tmp_path, progress=lambda f, m: progress.append((f, m)))
    assert loaded.name == "tiny-sd" and not loaded.is_demo and loaded.native_size == 128
    assert [m for _, m in progress][-1] == "ready"
    assert [f for f, _ in progress] == sorted(f for f, _ in progress), "progress only moves forward"
    request = GenerationRequest(prompt="tree", steps=5, strength=0.6, seed=11)
    a = generate(loaded, request, sketch(seed=1))
    b = generate(tiny_model, request, sketch(seed=1))
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image))


def test_latent_preview_map_is_cached_beside_the_outputs(model_folder, tmp_path):
    load_model(model_folder, "cpu", cache_dir=tmp_path)
    cached = list(tmp_path.glob("latent-rgb-*.json"))
    assert len(cached) == 1
    stored = json.loads(cached[0].read_text())
    assert stored["source"] == "fitted"
    again = load_model(model_folder, "cpu", cache_dir=tmp_path)
    assert again.latent_rgb.weights == stored["weights"]


def test_the_preview_cache_is_found_again_by_the_next_process():
    """Each start is a new process with its own hash seed, and a VAE built from a family's
    published config (as single files are) records the defaults it filled in, in set order:
    the cache key must depend on neither."""
    import os
    import subprocess
    import sys

    script = ("import json, torch; from diffusers import AutoencoderKL; from server.engine.previews import "
              "latent_rgb_cache_key; c = json.load(open('server/engine/model_configs/sd1.json'))['vae']; "
              "c.update(block_out_channels=[32, 32], down_block_types=['DownEncoderBlock2D'] * 2, "
              "up_block_types=['UpDecoderBlock2D'] * 2); torch.manual_seed(0); "
              "print(latent_rgb_cache_key(AutoencoderKL.from_config(c)))")
    root = Path(__file__).resolve().parent.parent
    keys = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=root,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip()
            for seed in ("1", "2", "3", "4")}
    assert len(keys) == 1 and len(keys.pop()) == 24


def test_a_map_shipped_in_the_model_folder_is_used_only_for_its_own_vae(tiny_model, tmp_path):
    folder = tmp_path / "model"
    tiny_model.pipe.save_pretrained(folder)
    on_sketches = fit_latent_rgb(tiny_model.pipe.vae, 128, "cpu", torch.float32,
                                 torch.stack([torch.tensor(np.asarray(sketch(seed=s)), dtype=torch.float32)
                                              .permute(2, 0, 1) / 127.5 - 1 for s in range(4)]))
    save_shipped_latent_rgb(folder, tiny_model.pipe.vae, on_sketches)
    loaded = load_model(folder, "cpu", cache_dir=tmp_path / "cache")
    assert loaded.latent_rgb.source == "shipped" and loaded.latent_rgb.weights == on_sketches.weights
    assert not list((tmp_path / "cache").glob("latent-rgb-*.json"))  # nothing fitted at load

    stale = json.loads((folder / SHIPPED_FILE).read_text())
    stale["vae_key"] = "another-vae"
    (folder / SHIPPED_FILE).write_text(json.dumps(stale))
    assert load_model(folder, "cpu", cache_dir=tmp_path / "cache").latent_rgb.source == "fitted"


def test_fitted_map_tracks_the_vae_better_than_sd_factors(tiny_model):
    """For a VAE that is not SD's, the least-squares map must beat the published SD factors."""
    vae = tiny_model.pipe.vae
    fitted = fit_latent_rgb(vae, 128, "cpu", torch.float32)
    image = torch.tensor(np.asarray(sketch(seed=12)), dtype=torch.float32).permute(2, 0, 1)[None] / 127.5 - 1
    with torch.no_grad():
        latents = vae.encode(image).latent_dist.mean * vae.config.scaling_factor
        decoded = vae.decode(latents / vae.config.scaling_factor).sample.clamp(-1, 1)
    target = torch.nn.functional.avg_pool2d(decoded, 8)[0].permute(1, 2, 0)
    target = ((target + 1) / 2 * 255).numpy()

    def error(mapping):
        return np.abs(np.asarray(mapping.apply(latents), dtype=np.float32) - target).mean()

    assert error(fitted) < error(sd_factors())


def test_taesd_previews_when_the_folder_ships_one(model_folder, tmp_path):
    loaded = load_model(model_folder, "cpu", cache_dir=tmp_path)
    assert loaded.previews.available("taesd")
    frames = []
    generate(loaded, GenerationRequest(prompt="x", steps=3, strength=1.0, seed=1, preview="taesd"),
             sketch(seed=2), on_step=frames.append)
    image = loaded.previews.render(frames[-1].latents, "taesd")
    assert image.size == (128, 128)  # TAESD decodes to full size, unlike the 16x16 latent map
    assert loaded.previews.render(frames[-1].latents, "vae").size == (128, 128)
    assert loaded.previews.render(frames[-1].latents, "latent").size == (16, 16)


def test_missing_and_wrong_folders_explain_themselves(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "nope", "cpu")
    with pytest.raises(ModelLoadError, match="model_index.json"):
        load_model(tmp_path, "cpu")
    flux = tmp_path / "flux"
    flux.mkdir()
    (flux / "model_index.json").write_text(json.dumps({"_class_name": "FluxPipeline"}))
    with pytest.raises(ModelLoadError, match="FluxPipeline model; this studio runs Stable Diffusion 1.x/2.x and SDXL"):
        load_model(flux, "cpu")
    refiner = tmp_path / "refiner"
    refiner.mkdir()
    (refiner / "model_index.json").write_text(json.dumps(
        {"_class_name": "StableDiffusionXLImg2ImgPipeline", "text_encoder": [None, None]}))
    with pytest.raises(ModelLoadError, match="SDXL refiner"):
        load_model(refiner, "cpu")


def test_unavailable_device_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ModelLoadError, match="CUDA"):
        load_model(None, "cuda")
    with pytest.raises(ModelLoadError, match="CUDA"):
        load_model(None, "cuda:1")
    with pytest.raises(ModelLoadError, match="not a device"):
        load_model(None, "gpu-please")
