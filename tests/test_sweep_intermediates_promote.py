"""Strength sweeps, saved intermediates and promoting a strip step to a full decode."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from server.storage.contact_sheet import GAP
from server.engine import GenerationRequest, generate
from server.worker.latent_cache import LatentCache
from tests.helpers import collect_events, job_ended, sketch, upload


def px(image):
    return np.asarray(image.convert("RGB")).astype(np.int16)


def run_job(sio, payload):
    job_id = sio.emit("generate", payload, callback=True)["job_id"]
    events = [(n, p) for n, p in collect_events(sio, job_ended(job_id)) if p.get("job_id") == job_id]
    assert events[-1][0] == "job_done", events[-1]
    return job_id, events


@pytest.fixture
def outputs_dir(ready_app):
    return ready_app.extensions["studio"].studio.outputs_dir


def test_sweep_items_equal_single_runs_and_share_the_encodings(tiny_model):
    """Each sweep item equals its own run; the init image and prompt are encoded once per sweep."""
    from server.engine.batch import output_items
    from server.engine.generate import Generation

    init = sketch(seed=3)
    request = GenerationRequest(prompt="fire", steps=10, seed=9, strengths=(0.2, 0.4, 0.6, 0.8), init_image="x")
    calls = {"vae_encoder": 0, "text_encoder": 0}
    hooks = [tiny_model.pipe.vae.encoder.register_forward_hook(lambda *a: calls.__setitem__("vae_encoder", calls["vae_encoder"] + 1)),
             tiny_model.pipe.text_encoder.register_forward_hook(lambda *a: calls.__setitem__("text_encoder", calls["text_encoder"] + 1))]
    try:
        generation = Generation(tiny_model, request, init)
        swept = [generation.run(i.strength, i.seed, i.with_variations, item=i.index) for i in output_items(request)]
        sweep_calls = dict(calls)
        calls.update(vae_encoder=0, text_encoder=0)
        single = generate(tiny_model, GenerationRequest(prompt="fire", steps=10, seed=9, strength=0.6), init)
    finally:
        for hook in hooks:
            hook.remove()
    assert sweep_calls == calls  # four outputs, the encoding work of one
    assert [(r.plan.taken, r.plan.skipped) for r in swept] == [(2, 8), (4, 6), (6, 4), (8, 2)]
    assert np.array_equal(px(swept[2].image), px(single.image))


def test_sweep_job_saves_each_output_and_a_labelled_contact_sheet(socket_client, client, outputs_dir):
    init = upload(client, sketch(seed=4))
    sio = socket_client()
    settings = {"prompt": "fire", "init_image": init["id"], "steps": 10, "seed": 31}
    _, events = run_job(sio, {**settings, "strengths": [0.2, 0.4, 0.6, 0.8]})
    plans = [p for n, p in events if n == "job_plan"]
    assert [(p["strength"], p["taken"], p["skipped"], p["item"], p["items"]) for p in plans] == [
        (0.2, 2, 8, 0, 4), (0.4, 4, 6, 1, 4), (0.6, 6, 4, 2, 4), (0.8, 8, 2, 3, 4)]
    done = events[-1][1]
    images = [Image.open(outputs_dir / o["name"]) for o in done["outputs"]]
    assert [o["metadata"]["strength"] for o in done["outputs"]] == [0.2, 0.4, 0.6, 0.8]
    # The same seed and strength run alone gives the same pixels.
    _, alone = run_job(sio, {**settings, "strength": 0.4})
    assert np.array_equal(px(Image.open(outputs_dir / alone[-1][1]["name"])), px(images[1]))
    # The contact sheet holds the init, then each output, unchanged, side by side in order.
    sheet = Image.open(outputs_dir / done["contact_sheet"]["name"])
    assert sheet.width == 5 * 128 + 6 * GAP
    for k, image in enumerate([sketch(seed=4)] + images):
        x = GAP + k * (128 + GAP)
        assert np.array_equal(px(sheet.crop((x, GAP, x + 128, GAP + 128))), px(image))
    # ...with a label under each (ink below the images, inside each column).
    label_band = px(sheet.crop((0, GAP + 128, sheet.width, sheet.height))).sum(axis=2)
    for k in range(5):
        x = GAP + k * (128 + GAP)
        assert (label_band[:, x:x + 128] > 300).any()


def test_a_sweep_needs_an_init_image(socket_client):
    ack = socket_client().emit("generate", {"prompt": "fire", "strengths": [0.2, 0.4]}, callback=True)
    assert "init image" in ack["error"]


@pytest.mark.parametrize("kind", ["vae", "preview"])
def test_saved_intermediates_one_file_per_taken_step(socket_client, client, outputs_dir, kind):
    init = upload(client, sketch(seed=5))
    # preview "latent": the preview decoder is the map at 1x ("auto" picks by measured cost).
    _, events = run_job(socket_client(), {"prompt": "fire", "init_image": init["id"], "steps": 10, "strength": 0.7,
                                          "seed": 3, "save_intermediates": kind, "preview": "latent"})
    done = events[-1][1]
    folder = outputs_dir / "intermediates" / done["name"].removesuffix(".png")
    assert done["outputs"][0]["intermediates_dir"].endswith(f"intermediates/{folder.name}")
    steps = sorted(p.name for p in folder.glob("step-*.png"))
    assert steps == [f"step-{k:03d}.png" for k in range(4, 11)]  # 3 skipped, 7 taken
    assert (folder / "init.png").is_file()
    sizes = {Image.open(p).size for p in folder.iterdir()}
    assert sizes == ({(128, 128)} if kind == "vae" else {(16, 16)})  # full decode, or the latent preview


def test_intermediates_are_off_by_default(socket_client, client, outputs_dir):
    init = upload(client, sketch(seed=5))
    run_job(socket_client(), {"prompt": "fire", "init_image": init["id"], "steps": 4, "seed": 3})
    assert not (outputs_dir / "intermediates").exists()


def test_promote_decodes_the_cached_latent_with_the_full_vae(ready_app, socket_client, client, tiny_model):
    init_image = sketch(seed=6)
    init = upload(client, init_image)
    sio = socket_client()
    settings = {"prompt": "fire", "steps": 10, "strength": 0.7, "seed": 12}
    job_id, _ = run_job(sio, {**settings, "init_image": init["id"]})
    # The same latents, computed again directly, decoded directly with the pipeline's own VAE.
    frames = {}
    generate(tiny_model, GenerationRequest(**settings), init_image, on_step=lambda f: frames.__setitem__(f.index, f.latents))
    pipe = tiny_model.pipe
    for index in (-1, 2):
        ack = sio.emit("promote", {"job_id": job_id, "index": index}, callback=True)
        assert ack["ok"] and ack["mime"] == "image/png"
        with torch.no_grad():
            decoded = pipe.vae.decode(frames[index] / pipe.vae.config.scaling_factor, return_dict=False)[0]
        expected = pipe.image_processor.postprocess(decoded, output_type="pil")[0]
        assert np.array_equal(px(Image.open(io.BytesIO(ack["image"]))), px(expected))


def test_promote_after_eviction_says_why(ready_app, socket_client, client):
    ready_app.extensions["studio"].studio.latents = LatentCache(max_jobs=1)
    init = upload(client, sketch(seed=7))
    sio = socket_client()
    first, _ = run_job(sio, {"prompt": "a", "init_image": init["id"], "steps": 4, "seed": 1})
    run_job(sio, {"prompt": "b", "init_image": init["id"], "steps": 4, "seed": 2})
    ack = sio.emit("promote", {"job_id": first, "index": 0}, callback=True)
    assert "no longer kept" in ack["error"] and "last 1 jobs" in ack["error"]
    assert "error" in sio.emit("promote", {"job_id": first, "index": "x"}, callback=True)
