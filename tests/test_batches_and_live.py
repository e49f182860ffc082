"""Batches (n independent takes of one sketch), Live jobs, a job's whole time, and the strength
sweep's contact sheet, driven over Socket.IO against the real worker and the embedded demo model."""
from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageDraw

from server.cli import main
from server.storage.contact_sheet import GAP, contact_sheet, label_layout
from server.engine.request import MAX_SEED
from tests.helpers import collect_events, job_ended, sketch, upload

SEED = MAX_SEED - 1  # so a batch of 3 wraps: MAX_SEED - 1, MAX_SEED, 0


def px(image_or_path) -> np.ndarray:
    image = Image.open(image_or_path) if isinstance(image_or_path, (str, Path)) else image_or_path
    return np.asarray(image.convert("RGB")).astype(np.int16)


def stored(path: Path) -> dict:
    with Image.open(path) as png:
        return json.loads(png.text["img2img-studio"])


@pytest.fixture
def demo_app(tmp_path, demo_model):
    from tests.helpers import preloaded_app

    app = preloaded_app(tmp_path, demo_model)
    yield app
    app.extensions["studio"].shutdown()


@pytest.fixture
def sio(demo_app):
    from server.web.realtime import socketio

    client = socketio.test_client(demo_app, flask_test_client=demo_app.test_client())
    yield client
    if client.is_connected():
        client.disconnect()


@pytest.fixture
def outputs_dir(demo_app) -> Path:
    return demo_app.extensions["studio"].studio.outputs_dir


@pytest.fixture
def init_id(demo_app):
    return upload(demo_app.test_client(), sketch(seed=7))["id"]


def run_job(sio, payload):
    """(job_id, this job's events in order); the job must end done."""
    job_id = sio.emit("generate", payload, callback=True)["job_id"]
    events = [(n, p) for n, p in collect_events(sio, job_ended(job_id)) if p.get("job_id") == job_id]
    assert events[-1][0] == "job_done", events[-1]
    return job_id, events


def named(events, name):
    return [p for n, p in events if n == name]


# ---- batches ------------------------------------------------------------------------------------

def test_a_batch_of_three_is_three_single_jobs_with_seeds_s_s1_s2(sio, outputs_dir, init_id):
    settings = {"prompt": "tree on a hill", "init_image": init_id, "steps": 8, "strength": 0.6}
    _, events = run_job(sio, {**settings, "seed": SEED, "batch_size": 3})
    seeds = [SEED, MAX_SEED, 0]  # seed + i, modulo 2^32
    assert [(p["item"], p["items"], p["seed"]) for p in named(events, "job_plan")] == [
        (i, 3, s) for i, s in enumerate(seeds)]
    assert [(p["item"], p["items"], p["seed"]) for p in named(events, "job_output")] == [
        (i, 3, s) for i, s in enumerate(seeds)]
    done = named(events, "job_done")[0]
    assert [o["seed"] for o in done["outputs"]] == seeds

    for output, seed in zip(done["outputs"], seeds):
        # Every take starts from the same init image (no output feeds the next one)...
        meta = stored(outputs_dir / output["name"])
        assert meta["init_image"]["id"] == init_id
        # ...records itself in single-output form, and the batch it came from under "job"...
        assert (meta["seed"], meta["batch_size"], meta["job"]["batch_size"]) == (seed, 1, 3)
        # ...and equals a job of its own with that seed.
        _, alone = run_job(sio, {**settings, "seed": seed})
        assert np.array_equal(px(outputs_dir / named(alone, "job_done")[0]["name"]),
                              px(outputs_dir / output["name"]))
    assert len({px(outputs_dir / o["name"]).tobytes() for o in done["outputs"]}) == 3  # three different takes


def test_a_batch_without_a_seed_counts_up_from_a_random_one(sio):
    _, events = run_job(sio, {"prompt": "fire", "steps": 3, "batch_size": 4})
    seeds = [o["seed"] for o in named(events, "job_done")[0]["outputs"]]
    assert seeds == [(seeds[0] + i) % (MAX_SEED + 1) for i in range(4)]


def test_a_variation_batch_keeps_the_seed_and_counts_up_the_variation_seed(sio, outputs_dir, init_id):
    settings = {"prompt": "a red house", "init_image": init_id, "steps": 6, "strength": 0.7, "seed": 11}
    _, events = run_job(sio, {**settings, "variation_amount": 0.3, "variation_seed": 500, "batch_size": 3})
    outputs = named(events, "job_done")[0]["outputs"]
    metas = [stored(outputs_dir / o["name"]) for o in outputs]
    assert [(m["seed"], m["with_variations"], m["init_image"]["id"]) for m in metas] == [
        (11, [[500 + i, 0.3]], init_id) for i in range(3)]
    # The last take, reproduced from its own recorded variation list.
    _, alone = run_job(sio, {**settings, "with_variations": [[502, 0.3]]})
    assert np.array_equal(px(outputs_dir / named(alone, "job_done")[0]["name"]), px(outputs_dir / outputs[2]["name"]))


def test_job_elapsed_s_covers_every_output(sio, init_id):
    _, events = run_job(sio, {"prompt": "fire", "init_image": init_id, "steps": 6, "strength": 0.8, "seed": 3,
                              "batch_size": 3})
    done = named(events, "job_done")[0]
    outputs = done["outputs"]
    # The job's wall time holds each output's in turn. Each figure is rounded to the millisecond,
    # so the sum of four roundings may be off by 4 x 0.5 ms.
    assert done["job_elapsed_s"] + 0.002 >= sum(o["elapsed_s"] for o in outputs)
    assert done["elapsed_s"] == outputs[-1]["elapsed_s"]  # the last output's, as before


@pytest.mark.parametrize("value", [0, 17, "3", True, [2], 2.5, -1])
def test_a_malformed_batch_size_is_refused_in_one_line(sio, value):
    ack = sio.emit("generate", {"prompt": "fire", "steps": 3, "batch_size": value}, callback=True)
    assert "batch_size" in ack["error"] and "1 to 16" in ack["error"] and "\n" not in ack["error"], ack


def test_a_batch_with_iterations_or_a_sweep_is_refused(sio, init_id):
    with_iterations = sio.emit("generate", {"prompt": "fire", "batch_size": 2, "iterations": 2}, callback=True)
    assert "batch" in with_iterations["error"] and "iterations" in with_iterations["error"]
    with_sweep = sio.emit("generate", {"prompt": "fire", "init_image": init_id, "batch_size": 2,
                                       "strengths": [0.3, 0.6]}, callback=True)
    assert "batch" in with_sweep["error"] and "sweep" in with_sweep["error"]


def test_generate_from_a_batch_output_reproduces_its_pixels(tmp_path, monkeypatch, demo_model):
    import server.worker.studio as studio_module

    monkeypatch.setattr(studio_module, "load_model", lambda *args, **kwargs: demo_model)
    monkeypatch.chdir(tmp_path)
    sketch(seed=2).save("fire.png")
    result = CliRunner().invoke(main, ["generate", "fire", "-s4", "-S77", "-I", "fire.png", "-f", "0.6", "-b", "3"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    files, commands = [Path(line) for line in lines[::2]], lines[1::2]
    assert [stored(f)["seed"] for f in files] == [77, 78, 79]
    assert not any({"-b", "--batch-size"} & set(shlex.split(c)) for c in commands)  # each line makes one image
    again = CliRunner().invoke(main, ["generate", "--from", str(files[1])])
    assert again.exit_code == 0, again.output
    assert np.array_equal(px(again.stdout.splitlines()[0]), px(files[1]))


# ---- Live jobs ------------------------------------------------------------------------------------

def test_a_live_job_replaces_the_tabs_live_job_but_not_its_queued_normal_job(demo_app, sio, outputs_dir, init_id):
    slow_live = sio.emit("generate", {"prompt": "hill", "steps": 200, "seed": 1, "live": True}, callback=True)["job_id"]
    collect_events(sio, lambda ev: any(n == "job_step" and p["job_id"] == slow_live for n, p in ev))
    normal = sio.emit("generate", {"prompt": "sun", "init_image": init_id, "steps": 4, "seed": 2, "strength": 0.5},
                      callback=True)["job_id"]
    queued_live = sio.emit("generate", {"prompt": "hill", "steps": 200, "seed": 3, "live": True},
                           callback=True)["job_id"]
    latest_live = sio.emit("generate", {"prompt": "hill", "init_image": init_id, "steps": 4, "seed": 4,
                                        "strength": 0.5, "live": True}, callback=True)["job_id"]
    events = collect_events(sio, lambda ev: all(job_ended(j)(ev) for j in (slow_live, normal, queued_live,
                                                                            latest_live)))
    ends = [(p["job_id"], n) for n, p in events if n in ("job_done", "job_cancelled", "job_error")]
    assert sorted(ends) == sorted([(slow_live, "job_cancelled"), (queued_live, "job_cancelled"),
                                   (normal, "job_done"), (latest_live, "job_done")])
    # The normal job kept its place in the queue: it ran before the live job sent after it.
    assert [j for j, n in ends if n == "job_done"] == [normal, latest_live]
    done = {p["job_id"]: p for n, p in events if n == "job_done"}
    # The Live result is saved outside the gallery, and says it came from Live.
    assert done[latest_live]["url"] == f"/outputs/live/{done[latest_live]['name']}"
    assert stored(outputs_dir / "live" / done[latest_live]["name"])["live"] is True
    assert stored(outputs_dir / done[normal]["name"])["live"] is False
    assert [o["name"] for o in demo_app.test_client().get("/api/outputs").json] == [done[normal]["name"]]


def test_a_live_results_intermediates_lie_beside_it_not_beside_a_gallery_output(sio, outputs_dir, init_id):
    settings = {"prompt": "fire", "init_image": init_id, "steps": 4, "strength": 0.5, "seed": 8,
                "save_intermediates": "preview"}
    _, normal = run_job(sio, settings)
    _, live = run_job(sio, {**settings, "live": True})
    normal_out, live_out = named(normal, "job_done")[0]["outputs"][0], named(live, "job_done")[0]["outputs"][0]
    assert normal_out["name"] == live_out["name"]  # each folder counts on its own
    assert live_out["intermediates_dir"] == f"outputs/live/intermediates/{Path(live_out['name']).stem}"
    assert normal_out["intermediates_dir"] == f"outputs/intermediates/{Path(normal_out['name']).stem}"
    for out in (normal_out, live_out):
        folder = outputs_dir.parent / out["intermediates_dir"]
        assert sorted(p.name for p in folder.iterdir()) == ["init.png", "step-003.png", "step-004.png"]


def test_a_live_job_is_accepted_when_the_one_it_replaces_still_holds_the_tabs_last_place(demo_app, sio):
    """The replaced Live job may still be finishing its step when the next one comes: it no longer
    counts against the tab's cap, so dragging with a full queue is not refused."""
    cap = demo_app.config["MAX_JOBS_PER_CLIENT"]
    long = {"prompt": "hill", "steps": 200, "seed": 1}
    running = sio.emit("generate", {**long, "live": True}, callback=True)["job_id"]
    collect_events(sio, lambda ev: any(n == "job_step" and p["job_id"] == running for n, p in ev))
    queued = [sio.emit("generate", long, callback=True)["job_id"] for _ in range(cap - 1)]
    assert "limit is" in sio.emit("generate", long, callback=True)["error"]  # the tab is full
    replacement = sio.emit("generate", {**long, "live": True}, callback=True)
    assert "job_id" in replacement, replacement
    for job_id in queued + [replacement["job_id"]]:
        sio.emit("cancel", {"job_id": job_id}, callback=True)
    events = collect_events(sio, lambda ev: all(job_ended(j)(ev) for j in [running, *queued, replacement["job_id"]]))
    assert {p["job_id"] for n, p in events if n == "job_cancelled"} == {running, *queued, replacement["job_id"]}


def test_a_live_job_leaves_other_tabs_alone(demo_app, sio):
    from server.web.realtime import socketio

    other = socketio.test_client(demo_app, flask_test_client=demo_app.test_client())
    theirs = other.emit("generate", {"prompt": "hill", "steps": 30, "seed": 1, "live": True}, callback=True)["job_id"]
    mine = sio.emit("generate", {"prompt": "hill", "steps": 3, "seed": 1, "live": True}, callback=True)["job_id"]
    collect_events(sio, job_ended(mine))
    ends = [n for n, p in collect_events(other, job_ended(theirs)) if p.get("job_id") == theirs]
    assert ends[-1] == "job_done"
    other.disconnect()


@pytest.mark.parametrize("value", ["yes", 1, [True]])
def test_a_malformed_live_flag_is_refused(sio, value):
    ack = sio.emit("generate", {"prompt": "fire", "steps": 3, "live": value}, callback=True)
    assert "live must be true" in ack["error"] and "\n" not in ack["error"]


# ---- the strength sweep's contact sheet -------------------------------------------------------------

def test_the_contact_sheet_starts_with_the_init_and_shows_every_label_whole(sio, outputs_dir, init_id):
    init = sketch(seed=7)
    _, events = run_job(sio, {"prompt": "fire", "init_image": init_id, "steps": 16, "seed": 5,
                              "strengths": [0.2, 0.45, 0.7, 1.0]})
    done = named(events, "job_done")[0]
    sheet_path = outputs_dir / done["contact_sheet"]["name"]
    sheet, meta = Image.open(sheet_path), stored(sheet_path)
    assert meta["contact_sheet_of"] == [o["name"] for o in done["outputs"]]

    tiles = [init] + [Image.open(outputs_dir / o["name"]) for o in done["outputs"]]
    assert sheet.width == 5 * 128 + 6 * GAP
    for k, tile in enumerate(tiles):  # the init first, then each output, unchanged, in order
        x = GAP + k * (128 + GAP)
        assert np.array_equal(px(sheet.crop((x, GAP, x + 128, GAP + 128))), px(tile))

    # The labels a person should read, whole (the old sheet cut them: "strength 0.2 · 4 taken / 16 s…").
    labels = ["init"] + [f"strength {o['metadata']['strength']:g} · {o['metadata']['taken']} taken / "
                         f"{o['metadata']['skipped']} skipped" for o in done["outputs"]]
    assert labels[1] == "strength 0.2 · 3 taken / 13 skipped"
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    for label in labels:
        font, lines = label_layout(label, 128)
        # Every word, none cut (a " · " between parts may become the line break).
        assert " ".join(lines).split() == [word for word in label.split() if word != "·"]
        assert all(measure.textlength(line, font=font) <= 128 for line in lines)
    # On the sheet, each label's ink lies under its own tile: none runs into the gap or the next tile.
    band = px(sheet.crop((0, GAP + 128, sheet.width, sheet.height))).max(axis=2) > 128
    columns = band.any(axis=0)
    for k in range(len(tiles)):
        x = GAP + k * (128 + GAP)
        assert columns[x:x + 128].any(), f"tile {k} has no label"
        assert not columns[x - GAP:x].any(), f"ink in the gap before tile {k}"
    assert not columns[-GAP:].any()


def test_labels_wider_than_a_narrow_tile_wrap_shrink_and_break_but_never_cut():
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    for width, label in [(64, "strength 0.35 · 12 taken / 38 skipped"), (24, "init"),
                         (16, "strength 0.35 · 12 taken / 38 skipped")]:
        font, lines = label_layout(label, width)
        assert "".join(lines).replace(" ", "") == label.replace(" ", "").replace("·", "")
        assert all(measure.textlength(line, font=font) <= width for line in lines), (width, lines)
    # A sheet of 64-pixel tiles grows its label band for wrapped labels: nothing is drawn off the sheet.
    tiles = [sketch(64, 64, seed=s) for s in range(3)]
    labels = ["init", "strength 0.35 · 12 taken / 38 skipped", "strength 1 · 50 taken / 0 skipped"]
    sheet = contact_sheet(tiles, labels)
    band = px(sheet.crop((0, GAP + 64, sheet.width, sheet.height))).max(axis=2) > 128
    rows = np.flatnonzero(band.any(axis=1))
    assert rows.size and rows[-1] < band.shape[0] - 1  # the last line's ink ends above the sheet's edge


def test_health_publishes_the_limits_a_generate_is_checked_against(demo_app):
    """The page reads its limits from here: each published edge is accepted, one past it refused."""
    limits = demo_app.test_client().get("/api/health").get_json()["limits"]
    from server.engine import GenerationRequest

    for field in ("steps", "iterations", "batch_size"):
        low, high = limits[field]
        GenerationRequest.from_payload({"prompt": "x", field: high})
        with pytest.raises(ValueError, match=field):
            GenerationRequest.from_payload({"prompt": "x", field: high + 1})
        with pytest.raises(ValueError, match=field):
            GenerationRequest.from_payload({"prompt": "x", field: low - 1})
