"""The step latents of recent jobs, kept so a strip cell can be decoded in full later.

Bounded by job count and bytes; the oldest job goes first. One writer (the generation worker)
and readers on other native threads: each operation is a single dict call, atomic under the
GIL, and the writer alone iterates or evicts.
"""
from __future__ import annotations

import torch


class StepsEvicted(KeyError):
    """The job's steps are no longer (or never were) in the cache; the message is for people."""

    def __str__(self) -> str:
        return self.args[0]


class LatentCache:
    def __init__(self, max_jobs: int = 16, max_bytes: int = 512 * 1024 * 1024):
        self.max_jobs, self.max_bytes = max_jobs, max_bytes
        self._jobs: dict[str, dict[tuple[int, int], torch.Tensor]] = {}
        self._bytes: dict[str, int] = {}

    def put(self, job_id: str, item: int, index: int, latents: torch.Tensor) -> None:
        frames = self._jobs.get(job_id)
        if frames is None:
            frames = self._jobs[job_id] = {}
            self._bytes[job_id] = 0
        kept = latents.detach().to("cpu", copy=True)
        frames[(item, index)] = kept
        self._bytes[job_id] += kept.numel() * kept.element_size()
        self._evict(keep=job_id)

    def get(self, job_id: str, item: int, index: int) -> torch.Tensor:
        frames = self._jobs.get(job_id)
        if frames is None:
            raise StepsEvicted(
                f"The steps of job {job_id} are no longer kept: only the last {self.max_jobs} jobs' steps stay "
                "in memory. Run it again (same seed) to decode its steps.")
        latents = frames.get((item, index))
        if latents is None:
            raise StepsEvicted(f"Job {job_id} has no step {index} for output {item + 1}"
                               " (a step dropped by a cancel, or not reached yet).")
        return latents

    def _evict(self, keep: str) -> None:
        while len(self._jobs) > 1 and (len(self._jobs) > self.max_jobs or sum(self._bytes.values()) > self.max_bytes):
            oldest = next(iter(self._jobs))
            if oldest == keep:
                break
            self._jobs.pop(oldest, None)
            self._bytes.pop(oldest, None)
