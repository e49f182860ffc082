"""Does big work stall the socket loop? /api/health latency while the studio is busy.

Run from the repo root:  .venv/bin/python benchmarks/socket_loop_stall.py [--root OTHER_CHECKOUT]

Starts a real eventlet studio (`python -m server` from --root, default this tree) on a free
loopback port, polls GET /api/health every ~10 ms from a thread, and reports the health latency
(p50 and max) in each case:

    idle          nothing going on
    upload_16mp   POST /api/uploads of a 4000x4000 PNG (decoded, checked and re-encoded)
    promote       a full-VAE decode of a 768x768 step (Socket.IO `promote`)
    job           a 256x256, 20-step job with latent previews

One line per case:  case=<name> health_p50_ms=... health_max_ms=... polls=... work_s=...
Every poll of every round counts; `work_s` is the median time the work itself took. The machine
is shared: figures are reported, never asserted. To compare with an older version, check it out
beside this one (`git worktree add /tmp/old <commit>`) and pass `--root /tmp/old`.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: `tests.helpers` importable without installing

import requests  # noqa: E402
import socketio  # noqa: E402

from tests.helpers import StudioProcess, big_upload_png  # noqa: E402

POLL_INTERVAL_S = 0.010
TIMEOUT_S = 300.0  # any single wait


class HealthPoller:
    """GET /api/health back to back (~10 ms apart) from a thread, keeping each latency."""

    def __init__(self, url: str):
        self.url = url
        self.latencies: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        with requests.Session() as session:
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    ok = session.get(self.url + "/api/health", timeout=TIMEOUT_S).status_code == 200
                except requests.RequestException:
                    ok = False
                if ok:
                    self.latencies.append(time.perf_counter() - started)
                else:
                    self.failures += 1
                self._stop.wait(POLL_INTERVAL_S)

    def __enter__(self):
        self._thread.start()
        time.sleep(0.05)  # a poll or two before the work starts
        return self

    def __exit__(self, *exc):
        time.sleep(0.05)
        self._stop.set()
        self._thread.join(TIMEOUT_S)


class Client:
    """A Socket.IO script client that runs one job at a time and can full-decode its steps."""

    def __init__(self, url: str):
        self.sio = socketio.Client(reconnection=False)
        self.ended = threading.Event()
        self.last = None
        for name in ("job_done", "job_cancelled", "job_error"):
            self.sio.on(name, self._keeper(name))
        self.sio.connect(url, transports=["websocket"], wait_timeout=30)

    def _keeper(self, name):
        def keep(payload):
            self.last = (name, payload)
            self.ended.set()
        return keep

    def run(self, settings: dict) -> str:
        self.ended.clear()
        ack = self.sio.call("generate", settings, timeout=60)
        if "job_id" not in ack:
            raise RuntimeError(f"generate refused: {ack}")
        if not self.ended.wait(TIMEOUT_S):
            raise RuntimeError("the job did not end")
        if self.last[0] != "job_done":
            raise RuntimeError(f"the job ended {self.last}")
        return ack["job_id"]


def measure(name: str, url: str, work, rounds: int) -> str:
    latencies, failures, durations = [], 0, []
    for _ in range(rounds):
        with HealthPoller(url) as poller:
            started = time.perf_counter()
            work()
            durations.append(time.perf_counter() - started)
        latencies += poller.latencies
        failures += poller.failures
    line = (f"case={name} health_p50_ms={statistics.median(latencies) * 1000:.1f} "
            f"health_max_ms={max(latencies) * 1000:.1f} polls={len(latencies)} "
            f"work_s={statistics.median(durations):.2f}")
    return line + (f" failed_polls={failures}" if failures else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the source tree whose server to start")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each case")
    args = parser.parse_args()
    root = args.root.resolve()
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=30).stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        commit = "?"
    dirty = ""
    if root == ROOT:
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "server"],
                                capture_output=True, text=True, timeout=30).stdout
        dirty = "+local changes" if status.strip() else ""
    upload = big_upload_png()

    with tempfile.TemporaryDirectory(prefix="socket-loop-stall-") as folder:
        studio = StudioProcess(Path(folder) / "outputs", Path(folder) / "server.log", root=root)
        with studio:
            print(f"root={root} commit={commit}{dirty} upload_mb={len(upload) / 1e6:.1f} "
                  f"cpus={os.cpu_count()} rounds={args.rounds}", flush=True)
            url = studio.url
            client = Client(url)
            try:
                print(measure("idle", url, lambda: time.sleep(2.0), args.rounds), flush=True)

                def upload_16mp():
                    response = requests.post(url + "/api/uploads", files={"image": ("big.png", upload, "image/png")},
                                             timeout=TIMEOUT_S)
                    if response.status_code != 201:
                        raise RuntimeError(f"upload refused: {response.status_code} {response.text[:200]}")

                print(measure("upload_16mp", url, upload_16mp, args.rounds), flush=True)

                job_id = client.run({"prompt": "tree on a hill", "steps": 1, "seed": 3, "width": 768, "height": 768})

                def promote():
                    answer = client.sio.call("promote", {"job_id": job_id, "index": 0}, timeout=TIMEOUT_S)
                    if not answer.get("ok"):
                        raise RuntimeError(f"promote failed: {answer}")

                print(measure("promote", url, promote, args.rounds), flush=True)

                settings = {"prompt": "a red house", "steps": 20, "seed": 1, "width": 256, "height": 256}
                print(measure("job", url, lambda: client.run(settings), args.rounds), flush=True)
            finally:
                client.sio.disconnect()


if __name__ == "__main__":
    main()
