"""Cluster mode with real processes: Debian's redis-server, two `serve --broker` web processes and
two `worker` processes (demo model, one torch thread each), all sharing one outputs folder.

Each client talks to one web process over a real websocket; what it must see is the embedded
studio's contract: its own jobs' plans, frames and one end each, nothing of anyone else's.
"""
from __future__ import annotations

import io
import threading
import time
from collections import defaultdict

import numpy as np
import pytest
import redis
import requests
import socketio
from PIL import Image

from tests.cluster import Cluster, WorkerProcess
from tests.helpers import png_bytes, sketch

pytestmark = pytest.mark.cluster

ENDS = ("job_done", "job_cancelled", "job_error")
QUICK = {"prompt": "a red barn under a blue sky", "steps": 6, "width": 64, "height": 64}
# Long enough to be caught mid-run on one CPU thread (about 15 ms a step), short enough for CI.
LONG = {"prompt": "a lighthouse at night", "steps": 200, "width": 128, "height": 128}


class Tab:
    """A browser tab's socket on one web process, keeping every job event by job id."""

    def __init__(self, url: str, client_id: str | None = None):
        self.sio = socketio.Client(reconnection=False)
        self.events: dict[str, list] = defaultdict(list)
        self.lock = threading.Condition()
        for name in ("job_plan", "job_step", "job_output", *ENDS):
            self.sio.on(name, self._keeper(name))
        auth = {"client_id": client_id} if client_id else None
        self.sio.connect(url, transports=["websocket"], auth=auth)

    def _keeper(self, name):
        def keep(payload):
            with self.lock:
                self.events[payload["job_id"]].append((name, payload))
                self.lock.notify_all()
        return keep

    def submit(self, settings: dict) -> str:
        ack = self.sio.call("generate", settings, timeout=20)
        assert "job_id" in ack, ack
        return ack["job_id"]

    def names(self, job_id: str) -> list[str]:
        with self.lock:
            return [name for name, _ in self.events[job_id]]

    def wait_for(self, job_id: str, event_names, timeout: float = 180.0) -> list:
        with self.lock:
            ok = self.lock.wait_for(lambda: any(n in event_names for n, _ in self.events[job_id]), timeout)
            assert ok, f"{job_id} never got {event_names}: {[n for n, _ in self.events[job_id]]}"
            return list(self.events[job_id])

    def ends(self, job_id: str) -> list:
        with self.lock:
            return [(n, p) for n, p in self.events[job_id] if n in ENDS]

    def close(self):
        self.sio.disconnect()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with Cluster(tmp_path_factory.mktemp("cluster"), workers=2, webs=2) as running:
        yield running


@pytest.fixture
def ledger(cluster):
    return redis.Redis(port=cluster.redis.port, decode_responses=True)


def wait_until(predicate, timeout=120.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def pngs(cluster) -> set[str]:
    return {p.name for p in cluster.outputs.glob("*.png")}


def test_health_lists_both_workers_on_every_web_process(cluster):
    for web in cluster.webs:
        health = requests.get(web.url + "/api/health", timeout=5).json()
        assert health["mode"] == "cluster"
        assert health["status"] == "ready"
        assert sorted(w["name"] for w in health["workers"]) == ["w0", "w1"]
        assert {w["model"] for w in health["workers"]} == {health["model"]}


def test_ten_tabs_on_two_web_processes_get_three_jobs_each_exactly_once(cluster):
    before = pngs(cluster)
    done_before = {w["name"]: w["jobs_done"] for w in cluster.wait_for_workers(2)}
    tabs = [Tab(cluster.webs[i % 2].url, client_id=f"tab-{i:02d}-of-ten-tabs") for i in range(10)]
    try:
        jobs = {tab: [tab.submit({**QUICK, "seed": 100 + 3 * i + k}) for k in range(3)]
                for i, tab in enumerate(tabs)}
        for tab, ids in jobs.items():
            for job_id in ids:
                tab.wait_for(job_id, ENDS)
        time.sleep(1.0)  # room for a duplicate end to arrive, were there one
        names = set()
        for tab, ids in jobs.items():
            # Each tab saw exactly its own jobs: a plan, frames, one output and one end each.
            assert set(tab.events) == set(ids)
            for job_id in ids:
                seen = tab.names(job_id)
                assert [n for n in seen if n in ENDS] == ["job_done"], seen
                assert seen[0] == "job_plan" and "job_step" in seen and seen.count("job_output") == 1
                names.add(tab.ends(job_id)[0][1]["name"])
        # 30 outputs, none written twice, all on the shared disk.
        assert len(names) == 30
        assert pngs(cluster) - before == names
        # Both workers took jobs.
        after = {}

        def counted_all() -> bool:  # health reads heartbeats, refreshed every second
            after.update({w["name"]: w["jobs_done"] for w in cluster.wait_for_workers(2)})
            return sum(after.values()) - sum(done_before.values()) >= 30

        wait_until(counted_all, timeout=15, what="the workers' heartbeats to count 30 jobs")
        assert sum(after.values()) - sum(done_before.values()) == 30
        assert all(after[name] > done_before[name] for name in after), (done_before, after)
    finally:
        for tab in tabs:
            tab.close()


def test_a_full_decode_of_a_step_comes_from_the_worker_that_ran_the_job(cluster):
    tab = Tab(cluster.webs[1].url, client_id="tab-full-decode-a-step")
    try:
        job_id = tab.submit({**QUICK, "seed": 5})
        events = tab.wait_for(job_id, ENDS)
        plan, done = events[0][1], events[-1][1]
        last = plan["taken"] - 1
        ack = tab.sio.call("promote", {"job_id": job_id, "index": last}, timeout=60)
        assert ack.get("ok") is True and ack["mime"] == "image/png", ack
        # The last step's latents are what the output was decoded from: the same pixels.
        decoded = np.asarray(Image.open(io.BytesIO(ack["image"])).convert("RGB"))
        saved = np.asarray(Image.open(cluster.outputs / done["name"]).convert("RGB"))
        assert decoded.shape == saved.shape and np.array_equal(decoded, saved)
        other = Tab(cluster.webs[0].url, client_id="tab-not-the-owner-of-it")
        try:
            assert "error" in other.sio.call("promote", {"job_id": job_id, "index": last}, timeout=10)
        finally:
            other.close()
    finally:
        tab.close()


def test_a_worker_that_cannot_see_the_init_image_says_the_folder_must_be_shared(cluster):
    tab = Tab(cluster.webs[0].url, client_id="tab-upload-not-shared")
    try:
        # Both workers busy, so the next job waits in the queue while its upload disappears, as it
        # would for a worker whose outputs folder is not the web process's.
        busy = [tab.submit({**LONG, "seed": 40 + i}) for i in range(2)]
        for job_id in busy:
            tab.wait_for(job_id, ("job_step",))
        response = requests.post(cluster.webs[0].url + "/api/uploads", timeout=10,
                                 files={"image": ("s.png", png_bytes(sketch(seed=3)), "image/png")})
        upload_id = response.json()["id"]
        job_id = tab.submit({**QUICK, "init_image": upload_id, "strength": 0.6, "seed": 4})
        (cluster.outputs / "uploads" / f"{upload_id}.png").unlink()
        for other in busy:
            tab.sio.call("cancel", {"job_id": other}, timeout=10)
        ends = [(n, p) for n, p in tab.wait_for(job_id, ENDS) if n in ENDS]
        assert [n for n, _ in ends] == ["job_error"]
        assert upload_id in ends[0][1]["error"] and "share one outputs folder" in ends[0][1]["error"]
    finally:
        tab.close()


def test_cancel_and_supersede_land_across_processes(cluster):
    tab = Tab(cluster.webs[1].url, client_id="tab-cancel-and-supersede")
    before = pngs(cluster)
    try:
        long_job = tab.submit({**LONG, "seed": 7})
        tab.wait_for(long_job, ("job_step",))
        assert tab.sio.call("cancel", {"job_id": long_job}, timeout=10).get("ok") is True
        assert [n for n, _ in tab.ends(long_job) or tab.wait_for(long_job, ENDS) if n in ENDS] == ["job_cancelled"]
        first = tab.submit({**LONG, "seed": 8})
        tab.wait_for(first, ("job_step",))
        second = tab.submit({**QUICK, "seed": 9, "supersede": True})
        tab.wait_for(first, ENDS)
        tab.wait_for(second, ENDS)
        assert [n for n, _ in tab.ends(first)] == ["job_cancelled"]
        assert [n for n, _ in tab.ends(second)] == ["job_done"]
        # Only the superseding job saved anything.
        assert pngs(cluster) - before == {tab.ends(second)[0][1]["name"]}
    finally:
        tab.close()


def test_a_disconnect_cancels_the_tabs_job_on_whichever_worker_runs_it(cluster, ledger):
    tab = Tab(cluster.webs[0].url)  # no client_id: the socket is the tab, and cannot come back
    before = pngs(cluster)
    job_id = tab.submit({**LONG, "seed": 11})
    tab.wait_for(job_id, ("job_step",))
    tab.close()
    wait_until(lambda: ledger.hget(f"studio:job:{job_id}", "state") == "cancelled", what="the job to be cancelled")
    wait_until(lambda: all(w["state"] == "idle" for w in cluster.wait_for_workers(2)), what="idle workers")
    assert pngs(cluster) == before


def test_per_tab_cap_holds_across_web_processes(cluster):
    # The same tab id on both web processes (a tab whose reconnect landed on the other one).
    tabs = [Tab(web.url, client_id="tab-cap-across-webs") for web in cluster.webs]
    try:
        accepted = [tabs[i % 2].submit({**LONG, "seed": 20 + i}) for i in range(4)]
        refused = tabs[1].sio.call("generate", {**LONG, "seed": 30}, timeout=10)
        assert "limit is 4" in refused["error"], refused
        for job_id in accepted:
            assert tabs[0].sio.call("cancel", {"job_id": job_id}, timeout=10).get("ok") is True
        for i, job_id in enumerate(accepted):
            tabs[i % 2].wait_for(job_id, ENDS)
    finally:
        for tab in tabs:
            tab.close()


def test_a_worker_killed_mid_job_has_its_job_run_again_on_the_other(cluster):
    tab = Tab(cluster.webs[0].url, client_id="tab-kill-a-worker")
    before = pngs(cluster)
    try:
        job_id = tab.submit({**LONG, "steps": 120, "seed": 12})
        tab.wait_for(job_id, ("job_step",))
        running = []
        wait_until(lambda: running.extend(w for w in cluster.wait_for_workers(2) if w["job_id"] == job_id) or running,
                   what="health to show the worker running the job")
        victim = next(w for w in cluster.workers if w.name == running[0]["name"])
        victim.kill9()
        events = tab.wait_for(job_id, ENDS, timeout=240)
        time.sleep(2.0)  # room for a second end, were there one
        assert [n for n, _ in tab.ends(job_id)] == ["job_done"], [n for n, _ in events]
        assert tab.names(job_id).count("job_plan") == 2  # started again from the top, on the other worker
        assert pngs(cluster) - before == {tab.ends(job_id)[0][1]["name"]}
    finally:
        tab.close()
        # Back to two workers for the tests after this one.
        replacement = WorkerProcess(cluster.redis.url, cluster.outputs, cluster.folder / "w2.log", "w2").start()
        cluster.workers.append(replacement)
        cluster.wait_for_workers(2)


def test_a_redis_restart_ends_the_running_job_once_and_the_cluster_recovers(cluster):
    tab = Tab(cluster.webs[1].url, client_id="tab-redis-restart")
    try:
        job_id = tab.submit({**LONG, "steps": 150, "seed": 13})
        tab.wait_for(job_id, ("job_step",))
        cluster.redis.restart()
        tab.wait_for(job_id, ENDS, timeout=240)
        time.sleep(2.0)
        assert len(tab.ends(job_id)) == 1, tab.names(job_id)
        assert tab.ends(job_id)[0][0] in ("job_done", "job_error")
        # Both web processes take and finish new jobs again.
        for web in cluster.webs:
            other = Tab(web.url, client_id=f"tab-after-restart-{web.port}")
            try:
                again = other.submit({**QUICK, "seed": 14})
                assert [n for n, _ in other.wait_for(again, ENDS) if n in ENDS] == ["job_done"]
            finally:
                other.close()
    finally:
        tab.close()


def test_metrics_count_each_workers_jobs_on_every_web_process(cluster):
    from prometheus_client.parser import text_string_to_metric_families

    def scrape(web) -> tuple[dict, dict]:
        text = requests.get(web.url + "/metrics", timeout=5).text
        ended, steps = defaultdict(int), {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "studio_jobs_total":
                    ended[sample.labels["worker"]] += int(sample.value)
                elif sample.name == "studio_step_seconds_count":
                    steps[sample.labels["worker"]] = int(sample.value)
        return dict(ended), steps

    for web in cluster.webs:
        # The web processes read the workers' heartbeats: what /metrics counts is what each worker
        # says it ran. A heartbeat may land between the two requests: read both again until they agree.
        deadline = time.monotonic() + 10
        while True:
            workers = {w["name"]: w["jobs_done"]
                       for w in requests.get(web.url + "/api/health", timeout=5).json()["workers"]}
            ended, steps = scrape(web)
            if ended == workers or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert ended == workers and set(steps) == set(workers), (ended, steps, workers)
        assert len(workers) == 2 and sum(workers.values()) > 0
        assert all(steps[name] > 0 for name, done in workers.items() if done)
