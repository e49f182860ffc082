"""Test helpers: images a person might upload, and waiting on background work."""
from __future__ import annotations

import io
import time

import numpy as np
from PIL import Image


def sketch(width=128, height=128, seed=0, mode="RGB") -> Image.Image:
    """A flat-colour 'sketch': sky, ground and a disc, like a person would draw."""
    rng = np.random.default_rng(seed)
    arr = np.zeros((height, width, 3), np.uint8)
    arr[: height // 2] = rng.integers(0, 255, 3)
    arr[height // 2 :] = rng.integers(0, 255, 3)
    yy, xx = np.mgrid[0:height, 0:width]
    cx, cy, r = rng.integers(width // 4, 3 * width // 4), rng.integers(height // 4, 3 * height // 4), width // 6
    arr[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.integers(0, 255, 3)
    return Image.fromarray(arr, "RGB").convert(mode)


def png_bytes(image: Image.Image, fmt="PNG", **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def wait_until(predicate, timeout=30.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def collect_events(socket_client, until, timeout=60.0):
    """Socket.IO events (name, payload) received by a test client until `until(events)` holds."""
    events = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events += [(m["name"], m["args"][0] if m["args"] else None) for m in socket_client.get_received()]
        if until(events):
            return events
        time.sleep(0.02)
    raise AssertionError(f"timed out; got {[name for name, _ in events]}")


def job_ended(job_id):
    """`until` predicate: the job's terminal event has arrived."""
    terminal = {"job_done", "job_cancelled", "job_error"}
    return lambda events: any(n in terminal and p.get("job_id") == job_id for n, p in events)


def upload(client, image, name="sketch.png"):
    response = client.post("/api/uploads", data={"image": (io.BytesIO(png_bytes(image)), name)},
                           content_type="multipart/form-data")
    assert response.status_code == 201, response.json
    return response.json


def as_a_person_gets_it(model, **settings):
    """A request as the page and the CLI fill it in: the model's recommended settings first."""
    from server.engine import GenerationRequest

    return GenerationRequest.from_payload(settings, defaults=model.defaults)
