"""Managing the gallery: Live results (unlisted, pruned, kept on request), the trash, stars,
filtering and paging. Real PNG files in a tmp outputs folder; the HTTP half through the Flask
test client."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from server.storage.store import LIVE_KEPT, OutputStore


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


def snapshot(folder) -> dict:
    """Every file and link under `folder`: path -> bytes (or where the link points)."""
    return {p.relative_to(folder).as_posix(): (f"-> {p.readlink()}" if p.is_symlink() else p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_symlink() or p.is_file()}


def test_delete_moves_to_the_trash_and_restore_brings_it_back_byte_identical(store, client):
    older = store.save(picture(1), meta(seed=1, prompt="older"))
    doomed = store.save(picture(2), meta(seed=2, prompt="doomed"))
    original = doomed.path.read_bytes()
    steps = store.root / "intermediates" / doomed.name.removesuffix(".png")
    steps.mkdir(parents=True)
    (steps / "step-001.png").write_bytes(b"frame")

    response = client.delete(f"/api/outputs/{doomed.name}")
    assert response.status_code == 200 and response.json == {"name": doomed.name, "trashed": True}
    assert not doomed.path.exists() and (store.root / ".trash" / doomed.name).read_bytes() == original
    assert not steps.exists()
    assert (store.root / ".trash" / "intermediates" / steps.name / "step-001.png").read_bytes() == b"frame"
    assert names(client.get("/api/outputs").json) == [older.name]
    [trashed] = client.get("/api/outputs?trash=1").json
    assert (trashed["name"], trashed["prompt"], trashed["trashed"]) == (doomed.name, "doomed", True)
    assert client.get(trashed["url"]).data == original  # the page can still show it
    assert client.delete(f"/api/outputs/{doomed.name}").status_code == 404  # not in the gallery now

    restored = client.post(f"/api/outputs/{doomed.name}/restore")
    assert restored.status_code == 200 and restored.json["name"] == doomed.name
    assert restored.json["url"] == f"/outputs/{doomed.name}" and restored.json["trashed"] is False
    assert doomed.path.read_bytes() == original and (steps / "step-001.png").read_bytes() == b"frame"
    assert names(client.get("/api/outputs").json) == [doomed.name, older.name]
    assert client.get("/api/outputs?trash=1").json == []
    assert client.post(f"/api/outputs/{doomed.name}/restore").status_code == 404  # not in the trash now


def test_restore_refuses_when_the_name_is_taken_again(store, client):
    saved = store.save(picture(1), meta(seed=1))
    original = saved.path.read_bytes()
    assert client.delete(f"/api/outputs/{saved.name}").status_code == 200
    saved.path.write_bytes(b"a newer file of the same name")
    before = snapshot(store.root)
    response = client.post(f"/api/outputs/{saved.name}/restore")
    assert response.status_code == 409 and saved.name in response.json["error"]
    assert snapshot(store.root) == before
    assert (store.root / ".trash" / saved.name).read_bytes() == original


def test_a_trashed_name_is_never_handed_out_again(outputs):
    store = OutputStore(outputs)
    store.save(picture(1), meta(seed=1))
    newest = store.save(picture(2), meta(seed=1))
    from server.storage.gallery import Gallery

    Gallery(store).trash(newest.name)
    # After a restart the gallery's highest counter is 1, but 2 is in the trash.
    assert OutputStore(outputs).save(picture(3), meta(seed=1)).name == "000003.1.png"


def test_a_star_is_kept_across_a_restart_and_through_the_trash(app, store, client, tiny_model, tmp_path):
    first = store.save(picture(1), meta(seed=1))
    second = store.save(picture(2), meta(seed=2))
    response = client.put(f"/api/outputs/{first.name}/star", json={"starred": True})
    assert response.status_code == 200 and response.json == {"name": first.name, "starred": True}
    assert [(i["name"], i["starred"]) for i in client.get("/api/outputs").json] == [
        (second.name, False), (first.name, True)]

    from server.web.app import create_app

    again = create_app({"OUTPUTS_DIR": str(store.root), "ASYNC_MODE": "threading", "DEVICE": "cpu",
                        "TESTING": True}, model=tiny_model)
    try:
        other = again.test_client()
        assert names(other.get("/api/outputs?starred=1").json) == [first.name]
        assert other.delete(f"/api/outputs/{first.name}").status_code == 200
        assert other.get("/api/outputs?trash=1").json[0]["starred"] is True
        assert other.post(f"/api/outputs/{first.name}/restore").json["starred"] is True
        assert other.put(f"/api/outputs/{first.name}/star", json={"starred": False}).json["starred"] is False
        assert other.get("/api/outputs?starred=1").json == []
    finally:
        again.extensions["studio"].shutdown()


@pytest.mark.parametrize("body", [None, {}, {"starred": "yes"}, {"starred": 1}, ["starred"]])
def test_a_star_needs_a_true_or_false(store, client, body):
    saved = store.save(picture(1), meta(seed=1))
    response = client.put(f"/api/outputs/{saved.name}/star", json=body)
    assert response.status_code == 400 and "starred" in response.json["error"]
    assert not (store.root / "stars.json").exists()


def test_starring_what_is_not_in_the_gallery_is_a_404(store, client):
    saved = store.save(picture(1), meta(seed=1))
    client.delete(f"/api/outputs/{saved.name}")
    for name in (saved.name, "000009.1.png"):
        response = client.put(f"/api/outputs/{name}/star", json={"starred": True})
        assert response.status_code == 404 and name in response.json["error"]


def test_filter_by_text_and_stars_and_page_with_a_total(store, client):
    prompts = ["A Red House", "a blue lake", "red sky at night", "a field", "a tower"]
    saved = [store.save(picture(k), meta(seed=k, prompt=p)) for k, p in enumerate(prompts)]
    store.save(picture(9), meta(seed=9, prompt="house", negative_prompt="RED roof"))
    sheet = store.save(picture(10), meta(seed=0, prompt="red sweep", contact_sheet_of=[saved[0].name]))

    everything = client.get("/api/outputs")
    assert everything.headers["X-Total-Count"] == "6" and sheet.name not in names(everything.json)
    red = client.get("/api/outputs?q=RED")
    # Newest first: the negative prompt's match, then the prompts that contain "red" in any case.
    assert names(red.json) == ["000006.9.png", saved[2].name, saved[0].name]
    assert red.headers["X-Total-Count"] == "3"
    with_sheets = client.get("/api/outputs?q=red&sheets=1")
    assert names(with_sheets.json)[0] == sheet.name and with_sheets.headers["X-Total-Count"] == "4"

    page = client.get("/api/outputs?q=a&offset=1&limit=2")  # "a" is in the five prompts of `prompts`
    assert names(page.json) == [saved[3].name, saved[2].name] and page.headers["X-Total-Count"] == "5"
    past_the_end = client.get("/api/outputs?offset=50&limit=10")
    assert past_the_end.json == [] and past_the_end.headers["X-Total-Count"] == "6"

    client.put(f"/api/outputs/{saved[1].name}/star", json={"starred": True})
    client.put(f"/api/outputs/{saved[2].name}/star", json={"starred": True})
    starred_red = client.get("/api/outputs?starred=1&q=red")
    assert names(starred_red.json) == [saved[2].name] and starred_red.headers["X-Total-Count"] == "1"


@pytest.mark.parametrize("query", ["limit=0", "limit=201", "limit=abc", "offset=-1", "offset=1.5", "limit=",
                                   "starred=maybe", "trash=2", "sheets=yes please"])
def test_bad_listing_parameters_are_a_400_with_a_message(client, query):
    response = client.get(f"/api/outputs?{query}")
    key = query.split("=")[0]
    assert response.status_code == 400 and key in response.json["error"]


def test_keep_moves_a_live_result_into_the_gallery(store, client):
    store.save(picture(1), meta(seed=1))
    live = store.save(picture(2), meta(seed=8, prompt="live take"), live=True)
    original = live.path.read_bytes()
    response = client.post(f"/api/outputs/live/{live.name}/keep")
    assert response.status_code == 201
    kept = response.json
    assert (kept["name"], kept["url"], kept["prompt"], kept["starred"]) == (
        "000002.8.png", "/outputs/000002.8.png", "live take", False)
    assert (store.root / kept["name"]).read_bytes() == original and not live.path.exists()
    assert names(client.get("/api/outputs").json) == ["000002.8.png", "000001.1.png"]
    assert client.get(kept["url"]).data == original

    twice = client.post(f"/api/outputs/live/{live.name}/keep")
    assert twice.status_code == 404 and live.name in twice.json["error"]
    assert client.post("/api/outputs/live/000099.1.png/keep").status_code == 404
    assert names(client.get("/api/outputs").json) == ["000002.8.png", "000001.1.png"]


@pytest.fixture
def planted(store, tmp_path):
    """A gallery output, a Live result, a trashed output, and a file outside outputs/ that
    links inside outputs/ point to."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"not the studio's")
    saved = store.save(picture(1), meta(seed=1))
    live = store.save(picture(2), meta(seed=2), live=True)
    trashed = store.save(picture(3), meta(seed=3))
    from server.storage.gallery import Gallery

    Gallery(store).trash(trashed.name)
    (store.root / "000077.7.png").symlink_to(outside / "secret.png")
    (store.root / "live" / "000078.7.png").symlink_to(outside / "secret.png")
    return {"saved": saved.name, "live": live.name, "outside": outside}


@pytest.mark.parametrize("method, path", [
    ("delete", "/api/outputs/.."), ("delete", "/api/outputs/..%2F000001.1.png"),
    ("delete", "/api/outputs/%2e%2e%2fstars.json"), ("delete", "/api/outputs/%2Fetc%2Fpasswd"),
    ("delete", "/api/outputs/000001.1.png%00"), ("delete", "/api/outputs/stars.json"),
    ("delete", "/api/outputs/live"), ("delete", "/api/outputs/000077.7.png"),
    ("post", "/api/outputs/..%2Felsewhere%2Fsecret.png/restore"), ("post", "/api/outputs/000001.1.png/restore"),
    ("post", "/api/outputs/live/..%2F000001.1.png/keep"), ("post", "/api/outputs/live/000078.7.png/keep"),
    ("post", "/api/outputs/live/%2E%2E/keep"), ("put", "/api/outputs/000077.7.png/star"),
    ("put", "/api/outputs/..%2F000001.1.png/star"),
])
def test_path_attacks_are_refused_and_nothing_moves(store, client, planted, tmp_path, method, path):
    before = snapshot(tmp_path)
    response = getattr(client, method)(path, json={"starred": True})
    assert response.status_code in (400, 404, 405)
    if response.is_json:
        assert response.json["error"]
    assert snapshot(tmp_path) == before


def test_a_linked_trash_folder_is_refused_and_nothing_moves(store, client, tmp_path):
    saved = store.save(picture(1), meta(seed=1))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (store.root / ".trash").symlink_to(elsewhere, target_is_directory=True)
    before = snapshot(tmp_path)
    response = client.delete(f"/api/outputs/{saved.name}")
    assert response.status_code == 400 and "symbolic link" in response.json["error"]
    assert snapshot(tmp_path) == before and list(elsewhere.iterdir()) == []
    assert client.get("/api/outputs?trash=1").json == []  # a linked trash is not read either


@pytest.mark.parametrize("origin", ["http://evil.example", "null"])
def test_cross_site_changes_are_refused(store, client, origin):
    saved = store.save(picture(1), meta(seed=1))
    live = store.save(picture(2), meta(seed=2), live=True)
    before = snapshot(store.root)
    headers = {"Host": "127.0.0.1:7860", "Origin": origin}
    for response in (client.delete(f"/api/outputs/{saved.name}", headers=headers),
                     client.put(f"/api/outputs/{saved.name}/star", json={"starred": True}, headers=headers),
                     client.post(f"/api/outputs/live/{live.name}/keep", headers=headers)):
        assert response.status_code == 403 and "another site" in response.json["error"]
    assert snapshot(store.root) == before
    own = {"Host": "127.0.0.1:7860", "Origin": "http://127.0.0.1:7860"}
    assert client.delete(f"/api/outputs/{saved.name}", headers=own).status_code == 200


def test_unknown_api_routes_answer_with_json(client):
    missing = client.delete("/api/outputs/..%2F000001.1.png")
    assert missing.status_code == 404 and "not part of the studio's API" in missing.json["error"]
    wrong_method = client.post("/api/outputs")
    assert wrong_method.status_code == 405 and wrong_method.json["error"] and "GET" in wrong_method.headers["Allow"]
    assert client.get("/no-such-page").status_code == 404  # pages keep Flask's own answer


def test_an_output_whose_intermediates_cannot_follow_stays_in_the_gallery(store, client):
    saved = store.save(picture(1), meta(seed=1))
    stem = saved.name.removesuffix(".png")
    (store.root / "intermediates" / stem).mkdir(parents=True)
    (store.root / "intermediates" / stem / "init.png").write_bytes(b"mine")
    (store.root / ".trash" / "intermediates" / stem).mkdir(parents=True)  # left there by hand, say
    before = snapshot(store.root)
    response = client.delete(f"/api/outputs/{saved.name}")
    assert response.status_code == 409 and "intermediates" in response.json["error"]
    assert snapshot(store.root) == before and names(client.get("/api/outputs").json) == [saved.name]
