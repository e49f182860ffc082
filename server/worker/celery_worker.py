"""`img2img-studio worker`: a process that loads one model and runs jobs from Celery.

It runs the same `Studio.run_job` as the embedded worker thread. Its socket messages go through a
latest-wins channel (stale preview frames are dropped before they reach Redis, so a slow Redis or a
slow client never piles frames up) and are published on Flask-SocketIO's message queue, from which
the web process holding the job's tab delivers them. Every step it checks the ledger, so a cancel,
a supersede or a disconnect on any web process lands within one step.
"""
from __future__ import annotations

import base64
import json
import logging
import os
import socket
import threading
import time

from .. import payloads
from ..channel import MessageChannel, deliver
from ..cluster.celery_app import DECODE_STEP, RUN_JOB, make_celery, model_queue, worker_queue
from ..cluster.heartbeat import Heartbeat
from ..cluster.ledger import JobLedger, redis_client
from ..engine import GenerationRequest
from ..runtime import Runtime
from ..storage.images import png_bytes
from .jobs import DONE, ENDED_EVENT, FAILED, Job, run_to_outcome
from .latent_cache import StepsEvicted
from .studio import Studio

log = logging.getLogger(__name__)

# How long a worker keeps trying to record a job's end while Redis is away (a restart).
FINISH_RETRY_S = 60.0
REPLY_TTL_S = 120


def default_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class LedgerCancel:
    """Stands in for a job's cancel event: set when the ledger says the job is no longer this
    worker's to run (cancelled, superseded, its tab gone, or given to another worker)."""

    def __init__(self, ledger: JobLedger, job_id: str, attempt: int):
        self._ledger, self._job_id, self._attempt = ledger, job_id, attempt
        self._set = False

    def is_set(self) -> bool:
        if not self._set:
            try:
                self._set = not self._ledger.still_mine(self._job_id, self._attempt)
            except Exception as exc:  # noqa: BLE001 - Redis restarting: carry on, check next step
                log.warning("Could not check job %s for a cancel (%s)", self._job_id, exc)
        return self._set

    def set(self) -> None:
        self._set = True


class ClusterWorker:
    def __init__(self, broker: str, name: str, studio: Studio, redis):
        self.name, self.studio, self.redis = name, studio, redis
        self.ledger = JobLedger(redis)
        self.channel = MessageChannel(Runtime("threading"))
        self.metrics = studio.metrics  # GET /metrics on the web processes reads it from the heartbeat
        self.state, self.job_id, self.jobs_done = "loading", None, 0
        self.heartbeat = Heartbeat(redis, name, self.describe)
        from flask_socketio import SocketIO  # write-only: publishes to the web processes through Redis

        self._socket = SocketIO(message_queue=broker)
        self._stopping = threading.Event()

    def describe(self) -> dict:
        status = self.studio.status
        return {"model": self.studio.models.startup.name, "device": self.studio.device_name,
                "state": self.state if status.status != "error" else "error",
                "message": status.message if status.status == "error" else "",
                "job_id": self.job_id, "jobs_done": self.jobs_done, "metrics": self.metrics.snapshot()}

    # -- start-up ------------------------------------------------------------------------------
    def start(self) -> None:
        self.heartbeat.start()
        self.heartbeat.beat()
        threading.Thread(target=self._deliver, name="delivery", daemon=True).start()
        self.studio.load()  # raises when the model cannot load: the process exits saying why
        self._set_state("idle")

    def queues(self) -> list[str]:
        return [model_queue(self.studio.models.startup.name), worker_queue(self.name)]

    def stop(self) -> None:
        self._stopping.set()
        self.heartbeat.stop()

    def _set_state(self, state: str, job_id: str | None = None) -> None:
        self.state, self.job_id = state, job_id
        self.heartbeat.beat()

    def _deliver(self) -> None:
        while not self._stopping.is_set():
            # Redis away: a message that fails is logged and lost (an end is kept in the ledger).
            deliver(self.channel.take(0.5), self._socket.emit, self.metrics)

    # -- one job -------------------------------------------------------------------------------
    def run_job(self, job_id: str, attempt: int) -> None:
        record = self.ledger.claim(job_id, attempt, self.name)
        if record is None:
            return  # ended (cancelled before it started) or a duplicate delivery: nothing to do
        tab = record["tab"]
        self._set_state("busy", job_id)
        try:
            outcome, payload = self._run(job_id, attempt, record)
            ended_here = self._finish(job_id, outcome, payload, attempt)
            if ended_here:
                self.jobs_done += 1
                self.metrics.job_ended(outcome)
        finally:
            self._set_state("idle")  # the beat carries the counts above
        if ended_here:
            self.channel.put(ENDED_EVENT[outcome], payload, to=tab)

    def _run(self, job_id: str, attempt: int, record: dict) -> tuple[str, dict]:
        try:
            request = GenerationRequest.from_payload(json.loads(record["task"]))
            choice = self.studio.models.choose(record["model"])
            if request.init_image is not None:
                self.studio.uploads.record(request.init_image)
        except KeyError:
            return FAILED, payloads.job_error(job_id, (
                f"Worker {self.name} cannot find the init image {request.init_image} in "
                f"{self.studio.uploads.root}. Every web process and worker must share one outputs folder "
                "(the same machine, or a network file system mounted at the same path)."))
        except ValueError as exc:
            return FAILED, payloads.job_error(job_id, str(exc))
        job = Job(job_id, record["tab"], request, LedgerCancel(self.ledger, job_id, attempt), model=choice,
                  live=record.get("live") == "1")

        def emit(event: str, payload: dict, latest: bool = False) -> None:
            if latest and job.cancelled():
                return
            if event == "job_output":  # so a job whose worker dies after this is not run again
                self.ledger.output_saved(job_id)
            self.channel.put(event, payload, to=job.client, latest_key=job_id if latest else None)

        return run_to_outcome(self.studio.run_job, job, emit)

    def _finish(self, job_id: str, outcome: str, payload: dict, attempt: int) -> bool:
        deadline = time.monotonic() + FINISH_RETRY_S
        while True:
            try:
                return self.ledger.finish(job_id, outcome, ENDED_EVENT[outcome], payload, attempt)
            except Exception as exc:  # noqa: BLE001 - Redis restarting: the end must still be recorded
                if time.monotonic() > deadline:
                    log.error("Could not record the end of job %s (%s); it is lost", job_id, exc)
                    return outcome == DONE  # the output is saved; say so if the socket gets through
                time.sleep(0.5)

    # -- a full decode of a step this worker computed --------------------------------------------
    def decode_step(self, job_id: str, item: int, index: int, reply_key: str) -> None:
        try:
            image = self.studio.promote(job_id, item, index)
            reply = payloads.promoted(index, item, image.width, image.height, png_bytes(image))
            reply["image"] = base64.b64encode(reply["image"]).decode("ascii")  # JSON in Redis; the web decodes
        except StepsEvicted as exc:
            reply = payloads.error(str(exc))
        pipe = self.redis.pipeline()
        pipe.rpush(reply_key, json.dumps(reply))
        pipe.expire(reply_key, REPLY_TTL_S)
        pipe.execute()


def run_worker(broker: str, name: str, studio: Studio, announce=print) -> None:
    """Load the model, then take jobs until stopped (Ctrl+C: the running job finishes first)."""
    worker = ClusterWorker(broker, name, studio, redis_client(broker))
    celery = make_celery(broker)

    @celery.task(name=RUN_JOB)
    def run_job(job_id: str, attempt: int) -> None:
        worker.run_job(job_id, int(attempt))

    @celery.task(name=DECODE_STEP)
    def decode_step(job_id: str, item: int, index: int, reply_key: str) -> None:
        worker.decode_step(job_id, int(item), int(index), reply_key)

    announce(f"Worker {name}: loading {studio.models.startup.name} on {studio.device_name}")
    worker.start()
    announce(f"Worker {name}: serving {studio.models.startup.name} on {studio.device_name}, "
             f"taking jobs from {redact(broker)}")
    try:
        celery.worker_main(["worker", "--pool=solo", "--concurrency=1", "--loglevel=WARNING",
                            "--without-gossip", "--without-mingle", "--without-heartbeat",
                            "-n", f"{name}@%h", "-Q", ",".join(worker.queues())])
    finally:
        worker.stop()


def redact(url: str) -> str:
    """A broker URL without its password, for logs."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url
