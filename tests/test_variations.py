"""Variations (-v/-V) and iterations (-n): every variant is reproducible from its metadata."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from server.engine import GenerationRequest, generate
from server.engine.batch import output_items
from server.engine.variations import slerp
from tests.helpers import collect_events, job_ended, sketch, upload


def px(image):
    return np.asarray(image.convert("RGB")).astype(np.int16)


def run(model, **settings):
    init = settings.pop("init", sketch(seed=1))
    return generate(model, GenerationRequest(prompt="fire", steps=6, strength=0.8, seed=42, **settings), init)


def test_slerp_keeps_the_start_at_zero_and_the_noise_scale_in_between():
    a, b = torch.randn(4, 16, 16, generator=torch.Generator().manual_seed(1)), torch.randn(
        4, 16, 16, generator=torch.Generator().manual_seed(2))
    assert torch.equal(slerp(0.0, a, b), a)
    assert torch.allclose(slerp(1.0, a, b), b, atol=1e-5)
    half = slerp(0.5, a, b)
    # A straight average of two independent samples has ~0.71x their norm; slerp keeps it.
    assert abs(half.norm() / a.norm() - 1) < 0.05 and abs((a + b).div(2).norm() / a.norm() - 0.71) < 0.05


def test_amount_zero_equals_the_plain_seed(tiny_model):
    plain = run(tiny_model)
    assert np.array_equal(px(run(tiny_model, variation_amount=0.0, variation_seed=7).image), px(plain.image))
    assert np.array_equal(px(run(tiny_model, with_variations=((7, 0.0),)).image), px(plain.image))


def test_different_amounts_give_different_images_that_stay_near_the_seed(tiny_model):
    plain = px(run(tiny_model).image)
    small = px(run(tiny_model, variation_amount=0.1, variation_seed=7).image)
    large = px(run(tiny_model, variation_amount=0.6, variation_seed=7).image)
    other_seed = px(generate(tiny_model, GenerationRequest(prompt="fire", steps=6, strength=0.8, seed=7),
                             sketch(seed=1)).image)
    assert not np.array_equal(small, plain) and not np.array_equal(small, large)
    # A small variation stays closer to the original than a large one does.
    assert np.abs(small - plain).mean() < np.abs(large - plain).mean()
    assert np.abs(large - other_seed).mean() < np.abs(plain - other_seed).mean()


def test_txt2img_variations_change_the_starting_noise(tiny_model):
    a = generate(tiny_model, GenerationRequest(prompt="sun", steps=4, seed=3), None)
    b = generate(tiny_model, GenerationRequest(prompt="sun", steps=4, seed=3, variation_amount=0.3,
                                               variation_seed=9), None)
    assert b.with_variations == ((9, 0.3),) and not np.array_equal(px(a.image), px(b.image))


def test_items_of_variations_share_the_seed_and_step_the_variation_seed():
    request = GenerationRequest(seed=5, variation_amount=0.25, variation_seed=100, iterations=3,
                                with_variations=((8, 0.5),))
    items = output_items(request)
    assert [i.seed for i in items] == [5, 5, 5]
    assert [i.with_variations for i in items] == [((8, 0.5), (100 + k, 0.25)) for k in range(3)]
    plain = output_items(GenerationRequest(seed=5, iterations=3))
    assert [i.seed for i in plain] == [5, 6, 7] and all(i.with_variations == () for i in plain)


def test_iterations_feed_back_and_each_variant_reproduces_from_its_metadata(ready_app, socket_client, client):
    init = upload(client, sketch(seed=2))
    outputs_dir = ready_app.extensions["studio"].studio.outputs_dir
    sio = socket_client()
    job_id = sio.emit("generate", {"prompt": "fire", "init_image": init["id"], "steps": 5, "strength": 0.7,
                                   "seed": 77, "variation_amount": 0.3, "variation_seed": 500, "iterations": 3},
                      callback=True)["job_id"]
    events = [(n, p) for n, p in collect_events(sio, job_ended(job_id)) if p.get("job_id") == job_id]
    shown = [p for n, p in events if n == "job_output"]
    done = events[-1][1]
    assert [o["item"] for o in shown] == [0, 1, 2] and [o["name"] for o in done["outputs"]] == [o["name"] for o in shown]
    metas = [o["metadata"] for o in done["outputs"]]
    assert [m["with_variations"] for m in metas] == [[[500 + k, 0.3]] for k in range(3)]
    assert all(m["seed"] == 77 and m["variation_amount"] == 0 and m["iterations"] == 1 for m in metas)
    # Each output after the first started from the one before it.
    for previous, meta in zip(done["outputs"], metas[1:]):
        stored_init = Image.open(outputs_dir / "uploads" / f"{meta['init_image']['id']}.png")
        assert np.array_equal(px(stored_init), px(Image.open(outputs_dir / previous["name"])))
    # Re-running each output's own settings gives the same pixels.
    for output in done["outputs"]:
        meta = output["metadata"]
        again = {k: meta[k] for k in ("prompt", "steps", "strength", "seed", "cfg_scale", "sampler",
                                      "with_variations")}
        again_id = sio.emit("generate", {**again, "init_image": meta["init_image"]["id"]}, callback=True)["job_id"]
        redo = [p for n, p in collect_events(sio, job_ended(again_id)) if n == "job_done"][0]
        assert np.array_equal(px(Image.open(outputs_dir / redo["name"])), px(Image.open(outputs_dir / output["name"])))
