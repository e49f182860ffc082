"""The Celery app both sides share: JSON only, one job at a time, acknowledged when it ends.

The task carries only (job id, attempt); what the job asks for is in the ledger. Each worker
takes jobs from its model's queue (so a job goes to a worker serving its model) and from its own
queue (full decodes of a step it computed, whose latents only it holds).
"""
from __future__ import annotations

import hashlib

from celery import Celery

RUN_JOB = "studio.run_job"
DECODE_STEP = "studio.decode_step"


def make_celery(broker_url: str) -> Celery:
    app = Celery("img2img_studio", broker=broker_url)
    app.conf.update(
        # No pickle anywhere on the wire: a message is data, never code.
        task_serializer="json", accept_content=["json"], result_serializer="json",
        task_ignore_result=True,  # results reach the browser through the socket, not Celery
        # A job's message stays in Redis until the job ends, and a worker holds one at a time, so a
        # killed worker loses at most its running job, which the ledger re-queues (heartbeat.py).
        task_acks_late=True, worker_prefetch_multiplier=1,
        # Redelivery of an unacknowledged message only after this long: a late duplicate finds the
        # job claimed or ended in the ledger and is skipped, and no running job is ever redelivered early.
        broker_transport_options={"visibility_timeout": 24 * 3600},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    return app


def model_queue(model_name: str) -> str:
    """A queue per model (names may hold any character; queue names get a digest)."""
    return "studio.model." + hashlib.sha256(model_name.encode()).hexdigest()[:16]


def worker_queue(worker_name: str) -> str:
    return "studio.worker." + hashlib.sha256(worker_name.encode()).hexdigest()[:16]
