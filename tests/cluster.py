"""Real cluster processes for tests and benchmarks: Debian's redis-server, `img2img-studio
worker`s and `serve --broker` web processes, each on a free loopback port, logging to files."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.helpers import ChildProcess, StudioProcess, free_loopback_port

ROOT = Path(__file__).resolve().parent.parent
# One torch thread per worker: on 2 cores two workers then run side by side, as the issue measures.
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TORCH_NUM_THREADS": "1"}


class RedisServer:
    """redis-server with an append-only file in `folder`, so a restart keeps the queue and the ledger."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_loopback_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = None

    def start(self) -> "RedisServer":
        binary = shutil.which("redis-server")
        assert binary, "redis-server is missing: scripts/setup.sh --test installs Debian's package"
        log = open(self.folder / "redis.log", "a")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
             "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--protected-mode", "yes"],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        import redis

        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("redis-server did not start:\n" + (self.folder / "redis.log").read_text())
                time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM: Redis writes its append-only file and exits, as on a service restart."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)

    def restart(self) -> None:
        self.stop()
        self.start()


class WorkerProcess(ChildProcess):
    """`python -m server worker` with the demo model (or `flags`), one torch thread."""

    stop_timeout = 30.0  # Celery's warm shutdown lets the running job finish

    def __init__(self, broker: str, outputs: Path, log_path: Path, name: str, *flags):
        self.broker, self.outputs, self.log_path, self.name = broker, Path(outputs), Path(log_path), name
        self.flags = [str(f) for f in flags]
        self.proc = None

    def start(self) -> "WorkerProcess":
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server", "worker", "--broker", self.broker, "--name", self.name,
             "--outputs", str(self.outputs), "--device", "cpu", *self.flags],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, **ONE_THREAD, "PYTHONUNBUFFERED": "1"})
        log.close()
        return self


class Cluster:
    """Redis, `workers` workers and `webs` web processes sharing one outputs folder."""

    def __init__(self, folder: Path, workers: int = 2, webs: int = 2):
        self.folder = Path(folder)
        self.outputs = self.folder / "outputs"
        self.redis = RedisServer(self.folder / "redis")
        self.workers = [WorkerProcess(self.redis.url, self.outputs, self.folder / f"worker{i}.log", f"w{i}")
                        for i in range(workers)]
        self.webs = [StudioProcess(self.outputs, self.folder / f"web{i}.log", "--broker", self.redis.url)
                     for i in range(webs)]

    def start(self) -> "Cluster":
        self.redis.start()
        for worker in self.workers:
            worker.start()
        for web in self.webs:  # ready once a worker serves the model
            web.start()
        self.wait_for_workers(len(self.workers))
        return self

    def wait_for_workers(self, count: int, timeout: float = 180.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            workers = requests.get(self.webs[0].url + "/api/health", timeout=5).json()["workers"]
            ready = [w for w in workers if w["state"] in ("idle", "busy")]
            if len(ready) >= count:
                return workers
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(ready)} of {count} workers ready: {workers}\n" + self.logs())
            time.sleep(0.2)

    def logs(self) -> str:
        parts = [f"--- {w.name} ---\n{w.log()[-3000:]}" for w in self.workers]
        parts += [f"--- web {i} ---\n{web.log()[-3000:]}" for i, web in enumerate(self.webs)]
        return "\n".join(parts)

    def stop(self) -> None:
        for web in self.webs:
            web.stop()
        for worker in self.workers:
            worker.stop()
        self.redis.stop()

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()
