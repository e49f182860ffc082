"""Socket.IO handlers: validate, enqueue, acknowledge. Nothing heavy runs here."""
from __future__ import annotations

from flask import current_app, request

from .engine import GenerationRequest
from .jobs import JobRejected
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
        settings = GenerationRequest.from_payload(payload)
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
