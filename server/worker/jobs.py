"""The job queue and its one native worker thread per device.

Every accepted job ends exactly once, as done, cancelled or error, and its client is told. A
client can cancel its own jobs; `supersede` cancels all of a client's unfinished jobs first; a
`live` job (the page's Live mode) cancels only the client's unfinished live jobs, so the jobs it
queued itself keep their place; a disconnect cancels them all.
"""
from __future__ import annotations

import logging
import secrets
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

from .. import payloads
from ..engine import GenerationCancelled, GenerationRequest
from ..metrics import WorkerMetrics

log = logging.getLogger(__name__)

# Finished jobs whose owner is still remembered, for promote (the latent cache keeps 16 jobs).
REMEMBERED_OWNERS = 256
WORKER_TASK_TIMEOUT_S = 300

QUEUED, RUNNING, DONE, CANCELLED, FAILED = "queued", "running", "done", "cancelled", "error"
ENDED_EVENT = {DONE: "job_done", CANCELLED: "job_cancelled", FAILED: "job_error"}
Emit = Callable[..., None]  # emit(event, payload built by server.payloads, latest=False)


class JobRejected(Exception):
    """A job that cannot be accepted; the message is shown to the person."""


@dataclass
class Job:
    id: str
    client: str
    request: GenerationRequest
    cancel_event: Any  # a native threading.Event
    state: str = QUEUED
    created: float = field(default_factory=time.time)
    between_steps: Callable[[], None] = lambda: None  # the worker's chance to run waiting tasks
    model: Any = None  # the model it runs on, recorded when queued (None: the runner's current one)
    live: bool = False  # made by the page's Live mode: replaced by the tab's next live job

    def cancelled(self) -> bool:
        """Polled by the engine between steps, on the worker thread."""
        self.between_steps()
        return self.cancel_event.is_set()


@dataclass
class QueuedCall:
    """Worker work that takes its turn in the job queue (a model switch): jobs queued before it
    run first, jobs queued after it wait for it."""

    call: Callable[[], Any]


@dataclass
class WorkerTask:
    """A short piece of device work (a full decode) run on the worker, between a job's steps."""

    call: Callable[[], Any]
    done: Any  # a native threading.Event
    result: Any = None
    error: BaseException | None = None


class JobManager:
    """Queue + worker. `runner(job, emit)` does the work and returns the job_done payload (both
    built by server.payloads); `prepare()` runs once on the worker before the first job (model
    loading). Each job's outcome is counted on `metrics` (the worker's WorkerMetrics)."""

    def __init__(self, runtime, channel, runner, prepare=None, max_per_client: int = 4, max_total: int = 32,
                 metrics: WorkerMetrics | None = None):
        self._runtime = runtime
        self.metrics = metrics or WorkerMetrics(runtime.lock())
        self._channel = channel
        self._runner = runner
        self._prepare = prepare
        self.max_per_client = max_per_client
        self.max_total = max_total
        self._queue = runtime.queue()
        self._tasks = runtime.queue()  # WorkerTasks, ahead of queued jobs
        self._lock = runtime.lock()
        self._jobs: dict[str, Job] = {}  # unfinished jobs only
        self._owners: OrderedDict[str, str] = OrderedDict()  # job id -> client, finished ones too
        self._stopping = runtime.event()
        self._thread = None
        self.jobs_ended = 0

    # -- socket side -----------------------------------------------------------------------
    def start(self) -> None:
        self._thread = self._runtime.start_native_thread(self._work, "generation-worker")

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        for job in list(self._jobs.values()):
            job.cancel_event.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def submit(self, client: str, request: GenerationRequest, supersede: bool = False, model: Any = None,
               live: bool = False) -> Job:
        if supersede:
            self.cancel_client(client)
        elif live:
            self.cancel_client(client, live_only=True)
        with self._lock:
            # A cancelled job that is still running (it stops at its next step) holds no place: at
            # most one job runs, so this lets no flood through, and a Live drag is never refused.
            mine = [j for j in self._jobs.values() if j.client == client and not j.cancel_event.is_set()]
            if len(mine) >= self.max_per_client:
                raise JobRejected(
                    f"You already have {len(mine)} jobs queued or running (the limit is {self.max_per_client}). "
                    "Wait for one to finish, cancel one, or use supersede."
                )
            if len(self._jobs) >= self.max_total:
                raise JobRejected(
                    f"The studio already has {len(self._jobs)} unfinished jobs from everyone (the limit is "
                    f"{self.max_total}, --max-queued-total). Try again when some have finished.")
            # 128 random bits: ids reach other tabs' logs and screens, and must not be guessable.
            job = Job(f"job-{secrets.token_hex(16)}", client, request, self._runtime.event(),
                      between_steps=self._run_tasks, model=model, live=live)
            self._jobs[job.id] = job
            self._owners[job.id] = client
            while len(self._owners) > REMEMBERED_OWNERS:
                self._owners.popitem(last=False)
        self._queue.put(job)
        return job

    def cancel(self, job_id: str, client: str | None = None) -> bool:
        """Cancel one job; a client may only cancel its own. Returns whether it was unfinished."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or (client is not None and job.client != client):
                return False
            job.cancel_event.set()
            if job.state == QUEUED:
                # Not started: it ends here. The worker skips it when it comes up.
                self._finish(job, CANCELLED, payloads.job_cancelled(job.id))
        return True

    def cancel_client(self, client: str, live_only: bool = False) -> int:
        with self._lock:
            ids = [j.id for j in self._jobs.values() if j.client == client and (j.live or not live_only)]
        return sum(self.cancel(job_id) for job_id in ids)

    def owns(self, client: str, job_id: str) -> bool:
        """Whether `client` submitted `job_id` (finished jobs are remembered for a while)."""
        with self._lock:
            return self._owners.get(job_id) == client

    def enqueue_call(self, call: Callable[[], Any]) -> None:
        """Run `call` on the worker in queue order, after the jobs already queued. Its failures
        are its own to report; they are logged here and never stop the worker."""
        self._queue.put(QueuedCall(call))

    def run_on_worker(self, call: Callable[[], Any]) -> Any:
        """Run `call` on the worker thread, ahead of queued jobs and between a running job's steps,
        so device work never runs beside the UNet. Blocks until it has run; re-raises its error."""
        task = WorkerTask(call, self._runtime.event())
        self._tasks.put(task)
        self._queue.put(None)  # wakes an idle worker
        if not task.done.wait(WORKER_TASK_TIMEOUT_S):
            raise RuntimeError("The worker did not get to the request in time; try again.")
        if task.error is not None:
            raise task.error
        return task.result

    def queue_length(self) -> int:
        with self._lock:
            return sum(1 for j in self._jobs.values() if j.state == QUEUED)

    def running_job(self) -> str | None:
        with self._lock:
            return next((j.id for j in self._jobs.values() if j.state == RUNNING), None)

    def job_state(self, job_id: str) -> str | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return job.state if job else None

    # -- worker side -----------------------------------------------------------------------
    def _emitter(self, job: Job) -> Emit:
        def emit(event: str, payload: dict, latest: bool = False) -> None:
            if latest and job.cancelled():
                return  # no more previews for a cancelled job
            self._channel.put(event, payload, to=job.client, latest_key=job.id if latest else None)

        return emit

    def _finish(self, job: Job, state: str, payload: dict) -> None:
        """Must hold self._lock. The single place a job ends, so it ends once; `payload` is the
        job_done, job_cancelled or job_error message (server.payloads)."""
        if job.state in (DONE, CANCELLED, FAILED):
            return
        job.state = state
        self.jobs_ended += 1
        self._jobs.pop(job.id, None)
        self.metrics.job_ended(state)  # before the client hears of it, so a scrape after that counts it
        self._channel.put(ENDED_EVENT[state], payload, to=job.client)

    def _work(self) -> None:
        if self._prepare is not None:
            try:
                self._prepare()
            except Exception as exc:  # the runner reports it to each job that needs that model
                log.error("Model failed to load: %s", exc)
        while not self._stopping.is_set():
            self._run_tasks()
            try:
                job = self._queue.get(timeout=0.25)
            except self._runtime.queue_empty:
                continue
            if job is None:
                continue  # a wake-up for a worker task
            if isinstance(job, QueuedCall):
                try:
                    job.call()
                except Exception:  # noqa: BLE001 - logged; the worker carries on
                    log.exception("A queued worker call failed")
                continue
            with self._lock:
                if job.state != QUEUED:
                    continue  # cancelled while it waited
                job.state = RUNNING
            self._run(job)

    def _run_tasks(self) -> None:
        """Worker side: run every waiting WorkerTask."""
        while True:
            try:
                task = self._tasks.get_nowait()
            except self._runtime.queue_empty:
                return
            try:
                task.result = task.call()
            except BaseException as exc:  # noqa: BLE001 - handed back to the waiting caller
                task.error = exc
            task.done.set()

    def _run(self, job: Job) -> None:
        outcome, payload = run_to_outcome(self._runner, job, self._emitter(job))
        with self._lock:
            self._finish(job, outcome, payload)


def run_to_outcome(runner, job: Job, emit: Emit) -> tuple[str, dict]:
    """Run one job (the embedded worker thread and a cluster worker alike): (DONE, job_done
    payload), (CANCELLED, job_cancelled) or (FAILED, job_error with a sentence a person can act on)."""
    try:
        return DONE, runner(job, emit)
    except GenerationCancelled:
        return CANCELLED, payloads.job_cancelled(job.id)
    except ValueError as exc:  # bad settings the engine found (e.g. an impossible size)
        return FAILED, payloads.job_error(job.id, str(exc))
    except Exception as exc:
        log.error("Job %s failed:\n%s", job.id, traceback.format_exc())
        return FAILED, payloads.job_error(job.id, f"Generation failed: {exc}")
