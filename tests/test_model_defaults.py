"""A model folder's recommended settings (studio_defaults.json): read and checked without loading
weights, applied to whatever a socket request or the CLI leaves out, and shown to the page."""
from __future__ import annotations

import json
import shutil

import pytest
from server.engine import ModelLoadError, load_model
from server.engine.model_defaults import DEFAULTS_FILE, read_model_defaults
from server.engine.request import GenerationRequest
from tests.helpers import collect_events, job_ended, wait_until


@pytest.fixture(scope="module")
def folder_with_defaults(tmp_path_factory, tiny_model):
    folder = tmp_path_factory.mktemp("models") / "tiny-recommends"
    tiny_model.pipe.save_pretrained(folder)
    (folder / DEFAULTS_FILE).write_text(json.dumps({"cfg_scale": 3.0, "steps": 6}))
    return folder


def test_a_folder_without_the_file_recommends_nothing(tmp_path):
    assert read_model_defaults(tmp_path) == {}
    assert read_model_defaults(None) == {}


@pytest.mark.parametrize("text, words", [
    ("{cfg 2", "not valid JSON"),
    ("[2]", "JSON object"),
    ('{"strength": 0.2}', "cannot recommend: strength"),
    ('{"cfg_scale": 99}', "cfg_scale"),
    ('{"sampler": "magic"}', "sampler"),
    ('{"min_taken_steps": -2}', "min_taken_steps"),
])
def test_a_bad_file_is_named_in_a_clear_error(tmp_path, text, words):
    (tmp_path / DEFAULTS_FILE).write_text(text)
    with pytest.raises(ValueError) as caught:
        read_model_defaults(tmp_path)
    assert DEFAULTS_FILE in str(caught.value) and words in str(caught.value)


def test_a_few_step_model_may_recommend_a_minimum_of_taken_steps(tmp_path):
    recommended = {"sampler": "lcm", "steps": 4, "cfg_scale": 1.0, "min_taken_steps": 2}
    (tmp_path / DEFAULTS_FILE).write_text(json.dumps(recommended))
    assert read_model_defaults(tmp_path) == recommended
    assert GenerationRequest.from_payload({}, defaults=recommended).min_taken_steps == 2
    assert GenerationRequest.from_payload({"min_taken_steps": 0}, defaults=recommended).min_taken_steps == 0


def test_defaults_fill_only_what_a_request_leaves_out():
    defaults = {"cfg_scale": 2.0, "steps": 30}
    assert GenerationRequest.from_payload({}, defaults=defaults).cfg_scale == 2.0
    given = GenerationRequest.from_payload({"cfg_scale": 9, "steps": 12}, defaults=defaults)
    assert (given.cfg_scale, given.steps) == (9, 12)
    assert GenerationRequest.from_payload({"cfg_scale": None}, defaults=defaults).cfg_scale == 2.0


def test_loading_reads_them_and_a_broken_file_stops_the_load(folder_with_defaults, tmp_path):
    assert load_model(folder_with_defaults, "cpu", cache_dir=tmp_path).defaults == {"cfg_scale": 3.0, "steps": 6}
    broken = tmp_path / "broken"
    shutil.copytree(folder_with_defaults, broken)
    (broken / DEFAULTS_FILE).write_text('{"cfg_scale": "high"}')
    with pytest.raises(ModelLoadError, match=DEFAULTS_FILE):
        load_model(broken, "cpu", cache_dir=tmp_path)


def test_the_shipped_demo_model_recommends_a_low_cfg():
    from server.engine.loading import DEMO_MODEL_DIR

    # At SD's usual 7.5 the small demo model leaves a sketch's layout even at strength 0.3
    # (benchmarks/demo_model_quality.py prints both); the folder says so.
    assert read_model_defaults(DEMO_MODEL_DIR).get("cfg_scale", 7.5) < 7.5


@pytest.fixture
def recommending_app(tmp_path, folder_with_defaults):
    from server.web.app import create_app

    app = create_app({"OUTPUTS_DIR": str(tmp_path / "outputs"), "ASYNC_MODE": "threading", "DEVICE": "cpu",
                      "TESTING": True, "MODEL_PATH": str(folder_with_defaults)})
    yield app
    app.extensions["studio"].shutdown()


def test_health_tells_the_page_and_jobs_get_them(recommending_app):
    from server.web.realtime import socketio

    client = recommending_app.test_client()
    # Known before the weights load, so jobs queued meanwhile get them too.
    assert client.get("/api/health").json["defaults"] == {"cfg_scale": 3.0, "steps": 6}
    # The step strip's plan for a request without steps is the one a job would run: 6 x 0.5.
    plan = client.get("/api/plan?strength=0.5").json
    assert (plan["steps_requested"], plan["taken"]) == (6, 3)
    wait_until(lambda: recommending_app.extensions["studio"].studio.status.status == "ready", timeout=120)
    sio = socketio.test_client(recommending_app, flask_test_client=client)
    try:
        done, plans = [], []
        for payload in ({"prompt": "fire", "seed": 1, "preview": "off"},
                        {"prompt": "fire", "seed": 1, "preview": "off", "cfg_scale": 5, "steps": 4}):
            job_id = sio.emit("generate", payload, callback=True)["job_id"]
            events = [(n, p) for n, p in collect_events(sio, job_ended(job_id)) if p.get("job_id") == job_id]
            plans.append(next(p for n, p in events if n == "job_plan"))
            done.append(next(p for n, p in events if n == "job_done"))
    finally:
        sio.disconnect()
    outputs = recommending_app.extensions["studio"].studio.outputs_dir
    recommended, chosen = (stored_settings(outputs / d["name"]) for d in done)
    assert (recommended["cfg_scale"], recommended["steps"], plans[0]["taken"]) == (3.0, 6, 6)
    assert (chosen["cfg_scale"], chosen["steps"], plans[1]["taken"]) == (5, 4, 4)


def stored_settings(path) -> dict:
    """The settings an output PNG records (what reproduces it)."""
    from server.storage.store import OutputStore

    return OutputStore.read_metadata(path)
