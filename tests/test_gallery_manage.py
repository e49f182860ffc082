"""Managing the gallery: Live results (unlisted, pruned, kept on request), the trash, stars,
filtering and paging. Real PNG files in a tmp outputs folder; the HTTP half through the Flask
test client."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from server.store import LIVE_KEPT, OutputStore


def meta(seed=1, prompt="a red house", **extra) -> dict:
    return {"prompt": prompt, "negative_prompt": "", "seed": seed, "strength": 0.6, "steps": 4,
            "width": 16, "height": 16, **extra}


def picture(seed=0, size=(16, 12)) -> Image.Image:
    """Noise, so two pictures (and a file that lost bytes) never look alike."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")


def names(items) -> list[str]:
    return [item["name"] for item in items]


def files_in(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.exists() else []


@pytest.fixture
def outputs(tmp_path):
    return tmp_path / "outputs"


# ---- Live results: saved beside the gallery, not in it ----------------------------------------

def test_a_live_result_is_saved_under_live_and_not_listed(outputs):
    store = OutputStore(outputs)
    gallery_one = store.save(picture(1), meta(seed=7))
    live = store.save(picture(2), meta(seed=9), live=True)
    assert live.live and live.name == "000001.9.png" and live.url == "/outputs/live/000001.9.png"
    assert live.path == outputs / "live" / "000001.9.png"
    assert np.array_equal(np.asarray(Image.open(live.path)), np.asarray(picture(2)))
    assert OutputStore.read_metadata(live.path)["seed"] == 9  # the same PNG chunks as a gallery output
    assert names(store.list()) == [gallery_one.name]
    assert names(OutputStore(outputs).list()) == [gallery_one.name]
    assert store.path_for(live.name, "live") == live.path.resolve()
    with pytest.raises(KeyError):
        store.path_for(live.name)  # not a gallery output


def test_live_keeps_only_its_newest_results(outputs):
    store = OutputStore(outputs)
    saved = [store.save(picture(k, (8, 8)), meta(seed=k), live=True).name for k in range(LIVE_KEPT + 5)]
    assert files_in(outputs / "live") == sorted(saved[-LIVE_KEPT:])
    # A new store (a restart) counts on from the live folder: no name is reused.
    again = OutputStore(outputs).save(picture(99, (8, 8)), meta(seed=3), live=True)
    assert again.name == f"{LIVE_KEPT + 6:06d}.3.png"
    assert files_in(outputs / "live") == sorted(saved[-LIVE_KEPT + 1:] + [again.name])
    assert files_in(outputs) == []  # nothing in the gallery


def test_live_and_gallery_counters_are_separate(outputs):
    store = OutputStore(outputs)
    store.save(picture(1), meta(seed=1), live=True)
    store.save(picture(2), meta(seed=1), live=True)
    assert store.save(picture(3), meta(seed=5)).name == "000001.5.png"


# ---- over HTTP ------------------------------------------------------------------------------------

@pytest.fixture
def store(app):
    return app.extensions["studio"].studio.outputs


def test_a_live_result_is_served_under_outputs_live_and_left_out_of_the_listing(store, client):
    kept = store.save(picture(1), meta(seed=4))
    live = store.save(picture(2), meta(seed=5), live=True)
    response = client.get(live.url)
    assert response.status_code == 200 and response.data == live.path.read_bytes()
    assert names(client.get("/api/outputs").json) == [kept.name]
    assert client.get(f"/outputs/{live.name}").status_code == 404
    for path in ("/outputs/uploads/" + live.name, "/outputs/live/../" + kept.name, "/outputs/live/x/" + live.name):
        assert client.get(path).status_code == 404
