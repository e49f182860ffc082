"""What a second worker buys, and what Redis adds to a preview's trip (issue 18).

Run from the repo root:  .venv/bin/python benchmarks/scale.py [--jobs 24] [--tabs 6] [--latency-jobs 5]

Needs Debian's redis-server (scripts/setup.sh --test). Every studio process runs the demo model on the
CPU with one torch thread (tests/cluster.py's ONE_THREAD), so two workers on 2 cores run side by side.
Jobs use the demo's recommended settings (128x128, default previews) at 20 steps, txt2img.

(1) Throughput. One cluster (redis-server, one `serve --broker` web process) is started with one
    worker; `--jobs` jobs are submitted at once from `--tabs` tabs (each tab may hold 4 unfinished
    jobs), timed from the first submit to the last job_done. Then a second worker joins the same
    cluster and the same batch runs again. Adding a worker (not stopping one) keeps Celery's
    graceful shutdown and redelivery out of the timed runs. Each worker runs warm-up jobs first.
(2) Preview latency: each job_step carries `step_ended_at` (the worker's time.time() when the step
    ended); the client stamps time.time() on receipt, on the same machine, so clocks agree. Redis
    mode: the cluster's web process with one worker (worker -> Socket.IO message queue in Redis ->
    web -> client). Embedded mode: `python -m server` (web and worker in one process). One tab runs
    `--latency-jobs` jobs one after another in each mode, so no job competes with another for a core.

The machine may be shared: each phase waits for an idle CPU first (overhead.py's wait_for_quiet), and
each throughput batch is run again (up to --tries times) while other programs used more of the cores
than the workers leave free (a tenth of a core at least); the least disturbed one counts. The output shows the CPU every process used in it. The
key=value lines are:

    workers=1 jobs_per_min=...   workers=2 jobs_per_min=...   scale_ratio=<2 vs 1>
    mode=embedded preview_latency_p50_ms=... p95_ms=... frames=...   (and mode=redis)
    latency_added_p50_ms=<redis p50 - embedded p50>

Expected (issue 18; reported, never asserted): scale_ratio close to 2 on 2 otherwise idle cores.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: import tests/ and server/ without installing
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
import socketio  # noqa: E402

from overhead import machine_busy_seconds, process_cpu_seconds, wait_for_quiet  # noqa: E402
from tests.cluster import ONE_THREAD, Cluster, WorkerProcess  # noqa: E402
from tests.helpers import StudioProcess  # noqa: E402

# Inherited by every process started below, the embedded studio included (StudioProcess copies
# os.environ), so both latency modes run the model on one thread as the workers do.
os.environ.update(ONE_THREAD)

ENDS = ("job_done", "job_cancelled", "job_error")
JOB = {"prompt": "a red barn in a green field under a blue sky", "width": 128, "height": 128, "steps": 20}
TIMEOUT = 600.0  # seconds for any one wait


class Tab:
    """A browser tab's socket, keeping every job event with the time.time() it arrived."""

    def __init__(self, url: str, name: str):
        self.sio = socketio.Client(reconnection=False)
        self.events: dict[str, list] = defaultdict(list)  # job id -> [(name, payload, received)]
        self.lock = threading.Condition()
        for event in ("job_plan", "job_step", *ENDS):
            self.sio.on(event, self._keeper(event))
        # A tab's id, as the page keeps one per tab (16 to 64 of [A-Za-z0-9_-]).
        self.sio.connect(url, transports=["websocket"], auth={"client_id": f"scale-benchmark-{name}"})

    def _keeper(self, event):
        def keep(payload):
            received = time.time()
            with self.lock:
                self.events[payload["job_id"]].append((event, payload, received))
                self.lock.notify_all()
        return keep

    def submit(self, settings: dict) -> str:
        ack = self.sio.call("generate", settings, timeout=30)
        if "job_id" not in ack:
            raise RuntimeError(f"generate was refused: {ack}")
        return ack["job_id"]

    def end(self, job_id: str) -> float:
        """When the job's end event came (waiting for it); it must be job_done."""
        def ended():
            return next((e for e in self.events[job_id] if e[0] in ENDS), None)
        with self.lock:
            if not self.lock.wait_for(ended, TIMEOUT):
                raise RuntimeError(f"{job_id} did not end within {TIMEOUT:.0f} s")
            name, payload, received = ended()
        if name != "job_done":
            raise RuntimeError(f"{job_id} ended with {name}: {payload}")
        return received

    def close(self):
        self.sio.disconnect()


def throughput(url: str, jobs: int, tabs: int, seed: int) -> tuple[float, float]:
    """Jobs per minute (`jobs` submitted at once, round robin over `tabs` tabs, first submit to last
    job_done), and the median seconds from a job's plan to its end (how fast one job ran)."""
    clients = [Tab(url, f"batch-{seed}-{i}") for i in range(tabs)]
    try:
        started = time.time()
        submitted = [(tab := clients[k % tabs], tab.submit({**JOB, "seed": seed + k})) for k in range(jobs)]
        last_done = max(tab.end(job_id) for tab, job_id in submitted)
        runs = [tab.end(job_id) - next(r for n, _, r in tab.events[job_id] if n == "job_plan")
                for tab, job_id in submitted]
    finally:
        for tab in clients:
            tab.close()
    return jobs / (last_done - started) * 60, float(np.median(runs))


def cpu_used(pids: dict[str, int], run):
    """(run()'s result, other programs' share of a core, the CPU seconds each of our processes and all
    other programs used meanwhile): a second worker cannot scale while other programs hold a core."""
    def read():
        return {**{name: process_cpu_seconds(pid) for name, pid in pids.items()}, "client": time.process_time(),
                "machine": machine_busy_seconds(), "wall": time.monotonic()}
    before = read()
    result = run()
    used = {k: v - before[k] for k, v in read().items()}
    wall, machine = used.pop("wall"), used.pop("machine")
    used["others"] = machine - sum(used.values())
    return result, used["others"] / wall, "CPU s " + ", ".join(f"{k} {v:.1f}" for k, v in used.items()) + f" in {wall:.1f} s wall"


def preview_latencies(url: str, jobs: int, seed: int) -> list[float]:
    """Milliseconds from step end (worker clock) to receipt (client clock) of every frame of `jobs`
    jobs, run one after another."""
    tab = Tab(url, f"latency-{seed}")
    try:
        tab.end(tab.submit({**JOB, "seed": seed - 1}))  # warm-up, not counted
        latencies = []
        for k in range(jobs):
            job_id = tab.submit({**JOB, "seed": seed + k})
            tab.end(job_id)
            time.sleep(0.2)  # handlers run on their own threads: a last frame may land just after the end
            with tab.lock:
                latencies += [(received - payload["step_ended_at"]) * 1000
                              for name, payload, received in tab.events[job_id] if name == "job_step"]
    finally:
        tab.close()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=24, help="jobs per throughput batch (default 24)")
    parser.add_argument("--tabs", type=int, default=6, help="tabs submitting them; each holds at most 4 (default 6)")
    parser.add_argument("--latency-jobs", type=int, default=5, help="jobs per latency mode (default 5)")
    parser.add_argument("--tries", type=int, default=3, help="runs of a disturbed throughput batch (default 3)")
    args = parser.parse_args()
    if args.jobs > 4 * args.tabs:
        parser.error("each tab may hold 4 unfinished jobs: use more tabs or fewer jobs")
    print(f"settings: demo model, {JOB['width']}x{JOB['height']} txt2img, {JOB['steps']} steps, default previews; "
          f"one torch thread per process; {os.cpu_count()} cores; {args.jobs} jobs from {args.tabs} tabs")
    busy = []  # phases that found no quiet moment

    def quiet(phase: str) -> None:
        if not wait_for_quiet():
            busy.append(phase)

    def batch(workers: int, url: str, pids: dict[str, int]):
        """The least disturbed of up to --tries batches: ((jobs/min, s per job), others' core share, CPU line)."""
        tries, spare = [], max(0.1, os.cpu_count() - workers - 0.2)  # 0.2: the web process and this client
        while len(tries) < args.tries and (not tries or min(t[1] for t in tries) > spare):
            quiet(f"workers={workers}")
            seed = 1000 * workers + 100 * len(tries)
            tries.append(cpu_used(pids, lambda: throughput(url, args.jobs, args.tabs, seed)))
        result, others, cpu = min(tries, key=lambda t: t[1])
        return result, others, f"{cpu}; least disturbed of {len(tries)} run(s)"

    with tempfile.TemporaryDirectory(prefix="scale-") as tmp:
        folder = Path(tmp)
        with Cluster(folder / "cluster", workers=1, webs=1) as cluster:
            url = cluster.webs[0].url
            throughput(url, 1, 1, seed=1)  # warm-up: a worker's first job pays its lazy init
            quiet("redis latency")
            redis_ms = preview_latencies(url, args.latency_jobs, seed=100)
            pids = {"redis": cluster.redis.proc.pid, "web": cluster.webs[0].proc.pid, "w0": cluster.workers[0].proc.pid}
            batches = {1: batch(1, url, pids)}
            second = WorkerProcess(cluster.redis.url, cluster.outputs, cluster.folder / "worker1.log", "w1")
            cluster.workers.append(second.start())
            cluster.wait_for_workers(2)
            throughput(url, 2, 1, seed=2)  # warm-up: each worker holds one job at a time, so one each
            before = {w["name"]: w["jobs_done"] for w in cluster.wait_for_workers(2)}
            pids["w1"] = second.proc.pid
            batches[2] = batch(2, url, pids)
            after = {w["name"]: w["jobs_done"] for w in cluster.wait_for_workers(2)}
        with StudioProcess(folder / "embedded", folder / "embedded.log") as embedded:
            quiet("embedded latency")
            embedded_ms = preview_latencies(embedded.url, args.latency_jobs, seed=100)

    print("jobs per worker in the 2-worker batches: "
          + ", ".join(f"{name} {after[name] - before.get(name, 0)}" for name in sorted(after)))
    if busy:
        print(f"WARNING: no idle CPU before {', '.join(dict.fromkeys(busy))}: another program shared the cores; rerun when idle")
    for workers, ((rate, job_s), _, cpu) in batches.items():
        print(f"{workers} worker(s): median {job_s:.2f} s per job from plan to end; {cpu}")
    for workers, ((rate, _), _, _) in batches.items():
        print(f"workers={workers} jobs_per_min={rate:.1f}")
    print(f"scale_ratio={batches[2][0][0] / batches[1][0][0]:.2f}")
    p50 = {}
    for mode, latencies in (("embedded", embedded_ms), ("redis", redis_ms)):
        p50[mode], p95 = np.percentile(latencies, [50, 95])
        print(f"mode={mode} preview_latency_p50_ms={p50[mode]:.1f} p95_ms={p95:.1f} frames={len(latencies)}")
    print(f"latency_added_p50_ms={p50['redis'] - p50['embedded']:.1f}")


if __name__ == "__main__":
    main()
