"""Socket.IO handlers: validate, enqueue, acknowledge. Nothing heavy runs here."""
from __future__ import annotations

from flask import current_app, request

from .engine import GenerationRequest
from .images import png_bytes
from .jobs import JobRejected
from .latent_cache import StepsEvicted
from .realtime import socketio


def _studio():
    return current_app.extensions["studio"]


@socketio.on("connect")
def on_connect(auth=None):
    socketio.emit("model_status", _studio().studio.status.to_dict(), to=request.sid)


@socketio.on("disconnect")
def on_disconnect(reason=None):
    _studio().jobs.cancel_client(request.sid)


@socketio.on("generate")
def on_generate(payload):
    state = _studio()
    try:
        settings = GenerationRequest.from_payload(payload, defaults=state.studio.model_defaults)
        if settings.init_image is not None:
            state.studio.uploads.record(settings.init_image)  # fail now, not in the worker
        supersede = bool(payload.get("supersede", False))
        job = state.jobs.submit(request.sid, settings, supersede=supersede)
    except KeyError:
        return {"error": "That init image is not on the server (it may have been removed). Upload it again."}
    except (ValueError, TypeError, JobRejected) as exc:
        return {"error": str(exc)}
    return {"job_id": job.id}


@socketio.on("cancel")
def on_cancel(payload):
    job_id = payload.get("job_id") if isinstance(payload, dict) else None
    if not job_id or not _studio().jobs.cancel(job_id, client=request.sid):
        return {"error": f"No unfinished job {job_id!r} of yours to cancel."}
    return {"ok": True}


@socketio.on("promote")
def on_promote(payload):
    """Full-VAE decode of one cached step latent; the image comes back in the acknowledgement."""
    if not isinstance(payload, dict) or not isinstance(payload.get("job_id"), str):
        return {"error": "promote expects {job_id, index, item?}."}
    index, item = payload.get("index"), payload.get("item", 0)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (index, item)) or index < -1 or item < 0:
        return {"error": "index must be a whole number from -1 (the init frame) up, and item from 0 up."}
    state = _studio()
    if state.studio.model is None:
        return {"error": "The model is still loading."}
    try:
        # The decode is torch work: run it on a native thread, never on the socket loop.
        image = state.runtime.wait_off_loop(state.studio.promote, payload["job_id"], item, index)
    except StepsEvicted as exc:
        return {"error": str(exc)}
    return {"ok": True, "index": index, "item": item, "width": image.width, "height": image.height,
            "mime": "image/png", "image": png_bytes(image)}
