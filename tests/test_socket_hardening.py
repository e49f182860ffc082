"""The Socket.IO handlers under malformed and hostile payloads: every one answered, nothing
crashes, jobs belong to the tab that made them, and each cap says which limit it is."""
import re

import pytest

from server.web.realtime import socketio
from tests.helpers import collect_events, job_ended, sketch, upload, wait_until

TAB_A, TAB_B = "a" * 32, "b" * 32


@pytest.fixture
def make_app(tmp_path, tiny_model):
    from server.web.app import create_app

    apps = []

    def make(**config):
        app = create_app({"OUTPUTS_DIR": str(tmp_path / f"o{len(apps)}"), "ASYNC_MODE": "threading",
                          "DEVICE": "cpu", "TESTING": True, **config}, model=tiny_model)
        apps.append(app)
        wait_until(lambda: app.extensions["studio"].studio.status.status == "ready", timeout=120)
        return app

    yield make
    for app in apps:
        app.extensions["studio"].shutdown()


def connect(app, client_id=None):
    return socketio.test_client(app, flask_test_client=app.test_client(),
                                auth={"client_id": client_id} if client_id else None)


NOT_OBJECTS = [None, "x", 3, [1, 2]]
BAD_JOB_IDS = [{"job_id": {"a": 1}}, {"job_id": ["x"]}, {"job_id": 7}, {"job_id": ""}, {"job_id": "x" * 10_000}]
BAD_SETTINGS = [{"steps": "ten"}, {"prompt": {"a": 1}}, {"seed": [1]}, {"width": float("inf")},
                {"strength": "0.5"}, {"with_variations": [[1]]}, {"with_variations": "1:0.5"},
                {"strengths": [0.1] * 100}, {"iterations": 10**9}, {"sampler": ["k_lms"]}, {"preview": 3}]
CASES = ([("cancel", p) for p in NOT_OBJECTS + BAD_JOB_IDS] + [("promote", p) for p in NOT_OBJECTS + BAD_JOB_IDS]
         + [("generate", p) for p in NOT_OBJECTS + BAD_SETTINGS])


@pytest.mark.parametrize("event,payload", CASES, ids=repr)
def test_every_malformed_payload_gets_an_error_ack(ready_app, socket_client, event, payload):
    sio = socket_client()
    ack = sio.emit(event, payload, callback=True)
    assert isinstance(ack, dict) and isinstance(ack.get("error"), str) and ack["error"], ack
    assert "Traceback" not in ack["error"]
    assert sio.is_connected()
    assert ready_app.extensions["studio"].jobs.queue_length() == 0


def test_job_ids_carry_128_random_bits(ready_app, socket_client):
    sio = socket_client()
    ids = [sio.emit("generate", {"prompt": "x", "steps": 1, "seed": i}, callback=True)["job_id"] for i in range(3)]
    for job_id in ids:
        assert re.fullmatch(r"job-[0-9a-f]{32}", job_id), job_id
    assert len(set(ids)) == 3
    collect_events(sio, lambda ev: all(job_ended(j)(ev) for j in ids))


def test_only_the_owning_tab_may_full_decode_or_cancel_a_job(make_app):
    app = make_app()
    owner, stranger = connect(app, TAB_A), connect(app, TAB_B)
    job_id = owner.emit("generate", {"prompt": "x", "steps": 3, "seed": 1}, callback=True)["job_id"]
    collect_events(owner, job_ended(job_id))
    refused = stranger.emit("promote", {"job_id": job_id, "index": 0}, callback=True)
    assert "of yours" in refused["error"] and "image" not in refused
    decoded = owner.emit("promote", {"job_id": job_id, "index": 0}, callback=True)
    assert decoded["ok"] and decoded["mime"] == "image/png" and decoded["image"][:8] == b"\x89PNG\r\n\x1a\n"
    long_job = owner.emit("generate", {"prompt": "x", "steps": 200, "seed": 2}, callback=True)["job_id"]
    assert "error" in stranger.emit("cancel", {"job_id": long_job}, callback=True)
    assert owner.emit("cancel", {"job_id": long_job}, callback=True) == {"ok": True}
    collect_events(owner, job_ended(long_job))


LONG_JOB = {"prompt": "x", "steps": 200, "seed": 1, "width": 256, "height": 256}


def test_a_reconnecting_tab_keeps_its_jobs_and_their_events(make_app):
    app = make_app(RECONNECT_GRACE_S=30)
    jobs = app.extensions["studio"].jobs
    first = connect(app, TAB_A)
    job_id = first.emit("generate", LONG_JOB, callback=True)["job_id"]
    collect_events(first, lambda ev: any(n == "job_step" for n, _ in ev))
    first.disconnect()
    again = connect(app, TAB_A)  # the same tab, a new socket (a network blip, a laptop waking)
    events = collect_events(again, lambda ev: any(n == "job_step" and p["job_id"] == job_id for n, p in ev))
    assert jobs.job_state(job_id) == "running"
    assert again.emit("cancel", {"job_id": job_id}, callback=True) == {"ok": True}
    events += collect_events(again, job_ended(job_id))
    assert [n for n, p in events if n == "job_cancelled"] == ["job_cancelled"]


def test_a_tab_that_does_not_come_back_loses_its_jobs(make_app):
    app = make_app(RECONNECT_GRACE_S=0.2)
    jobs = app.extensions["studio"].jobs
    tab = connect(app, TAB_A)
    job_id = tab.emit("generate", LONG_JOB, callback=True)["job_id"]
    tab.disconnect()
    wait_until(lambda: jobs.job_state(job_id) is None, timeout=60)
    assert app.extensions["studio"].studio.outputs.list() == []


def test_a_malformed_client_id_is_refused_at_connect(make_app):
    app = make_app()
    assert not connect(app, "../../etc").is_connected()
    assert connect(app, TAB_A).is_connected()


def test_with_variations_is_capped(make_app):
    app = make_app(MAX_VARIATIONS=5)
    sio = connect(app)
    ack = sio.emit("generate", {"prompt": "x", "steps": 1, "with_variations": [[i, 0.1] for i in range(6)]},
                   callback=True)
    assert ack["error"] == "with_variations has 6 entries; the limit is 5 (--max-variations)."
    assert app.extensions["studio"].jobs.queue_length() == 0


def test_total_queued_jobs_are_capped_across_tabs(make_app):
    app = make_app(MAX_JOBS_TOTAL=3)
    tabs = [connect(app, c * 32) for c in "abcd"]
    ids = [tab.emit("generate", {"prompt": "x", "steps": 200, "seed": 1}, callback=True).get("job_id")
           for tab in tabs[:3]]
    assert all(ids)
    refused = tabs[3].emit("generate", {"prompt": "x", "steps": 2}, callback=True)
    assert "the limit is 3, --max-queued-total" in refused["error"]
    for tab, job_id in zip(tabs, ids):
        tab.emit("cancel", {"job_id": job_id}, callback=True)


def test_open_connections_per_address_are_capped(make_app):
    app = make_app(MAX_CONNECTIONS_PER_ADDRESS=2)
    first, second = connect(app), connect(app)
    assert first.is_connected() and second.is_connected()
    assert not connect(app).is_connected()
    first.disconnect()
    assert connect(app).is_connected()  # a freed slot is usable again


def test_an_init_image_that_is_not_an_upload_id_is_refused(ready_app, socket_client, client):
    sio = socket_client()
    upload(client, sketch())
    for bad in ("../../etc/passwd", "/etc/passwd", {"id": 1}):
        ack = sio.emit("generate", {"prompt": "x", "init_image": bad}, callback=True)
        assert "error" in ack, bad
