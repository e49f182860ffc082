"""GET /metrics: what a Prometheus scrape shows after real jobs ran on the embedded worker,
compared with what the client itself saw of those jobs (plans, frames, endings)."""
import json

import pytest
from prometheus_client.parser import text_string_to_metric_families

from server.metrics import WorkerMetrics, render
from tests.helpers import collect_events, job_ended, sketch, upload

TERMINAL = {"job_done", "job_cancelled", "job_error"}


def parse(text: str) -> dict:
    """{(sample name, ((label, value), ...)): value} of an exposition, as a scraper reads it."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def sample(scraped: dict, name: str, **labels) -> float:
    return scraped[(name, tuple(sorted(labels.items())))]


def scrape(client) -> dict:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    return parse(response.get_data(as_text=True))


def steps_that_ran(sio, job_id: str, scheduled: int) -> int:
    """How many of a cancelled job's steps ran, as the studio itself tells it: every step that ran
    can be full-decoded ("promote"), the first that did not cannot."""
    for index in range(scheduled):
        answer = sio.emit("promote", {"job_id": job_id, "index": index}, callback=True)
        if "error" in answer:
            assert "dropped by a cancel" in answer["error"], answer
            return index
    return scheduled


def test_metrics_count_the_jobs_steps_and_previews_the_client_saw(ready_app, socket_client, client):
    sio = socket_client()
    init = upload(client, sketch(seed=1))
    too_small = upload(client, sketch(4, 4, seed=2))  # stored fine, but no model takes a 4×4 init
    before = scrape(client)
    assert sample(before, "studio_workers") == 1 and sample(before, "studio_queue_length") == 0
    for outcome in ("done", "cancelled", "error"):
        assert sample(before, "studio_jobs_total", worker="embedded", outcome=outcome) == 0

    # A long job runs; two more wait behind it: a batch of two that will finish, and one the engine refuses.
    long = sio.emit("generate", {"prompt": "hill", "steps": 200, "seed": 1, "preview": "latent"},
                    callback=True)["job_id"]
    events = collect_events(sio, lambda ev: any(n == "job_step" and p["index"] >= 0 for n, p in ev))
    finishing = sio.emit("generate", {"prompt": "tree on a hill", "init_image": init["id"], "steps": 10,
                                      "strength": 0.7, "seed": 7, "batch_size": 2, "preview": "latent"},
                         callback=True)["job_id"]
    refused = sio.emit("generate", {"prompt": "tree", "init_image": too_small["id"], "steps": 4, "seed": 7},
                       callback=True)["job_id"]
    assert sample(scrape(client), "studio_queue_length") == 2
    assert sio.emit("cancel", {"job_id": long}, callback=True) == {"ok": True}
    ids = (long, finishing, refused)
    events += collect_events(sio, lambda ev: all(job_ended(j)(ev) for j in ids), timeout=120)

    ends = {p["job_id"]: (n, p) for n, p in events if n in TERMINAL}
    assert [ends[j][0] for j in ids] == ["job_cancelled", "job_done", "job_error"]
    assert "needs at least 8 px" in ends[refused][1]["error"]
    plans = [p for n, p in events if n == "job_plan" and p["job_id"] == finishing]
    assert [p["taken"] for p in plans] == [7, 7]  # one plan per output of the batch
    ran = steps_that_ran(sio, long, 200)
    assert 1 <= ran < 200
    frames = [p for n, p in events if n == "job_step"]

    scraped = scrape(client)
    assert {outcome: sample(scraped, "studio_jobs_total", worker="embedded", outcome=outcome)
            for outcome in ("done", "cancelled", "error")} == {"done": 1, "cancelled": 1, "error": 1}
    # Every taken step is timed once: the finished job's planned steps, the cancelled job's that ran,
    # none of the refused job's (it ended before its first step).
    step_count = sample(scraped, "studio_step_seconds_count", worker="embedded")
    assert step_count == sum(p["taken"] for p in plans) + ran
    assert sample(scraped, "studio_step_seconds_bucket", worker="embedded", le="+Inf") == step_count
    assert sample(scraped, "studio_step_seconds_sum", worker="embedded") > 0
    # Each preview the client got (init frames included) was timed once as it was handed to emit;
    # frames replaced by newer ones before delivery (latest-wins) were never emitted, so not timed.
    assert sample(scraped, "studio_preview_latency_seconds_count", worker="embedded") == len(frames)
    assert sample(scraped, "studio_queue_length") == 0


def test_metrics_pass_the_same_access_policy_as_every_route(tmp_path, tiny_model):
    from server.web.app import create_app

    app = create_app({"OUTPUTS_DIR": str(tmp_path / "o"), "ASYNC_MODE": "threading", "DEVICE": "cpu",
                      "TOKEN": "s3cret-token"}, model=tiny_model)
    try:
        client = app.test_client()
        refused = client.get("/metrics")
        assert refused.status_code == 401 and "token" in refused.json["error"]
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/metrics", headers={"Host": "evil.example:7860",
                                               "Authorization": "Bearer s3cret-token"}).status_code == 400
        scraped = client.get("/metrics", headers={"Authorization": "Bearer s3cret-token"})
        assert scraped.status_code == 200 and sample(parse(scraped.get_data(as_text=True)), "studio_workers") == 1
    finally:
        app.extensions["studio"].shutdown()


def test_snapshots_travel_as_json_and_render_per_worker():
    gpu, cpu = WorkerMetrics(), WorkerMetrics()
    for seconds in (0.005, 0.03, 200.0):  # on a bound (le is <=), between bounds, above the last
        gpu.step(seconds)
    gpu.preview_delivered(0.0003)
    gpu.job_ended("done")
    gpu.job_ended("done")
    cpu.job_ended("error")
    # What a worker's heartbeat would carry: the snapshot through JSON and back.
    workers = {name: json.loads(json.dumps(m.snapshot())) for name, m in (("gpu-0", gpu), ("cpu-1", cpu))}
    body, content_type = render(3, workers)
    scraped = parse(body.decode())

    assert content_type.startswith("text/plain")
    assert sample(scraped, "studio_queue_length") == 3 and sample(scraped, "studio_workers") == 2
    assert sample(scraped, "studio_jobs_total", worker="gpu-0", outcome="done") == 2
    assert sample(scraped, "studio_jobs_total", worker="gpu-0", outcome="error") == 0
    assert sample(scraped, "studio_jobs_total", worker="cpu-1", outcome="error") == 1
    steps = {le: sample(scraped, "studio_step_seconds_bucket", worker="gpu-0", le=le)
             for le in ("0.005", "0.025", "0.05", "120.0", "+Inf")}
    assert steps == {"0.005": 1, "0.025": 1, "0.05": 2, "120.0": 2, "+Inf": 3}
    assert sample(scraped, "studio_step_seconds_sum", worker="gpu-0") == pytest.approx(200.035)
    assert sample(scraped, "studio_preview_latency_seconds_bucket", worker="gpu-0", le="0.00025") == 0
    assert sample(scraped, "studio_preview_latency_seconds_bucket", worker="gpu-0", le="0.0005") == 1
    assert sample(scraped, "studio_step_seconds_count", worker="cpu-1") == 0
    with pytest.raises(ValueError, match="done, cancelled, error"):
        gpu.job_ended("exploded")
