"""What each worker counts, and the Prometheus text GET /metrics serves from it.

Shared by the web and worker processes: no Flask, no torch. Each worker records into its own
`WorkerMetrics` (the embedded worker thread has one; a worker process has one); `snapshot()` is
plain JSON, so it can travel to a web process (in a worker's heartbeat) as well as stay in memory.
`render()` turns the queue length and every worker's snapshot into the text exposition format
with prometheus_client, through a fresh registry per scrape: nothing is global, and a worker that
is gone leaves no stale series behind.
"""
from __future__ import annotations

import bisect
import threading

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

OUTCOMES = ("done", "cancelled", "error")  # how a job ends (server.worker.jobs), each exactly once

# Bucket upper bounds in seconds, roughly x2.5 apart so each covers a distinct order of magnitude.
# A denoising step ranges from milliseconds (the tiny test model, a Turbo model on a GPU, the demo
# model's ~30 ms on CPU) through seconds (SD 1.5 at 512² on 2 CPU cores: 12.7 s) to a minute or
# more (SDXL at 1024² on CPU), so the step buckets span 5 ms to 2 minutes.
STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 60.0, 120.0)
# A preview's latency (worker put -> handed to the socket layer's emit) is a fraction of a
# millisecond while the socket side keeps up, and grows to seconds only when it falls behind (a
# busy loop, a slow message queue): 0.1 ms to 5 s.
PREVIEW_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0)


class _Histogram:
    """Counts per bucket (not cumulative; the last one is above the highest bound), count and sum."""

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bound's bucket (le is "<=").
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds

    def snapshot(self) -> dict:
        return {"bounds": list(self.bounds), "counts": list(self.counts), "count": sum(self.counts),
                "sum": self.sum}


class WorkerMetrics:
    """One worker's counts. Thread-safe: the worker records steps and outcomes, the delivery side
    records previews, and the web side reads snapshots, each on its own thread."""

    def __init__(self, lock=None):
        # Under eventlet, pass a native lock (Runtime.lock()): it is shared with the native worker thread.
        self._lock = lock or threading.Lock()
        self._jobs = dict.fromkeys(OUTCOMES, 0)
        self._steps = _Histogram(STEP_BUCKETS)
        self._previews = _Histogram(PREVIEW_BUCKETS)

    def job_ended(self, outcome: str) -> None:
        if outcome not in self._jobs:
            raise ValueError(f"a job ends as one of {', '.join(OUTCOMES)}, not {outcome!r}")
        with self._lock:
            self._jobs[outcome] += 1

    def step(self, seconds: float) -> None:
        """One taken denoising step's time (`StepFrame.step_s`)."""
        with self._lock:
            self._steps.observe(seconds)

    def preview_delivered(self, seconds: float) -> None:
        """A job_step's time from the worker's put into the channel to the socket layer's emit."""
        with self._lock:
            self._previews.observe(seconds)

    def snapshot(self) -> dict:
        """{jobs: {outcome: count}, step_seconds: histogram, preview_latency_seconds: histogram}, where
        a histogram is {bounds, counts (per bucket, one more than bounds), count, sum}. Plain JSON."""
        with self._lock:
            return {"jobs": dict(self._jobs), "step_seconds": self._steps.snapshot(),
                    "preview_latency_seconds": self._previews.snapshot()}


def render(queue_length: int, workers: dict[str, dict]) -> tuple[bytes, str]:
    """(Prometheus text, its content type) for GET /metrics, from the number of queued jobs and
    {worker name: WorkerMetrics.snapshot()}."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StudioCollector(queue_length, workers))
    return generate_latest(registry), CONTENT_TYPE_LATEST  # the library keeps the two in step


class _StudioCollector:
    def __init__(self, queue_length: int, workers: dict[str, dict]):
        self._queue_length, self._workers = queue_length, workers

    def collect(self):
        yield GaugeMetricFamily("studio_queue_length", "Jobs accepted and waiting for a worker.",
                                value=self._queue_length)
        yield GaugeMetricFamily("studio_workers", "Workers the studio knows of.", value=len(self._workers))
        jobs = CounterMetricFamily("studio_jobs", "Jobs ended, by worker and outcome (done, cancelled, error).",
                                   labels=["worker", "outcome"])
        steps = HistogramMetricFamily("studio_step_seconds", "Time of one denoising step (UNet, guidance, "
                                      "scheduler), per worker.", labels=["worker"])
        previews = HistogramMetricFamily("studio_preview_latency_seconds", "Time from a worker putting a step "
                                         "preview in its outgoing channel to handing it to the socket layer.",
                                         labels=["worker"])
        for name, snapshot in sorted(self._workers.items()):
            for outcome in OUTCOMES:  # zeros too, so rate() has a start
                jobs.add_metric([name, outcome], snapshot["jobs"].get(outcome, 0))
            for family, key in ((steps, "step_seconds"), (previews, "preview_latency_seconds")):
                histogram = snapshot[key]
                family.add_metric([name], _cumulative(histogram), histogram["sum"])
        yield jobs
        yield steps
        yield previews


def _cumulative(histogram: dict) -> list[tuple[str, float]]:
    """A snapshot's per-bucket counts as Prometheus' cumulative `le` buckets, ending at +Inf."""
    buckets, running = [], 0
    for bound, count in zip([*histogram["bounds"], float("inf")], histogram["counts"]):
        running += count
        buckets.append((floatToGoString(bound), running))
    return buckets
