"""A cluster's workers in the header, in Chromium. The real page comes from the embedded test server;
its /api/health answers pass through Playwright's page.route, which adds what a cluster's web process
adds (`mode: "cluster"` and `workers`), so the page is driven exactly as a cluster would drive it
(the cluster itself is tested end to end elsewhere). The embedded page, untouched, shows no workers."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from studio_page import StudioPage

WORKER_POLL_TIMEOUT_MS = 15_000  # a few of the page's 3 s beats


def _worker(name: str, device: str, state: str, job_id: str | None, jobs_done: int) -> dict:
    return {"name": name, "model": "demo", "device": device, "state": state, "job_id": job_id,
            "jobs_done": jobs_done, "seen_s_ago": 0.8}


@pytest.fixture
def cluster_page(browser, server):
    """A fresh page whose /api/health says it is a cluster with the workers in `workers` (the test may
    change them: the next answer carries the change)."""
    workers = [_worker("gpu-0", "cuda:0", "busy", "job-" + "a" * 32, 3), _worker("gpu-1", "cuda:1", "idle", None, 5)]

    def cluster_health(route):
        response = route.fetch()
        body = response.json()
        body.update(mode="cluster", workers=[dict(w) for w in workers])
        route.fulfill(response=response, json=body)

    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.route("**/api/health", cluster_health)
    studio = StudioPage(page, server)
    studio.open()
    yield studio, workers
    context.close()
    assert not errors, "\n".join(errors)


def test_a_cluster_lists_its_workers_and_follows_their_states(cluster_page, screenshots_dir):
    studio, workers = cluster_page
    expect(studio.workers).to_be_visible()
    expect(studio.workers_count).to_have_text("2 workers")
    expect(studio.worker_items).to_have_count(2)
    expect(studio.worker("gpu-0")).to_have_attribute("data-state", "busy")
    expect(studio.worker("gpu-1")).to_have_attribute("data-state", "idle")
    # What a person reads: the worker's name, model, device and state, and nothing more for busy.
    assert studio.worker_items.all_inner_texts() == ["gpu-0 · demo · cuda:0 · busy", "gpu-1 · demo · cuda:1 · idle"]
    # The embedded studio's own header is all still there beside it.
    expect(studio.model_status).to_have_attribute("data-status", "ready")
    expect(studio.connection).to_have_attribute("data-state", "connected")
    studio.screenshot(screenshots_dir / "workers-panel.png")

    # While the page is open it keeps asking: gpu-0 finishes, gpu-1 takes the next job.
    workers[0].update(state="idle", job_id=None, jobs_done=4)
    workers[1].update(state="busy", job_id="job-" + "b" * 32)
    expect(studio.worker("gpu-0")).to_have_attribute("data-state", "idle", timeout=WORKER_POLL_TIMEOUT_MS)
    expect(studio.worker("gpu-1")).to_have_attribute("data-state", "busy", timeout=WORKER_POLL_TIMEOUT_MS)
    expect(studio.worker("gpu-0")).to_have_text("gpu-0 · demo · cuda:0 · idle")

    # A third worker joins and one is lost: the list and its count follow.
    joining = {**_worker("gpu-2", "cuda:2", "loading", None, 0), "model": None}
    workers[:] = [workers[1], joining]
    expect(studio.worker("gpu-0")).to_have_count(0, timeout=WORKER_POLL_TIMEOUT_MS)
    assert studio.worker_items.all_inner_texts() == ["gpu-1 · demo · cuda:1 · busy", "gpu-2 · no model · cuda:2 · loading"]
    expect(studio.workers_count).to_have_text("2 workers")


def test_a_narrow_window_still_shows_every_worker(cluster_page, screenshots_dir):
    studio, _ = cluster_page
    studio.page.set_viewport_size({"width": 800, "height": 900})
    expect(studio.worker_items).to_have_count(2)
    for item in studio.worker_items.all():
        expect(item).to_be_in_viewport()
    studio.screenshot(screenshots_dir / "workers-panel-800.png")


def test_the_embedded_studio_shows_no_workers(studio):
    assert studio.page.evaluate("() => fetch('/api/health').then((r) => r.json()).then((h) => h.mode ?? null)") in (None, "embedded")
    expect(studio.workers_panel).to_be_hidden()
    expect(studio.worker_items).to_have_count(0)
