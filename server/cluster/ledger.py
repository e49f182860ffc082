"""Every job's state in Redis, changed only by atomic scripts, so a job ends exactly once.

A web process records a job when it accepts it (`submit`, which checks the per-tab and total caps
across all web processes) and then sends its Celery task. A worker `claim`s it before running; a
stale or duplicate delivery (a retry, a message restored after its worker died) finds it claimed or
ended and is skipped. Cancels set a flag the worker reads every step; a job that has not started is
ended by the cancel itself. `finish` is the single place a job ends: the first caller wins, and only
the winner sends job_done / job_cancelled / job_error.
"""
from __future__ import annotations

import json
import time

from .. import payloads

PREFIX = "studio:"
ENDED_TTL_S = 24 * 3600  # finished jobs are remembered this long (who owns them, for full decodes)

# KEYS: none (the scripts build keys from the prefix; one Redis, not a Redis Cluster).
_SUBMIT = """
local p, id, tab = ARGV[1], ARGV[2], ARGV[3]
local mine = 0
for _, other in ipairs(redis.call('SMEMBERS', p..'tab:'..tab)) do
  if redis.call('HGET', p..'job:'..other, 'cancel') ~= '1' then mine = mine + 1 end
end
if mine >= tonumber(ARGV[6]) then return {1, mine} end
local total = redis.call('SCARD', p..'unfinished')
if total >= tonumber(ARGV[7]) then return {2, total} end
redis.call('HSET', p..'job:'..id, 'tab', tab, 'model', ARGV[4], 'task', ARGV[5], 'live', ARGV[8],
           'state', 'queued', 'attempt', '1', 'worker', '', 'cancel', '0', 'outputs', '0', 'created', ARGV[9])
redis.call('SADD', p..'unfinished', id)
redis.call('SADD', p..'tab:'..tab, id)
return {0, 0}
"""

# Shared by the scripts below: end job `id` as `state` (Lua text, prepended to each).
_END = """
local function ended(st) return st == 'done' or st == 'cancelled' or st == 'error' end
local function finish(p, id, state, message, now)
  local key = p..'job:'..id
  local tab = redis.call('HGET', key, 'tab')
  -- The end message is kept, so a web process that missed it (Redis restarting) can still deliver it.
  redis.call('HSET', key, 'state', state, 'end', message, 'ended_at', now)
  redis.call('EXPIRE', key, tonumber(ARGV[#ARGV]))
  redis.call('SREM', p..'unfinished', id)
  if tab then redis.call('SREM', p..'tab:'..tab, id) end
end
"""

# ARGV: prefix, id, state, attempt ('' from a web process), end message (JSON), now, ttl. 1: this call ended it.
_FINISH = _END + """
local p, id = ARGV[1], ARGV[2]
local key = p..'job:'..id
if ended(redis.call('HGET', key, 'state')) then return 0 end
if ARGV[4] ~= '' and redis.call('EXISTS', key) == 1 and redis.call('HGET', key, 'attempt') ~= ARGV[4] then
  return 0  -- a worker that lost the job (it was given to another) does not end it
end
finish(p, id, ARGV[3], ARGV[5], ARGV[6])
return 1
"""

# ARGV: prefix, id, tab ('' for any), end message, now, ttl. 0: nothing unfinished of that tab's; 1: flagged (the
# worker stops at its next step); 2: it had not started and is now ended as cancelled.
_CANCEL = _END + """
local p, id = ARGV[1], ARGV[2]
local key = p..'job:'..id
local st = redis.call('HGET', key, 'state')
if not st or ended(st) then return 0 end
if ARGV[3] ~= '' and redis.call('HGET', key, 'tab') ~= ARGV[3] then return 0 end
redis.call('HSET', key, 'cancel', '1')
if st == 'queued' then finish(p, id, 'cancelled', ARGV[4], ARGV[5]) return 2 end
return 1
"""

# ARGV: prefix, id, attempt, worker, ttl. Returns the job's fields when this delivery may run it.
_CLAIM = _END + """
local p, id = ARGV[1], ARGV[2]
local key = p..'job:'..id
if redis.call('HGET', key, 'state') ~= 'queued' or redis.call('HGET', key, 'attempt') ~= ARGV[3] then
  return false
end
redis.call('HSET', key, 'state', 'running', 'worker', ARGV[4])
return redis.call('HGETALL', key)
"""

# ARGV: prefix, id, dead worker, max attempts, cancelled message, now, ttl. A running job whose worker stopped: {1, attempt}
# queued again (nothing of it was saved yet), {2, outputs} ended as an error, {3} ended as cancelled
# (it had been cancelled), {0} not this worker's any more.
_ORPHAN = _END + """
local p, id = ARGV[1], ARGV[2]
local key = p..'job:'..id
if redis.call('HGET', key, 'state') ~= 'running' or redis.call('HGET', key, 'worker') ~= ARGV[3] then
  return {0}
end
if redis.call('HGET', key, 'cancel') == '1' then finish(p, id, 'cancelled', ARGV[5], ARGV[6]) return {3} end
local outputs = tonumber(redis.call('HGET', key, 'outputs'))
local attempt = tonumber(redis.call('HGET', key, 'attempt'))
if outputs == 0 and attempt < tonumber(ARGV[4]) then
  redis.call('HSET', key, 'state', 'queued', 'attempt', tostring(attempt + 1), 'worker', '')
  return {1, attempt + 1}
end
finish(p, id, 'error', '', ARGV[6])  -- the caller words the error and records it (record_end)
return {2, outputs}
"""

_QUEUED = """
local n = 0
for _, id in ipairs(redis.call('SMEMBERS', ARGV[1]..'unfinished')) do
  if redis.call('HGET', ARGV[1]..'job:'..id, 'state') == 'queued' then n = n + 1 end
end
return n
"""


def redis_client(url: str, blocking: bool = False):
    """A redis-py client whose calls fail (and are retried by their callers) instead of hanging
    when Redis restarts; `blocking` ones may wait on BLPOP as long as they ask."""
    import redis

    return redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=5,
                                socket_timeout=None if blocking else 10, health_check_interval=15)


class CapReached(Exception):
    def __init__(self, which: str, count: int):
        super().__init__(which)
        self.which, self.count = which, count


class JobLedger:
    def __init__(self, redis, prefix: str = PREFIX):
        self.redis, self.prefix = redis, prefix
        self._submit = redis.register_script(_SUBMIT)
        self._finish = redis.register_script(_FINISH)
        self._cancel = redis.register_script(_CANCEL)
        self._claim = redis.register_script(_CLAIM)
        self._orphan = redis.register_script(_ORPHAN)
        self._queued = redis.register_script(_QUEUED)

    def _key(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}"

    # -- web side ----------------------------------------------------------------------------
    def submit(self, job_id: str, tab: str, model: str, task: dict, live: bool, max_per_tab: int,
               max_total: int) -> None:
        """Record a queued job; raises CapReached("tab" | "total", count) past a cap."""
        code, count = self._submit(args=[self.prefix, job_id, tab, model, json.dumps(task), max_per_tab, max_total,
                                         int(live), time.time()])
        if code:
            raise CapReached("tab" if code == 1 else "total", int(count))

    def cancel(self, job_id: str, tab: str | None = None) -> int:
        """0: not an unfinished job (of `tab`'s); 1: flagged, the worker stops at its next step;
        2: it had not started, and this ended it (the caller says job_cancelled)."""
        message = json.dumps(["job_cancelled", payloads.job_cancelled(job_id)])
        return int(self._cancel(args=[self.prefix, job_id, tab or "", message, time.time(), ENDED_TTL_S]))

    def unfinished_of(self, tab: str, live_only: bool = False) -> list[str]:
        ids = sorted(self.redis.smembers(f"{self.prefix}tab:{tab}"))
        if not live_only:
            return ids
        return [i for i in ids if self.redis.hget(self._key(i), "live") == "1"]

    def unfinished(self) -> list[str]:
        return sorted(self.redis.smembers(f"{self.prefix}unfinished"))

    def queue_length(self) -> int:
        return int(self._queued(args=[self.prefix]))

    def fields(self, job_id: str) -> dict:
        return self.redis.hgetall(self._key(job_id))

    def orphaned(self, job_id: str, dead_worker: str, max_attempts: int) -> tuple[int, int]:
        message = json.dumps(["job_cancelled", payloads.job_cancelled(job_id)])
        result = self._orphan(args=[self.prefix, job_id, dead_worker, max_attempts, message, time.time(), ENDED_TTL_S])
        return int(result[0]), int(result[1]) if len(result) > 1 else 0

    # -- worker side -------------------------------------------------------------------------
    def claim(self, job_id: str, attempt: int, worker: str) -> dict | None:
        """The job's fields when this delivery may run it (it is now running on `worker`)."""
        flat = self._claim(args=[self.prefix, job_id, str(attempt), worker, ENDED_TTL_S])
        return dict(zip(flat[::2], flat[1::2])) if flat else None

    def still_mine(self, job_id: str, attempt: int) -> bool:
        """Polled every step: False once the job is cancelled or was given to another worker."""
        cancel, state, current = self.redis.hmget(self._key(job_id), "cancel", "state", "attempt")
        return cancel != "1" and state == "running" and current == str(attempt)

    def output_saved(self, job_id: str) -> None:
        self.redis.hincrby(self._key(job_id), "outputs", 1)

    def finish(self, job_id: str, state: str, event: str, payload: dict, attempt: int | None = None) -> bool:
        """End the job as done / cancelled / error with its end message (event, payload); True when
        this call ended it (and so sends the message)."""
        return bool(self._finish(args=[self.prefix, job_id, state, "" if attempt is None else str(attempt),
                                       json.dumps([event, payload]), time.time(), ENDED_TTL_S]))

    def record_end(self, job_id: str, event: str, payload: dict) -> None:
        """The end message of a job an atomic script ended without one (a dead worker's)."""
        self.redis.hset(self._key(job_id), "end", json.dumps([event, payload]))

    def ended_message(self, fields: dict) -> tuple[str, dict] | None:
        """(event, payload) of an ended job's recorded end message, if any."""
        if fields.get("state") in ("done", "cancelled", "error") and fields.get("end"):
            event, payload = json.loads(fields["end"])
            return event, payload
        return None
