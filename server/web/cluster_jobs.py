"""The web process's side of cluster mode: accept jobs into the ledger and Celery, cancel them,
watch the workers.

It stands where the embedded `JobManager` stands (the same methods for the handlers), but runs no
job: workers do (`img2img-studio worker`). Messages it sends itself (a job cancelled before it
started, a job whose worker died) go through the Socket.IO message queue like the workers', so
they reach the tab on whichever web process holds it.
"""
from __future__ import annotations

import base64
import json
import logging
import secrets
import time
from dataclasses import dataclass

import socketio

from .. import payloads
from ..cluster.celery_app import DECODE_STEP, RUN_JOB, make_celery, model_queue, worker_queue
from ..cluster.heartbeat import live_workers
from ..cluster.ledger import CapReached, JobLedger, redis_client
from ..worker.jobs import CANCELLED, FAILED, JobRejected
from ..worker.latent_cache import StepsEvicted
from ..worker.loaded_models import ModelStatus

log = logging.getLogger(__name__)

WATCH_S = 1.0
MAX_ATTEMPTS = 2  # a job whose worker died is run once more, on another worker
DECODE_TIMEOUT_S = 120
# An end recorded in the ledger but not relayed here after this long was lost on the way.
MISSED_END_AFTER_S = 3.0


class SeenEndsManager(socketio.RedisManager):
    """Flask-SocketIO's Redis message queue, noting each job end it relays to this process's tabs."""

    def __init__(self, url: str, on_end):
        super().__init__(url, channel="flask-socketio")
        self._on_end = on_end

    def _handle_emit(self, message):
        data = message.get("data")
        if message.get("event") in ("job_done", "job_cancelled", "job_error") and isinstance(data, list) \
                and data and isinstance(data[0], dict):
            self._on_end(data[0].get("job_id"))
        super()._handle_emit(message)


@dataclass(frozen=True)
class AcceptedJob:
    id: str


class ClusterJobs:
    def __init__(self, broker: str, socketio, max_per_client: int = 4, max_total: int = 32):
        self.broker = broker
        self.redis = redis_client(broker)
        self._blocking = redis_client(broker, blocking=True)  # waits on a worker's decode reply
        self.ledger = JobLedger(self.redis)
        self.celery = make_celery(broker)
        self._socketio = socketio
        self.max_per_client, self.max_total = max_per_client, max_total
        self._stopping = False
        self.workers: list[dict] = []  # the latest heartbeats, refreshed by the watcher
        self.on_workers_changed = lambda workers: None
        # Jobs accepted here whose end this process has not relayed yet: if Redis restarts, an end
        # published while this process was reconnecting is lost, and the watcher sends it from the
        # ledger instead (see end_seen).
        self._open: dict[str, str] = {}

    # -- the handlers' side (same names as JobManager) ------------------------------------------
    def start(self) -> None:
        self._socketio.start_background_task(self._watch)

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping = True

    def submit(self, client: str, request, supersede: bool = False, model=None, live: bool = False) -> AcceptedJob:
        name = model.name
        serving = [w for w in self.workers if w.get("model") == name and w.get("state") != "error"]
        if not serving:
            raise JobRejected(f"No worker serves {name} right now. Start one with `img2img-studio worker "
                              f"--broker URL --model …` (its health panel lists the workers), or pick another model.")
        if supersede:
            self.cancel_client(client)
        elif live:
            self.cancel_client(client, live_only=True)
        job_id = f"job-{secrets.token_hex(16)}"
        try:
            self.ledger.submit(job_id, client, name, request.to_dict(), live, self.max_per_client, self.max_total)
        except CapReached as cap:
            if cap.which == "tab":
                raise JobRejected(f"You already have {cap.count} jobs queued or running (the limit is "
                                  f"{self.max_per_client}). Wait for one to finish, cancel one, or use supersede.") from None
            raise JobRejected(f"The studio already has {cap.count} unfinished jobs from everyone (the limit is "
                              f"{self.max_total}, --max-queued-total). Try again when some have finished.") from None
        self._open[job_id] = client
        self._send(job_id, 1, name)
        return AcceptedJob(job_id)

    def cancel(self, job_id: str, client: str | None = None) -> bool:
        outcome = self.ledger.cancel(job_id, client)
        if outcome == 2:  # it had not started: ended here; its delivery will find it ended
            self._end(job_id, CANCELLED, payloads.job_cancelled(job_id))
        return outcome > 0

    def cancel_client(self, client: str, live_only: bool = False) -> int:
        return sum(self.cancel(job_id) for job_id in self.ledger.unfinished_of(client, live_only))

    def owns(self, client: str, job_id: str) -> bool:
        return self.ledger.fields(job_id).get("tab") == client

    def enqueue_call(self, call) -> None:
        """The embedded studio loads a selected model on its worker; here each worker keeps the
        model it was started with, so a selection only changes what jobs naming none run on."""

    def queue_length(self) -> int:
        return self.ledger.queue_length()

    # -- full decode of a step, on the worker that holds its latents ------------------------------
    def decode_step(self, job_id: str, item: int, index: int) -> dict:
        """Blocking (a green wait under eventlet): the promote ack's payload."""
        worker = self.ledger.fields(job_id).get("worker")
        if not worker or not any(w["name"] == worker for w in self.workers):
            raise StepsEvicted(f"The worker that ran job {job_id} is gone, and its steps with it.")
        reply_key = f"studio:reply:{secrets.token_hex(16)}"
        self.celery.send_task(DECODE_STEP, args=[job_id, item, index, reply_key], queue=worker_queue(worker))
        answer = self._blocking.blpop([reply_key], timeout=DECODE_TIMEOUT_S)
        if answer is None:
            raise StepsEvicted("The worker did not decode the step in time (it may be busy with a long job); "
                               "try again.")
        reply = json.loads(answer[1])
        if reply.get("ok"):
            reply["image"] = base64.b64decode(reply["image"])
        return reply

    # -- status ---------------------------------------------------------------------------------
    def model_status(self, name: str) -> ModelStatus:
        """The selected model's status, as the page shows it, from the workers serving it."""
        serving = [w for w in self.workers if w.get("model") == name]
        ready = [w for w in serving if w.get("state") in ("idle", "busy")]
        if ready:
            return ModelStatus("ready", 1.0, f"{len(ready)} worker{'s' * (len(ready) > 1)} ready", name, name)
        if any(w.get("state") == "loading" for w in serving):
            return ModelStatus("loading", 0.5, "a worker is loading it", name, name)
        if serving:
            return ModelStatus("error", 0.0, serving[0].get("message") or "its worker failed", name, name)
        return ModelStatus("loading", 0.0, "waiting for a worker (img2img-studio worker --broker …)", name, name)

    # -- the watcher ----------------------------------------------------------------------------
    def _watch(self) -> None:
        while not self._stopping:
            try:
                self.refresh()
            except Exception as exc:  # noqa: BLE001 - Redis away (restarting): try again shortly
                log.warning("Cannot reach Redis to watch the workers (%s)", exc)
            self._socketio.sleep(WATCH_S)

    def refresh(self) -> None:
        workers = live_workers(self.redis)
        changed = [(w["name"], w.get("state")) for w in workers] != [(w["name"], w.get("state")) for w in self.workers]
        self.workers = workers
        if changed:
            self.on_workers_changed(workers)
        alive = {w["name"] for w in workers}
        for job_id in self.ledger.unfinished():
            fields = self.ledger.fields(job_id)
            if fields.get("state") == "running" and fields.get("worker") not in alive:
                self._orphaned(job_id, fields)

        self._deliver_missed_ends()

    def end_seen(self, job_id: str) -> None:
        """The message queue relayed this job's end through this process (SeenEndsManager)."""
        self._open.pop(job_id, None)

    def _deliver_missed_ends(self) -> None:
        now = time.time()
        for job_id, tab in list(self._open.items()):
            fields = self.ledger.fields(job_id)
            if not fields:  # Redis lost it (restarted without its data): say so rather than wait forever
                self._open.pop(job_id, None)
                self._socketio.emit("job_error", payloads.job_error(job_id, (
                    "The job queue (Redis) lost this job (it restarted without its saved data). Generate again.")),
                    to=tab, ignore_queue=True)
                continue
            ended = self.ledger.ended_message(fields)
            if ended is not None and now - float(fields.get("ended_at") or now) > MISSED_END_AFTER_S:
                self._open.pop(job_id, None)
                log.warning("Delivering the end of %s from the ledger (its message was lost)", job_id)
                self._socketio.emit(ended[0], ended[1], to=tab, ignore_queue=True)

    def _orphaned(self, job_id: str, fields: dict) -> None:
        worker = fields["worker"]
        outcome, count = self.ledger.orphaned(job_id, worker, MAX_ATTEMPTS)
        if outcome == 1:
            log.warning("Worker %s stopped while running %s; running it again (attempt %d)", worker, job_id, count)
            self._send(job_id, count, fields["model"])
        elif outcome == 2:
            saved = f" {count} of its outputs were saved (they are in the gallery)." if count else ""
            error = payloads.job_error(job_id, (
                f"The worker running this job ({worker}) stopped (it was killed or lost its connection), and the "
                f"job was not run again.{saved} Generate again to retry."))
            self.ledger.record_end(job_id, "job_error", error)
            self._end(job_id, FAILED, error, tab=fields.get("tab"))
        elif outcome == 3:
            self._end(job_id, CANCELLED, payloads.job_cancelled(job_id), tab=fields.get("tab"))

    def _send(self, job_id: str, attempt: int, model_name: str) -> None:
        try:
            self.celery.send_task(RUN_JOB, args=[job_id, attempt], queue=model_queue(model_name))
        except Exception as exc:
            self._open.pop(job_id, None)
            self.ledger.finish(job_id, FAILED, "job_error", payloads.job_error(job_id, "The job could not be queued."))
            raise JobRejected(f"The job queue (Redis) is not reachable: {exc}. Try again.") from None

    def _end(self, job_id: str, state: str, payload: dict, tab: str | None = None) -> None:
        """Tell the tab about an end the ledger already recorded (exactly once, by its caller)."""
        tab = tab or self.ledger.fields(job_id).get("tab")
        if tab:
            event = {CANCELLED: "job_cancelled", FAILED: "job_error"}[state]
            self._socketio.emit(event, payload, to=tab)
