"""Workers announce themselves: model, device, state, the job they run, and their metrics.

Each worker process rewrites its record every BEAT_S seconds with a time-to-live of DEAD_AFTER_S,
so a worker that is killed (or cut off from Redis) simply disappears: web processes list the
records that exist, and a running job whose worker has no record is an orphan (see ledger.py).
"""
from __future__ import annotations

import json
import logging
import threading
import time

from .ledger import PREFIX

log = logging.getLogger(__name__)

BEAT_S = 1.0
# Long enough that a busy machine's late beat is not taken for a death, short enough that a
# killed worker's job is given to another within seconds.
DEAD_AFTER_S = 6.0


class Heartbeat:
    """The worker's side: a thread that keeps its record alive while the process lives."""

    def __init__(self, redis, name: str, describe, prefix: str = PREFIX):
        self.redis, self.name, self.prefix = redis, name, prefix
        self._describe = describe  # () -> dict: model, device, state, job_id, jobs_done, metrics
        self._stopping = threading.Event()
        self._thread = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._thread.start()

    def beat(self) -> None:
        """Write the record now (also on every state change, so the page sees busy at once)."""
        record = {"name": self.name, **self._describe(), "at": time.time()}
        try:
            pipe = self.redis.pipeline()
            pipe.set(f"{self.prefix}worker:{self.name}", json.dumps(record), px=int(DEAD_AFTER_S * 1000))
            pipe.sadd(f"{self.prefix}workers", self.name)
            pipe.execute()
        except Exception as exc:  # noqa: BLE001 - Redis away (restarting): the next beat tries again
            log.warning("Heartbeat not sent (%s); retrying", exc)

    def stop(self) -> None:
        self._stopping.set()
        try:
            self.redis.delete(f"{self.prefix}worker:{self.name}")
            self.redis.srem(f"{self.prefix}workers", self.name)
        except Exception:  # noqa: BLE001 - it expires by itself
            pass

    def _run(self) -> None:
        while not self._stopping.wait(BEAT_S):
            self.beat()


def live_workers(redis, prefix: str = PREFIX) -> list[dict]:
    """The workers whose record has not expired, by name; forgets the ones that have."""
    names = sorted(redis.smembers(f"{prefix}workers"))
    if not names:
        return []
    records = redis.mget([f"{prefix}worker:{n}" for n in names])
    gone = [n for n, r in zip(names, records) if r is None]
    if gone:
        redis.srem(f"{prefix}workers", *gone)
    now = time.time()
    workers = []
    for raw in records:
        if raw is not None:
            record = json.loads(raw)
            record["seen_s_ago"] = round(max(0.0, now - record.pop("at", now)), 2)
            workers.append(record)
    return workers
