"""The page on a real cluster (redis-server, one `serve --broker` web process, two workers): it
looks and works like the embedded studio, except that the header lists the workers, and two tabs'
jobs run at the same time, one on each worker."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import requests
from playwright.sync_api import expect

from studio_page import RUN_TIMEOUT_MS, StudioPage
from tests.cluster import Cluster

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with Cluster(tmp_path_factory.mktemp("cluster-page"), workers=2, webs=1) as running:
        yield running


@pytest.fixture
def tabs(browser, cluster):
    """Two browser tabs (separate contexts) on the cluster's web process."""
    web = cluster.webs[0]
    server = SimpleNamespace(base_url=web.url, health=requests.get(web.url + "/api/health", timeout=5).json())
    contexts = [browser.new_context(viewport={"width": 1280, "height": 800}) for _ in range(2)]
    pages = [StudioPage(context.new_page(), server) for context in contexts]
    for page in pages:
        page.open()
    yield pages
    for context in contexts:
        context.close()


def test_two_tabs_run_at_once_on_the_two_workers(tabs, cluster, screenshots_dir):
    first, second = tabs
    for page in tabs:
        expect(page.workers_count).to_have_text("2 workers")
        expect(page.worker_items).to_have_count(2)
        expect(page.workers_in("idle")).to_have_count(2)
    before = {p.name for p in cluster.outputs.glob("*.png")}
    for page in tabs:  # long enough that the page's 3 s worker poll sees both busy
        page.set_steps(200)
        page.batch_size.fill("3")
        page.batch_size.blur()
    first.generate()
    second.generate()
    expect(first.workers_in("busy")).to_have_count(2, timeout=RUN_TIMEOUT_MS)
    first.screenshot(screenshots_dir / "cluster-two-workers-busy.png")
    for page in tabs:
        page.wait_for_state("done")
        expect(page.output_items).to_have_count(3)
    assert len({p.name for p in cluster.outputs.glob("*.png")} - before) == 6
    expect(first.workers_in("idle")).to_have_count(2, timeout=15_000)
