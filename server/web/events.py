"""Socket.IO handlers: validate, enqueue, acknowledge. Nothing heavy runs here.

Every handler answers every payload: a malformed one gets an `{error}` a person can act on, and an
unexpected failure is logged and answered too, never left as a silent traceback.
"""
from __future__ import annotations

import functools
import logging

from flask import current_app, request
from flask_socketio import join_room
from socketio.exceptions import ConnectionRefusedError as SocketRefused

from .. import payloads
from ..engine import GenerationRequest
from ..engine.request import parse_loras
from ..storage.images import png_bytes
from ..worker.jobs import JobRejected
from ..worker.latent_cache import StepsEvicted
from .realtime import socketio
from .tabs import ConnectionRefused

log = logging.getLogger(__name__)

# A tab that drops its socket (sleep, a network blip) has this long to reconnect before its jobs
# are cancelled.
RECONNECT_GRACE_S = 5.0


def _studio():
    return current_app.extensions["studio"]


def answers_every_payload(handler):
    """Wrap a handler taking a dict payload: non-dicts and unexpected failures get an {error} ack."""

    @functools.wraps(handler)
    def wrapper(payload=None):
        if not isinstance(payload, dict):
            return payloads.error(f"{handler.__name__.removeprefix('on_')} expects a JSON object.")
        try:
            return handler(payload)
        except Exception:  # noqa: BLE001 - the person gets an answer; the log gets the details
            log.exception("%s failed", handler.__name__)
            return payloads.error("The server could not handle that request; details are in its log.")

    return wrapper


@socketio.on("connect")
def on_connect(auth=None):
    state = _studio()
    address = request.environ.get("REMOTE_ADDR", "")
    try:
        socket = state.tabs.connect(request.sid, auth, address)
    except ConnectionRefused as exc:
        raise SocketRefused(str(exc)) from None
    if socket.tab != request.sid:
        join_room(socket.tab)
    socketio.emit("model_status", state.model_status().payload(), to=request.sid)


@socketio.on("disconnect")
def on_disconnect(reason=None):
    state = _studio()
    socket = state.tabs.disconnect(request.sid)
    tab = socket.tab if socket else request.sid
    if tab == request.sid:
        state.jobs.cancel_client(tab)  # a client without a tab id cannot come back
        return
    grace = current_app.config.get("RECONNECT_GRACE_S", RECONNECT_GRACE_S)

    def cancel_unless_back() -> None:
        socketio.sleep(grace)
        if not state.tabs.is_open(tab):
            state.jobs.cancel_client(tab)

    if not state.tabs.is_open(tab):
        socketio.start_background_task(cancel_unless_back)


@socketio.on("generate")
@answers_every_payload
def on_generate(payload):
    state = _studio()
    limit = current_app.config["MAX_VARIATIONS"]
    variations = payload.get("with_variations")
    if isinstance(variations, list) and len(variations) > limit:
        return payloads.error(f"with_variations has {len(variations)} entries; the limit is {limit} "
                              "(--max-variations).")
    live = payload.get("live")  # the page's Live mode: replaces this tab's earlier Live job only
    if live is not None and not isinstance(live, bool):  # null means left out, as for every setting
        return payloads.error(f"live must be true (a Live job, replacing this tab's earlier Live job) or "
                              f"false, got {live!r:.40}.")
    models = state.studio.models
    try:
        # The model it names, else the one selected now: recorded with the job, so a later switch
        # does not change what it runs on. Naming one may read the models folder: off the loop.
        choice = state.runtime.wait_off_loop(models.choose, payload.get("model"))
        # LoRAs are named as GET /api/models lists them and resolved in the models folder now (so an
        # unknown one is refused in the ack); left out, serve's --lora ones. Their recommended
        # settings go over the model's.
        loras = None if payload.get("loras") is None else parse_loras(payload["loras"])
        defaults, _files = state.runtime.wait_off_loop(state.studio.job_defaults, choice, loras)
        settings = GenerationRequest.from_payload(payload, defaults=defaults)
        if settings.init_image is not None:  # fail now, not in the worker; reading it is file work
            state.runtime.wait_off_loop(state.studio.uploads.record, settings.init_image)
        supersede = bool(payload.get("supersede", False))
        job = state.jobs.submit(state.tabs.tab_of(request.sid), settings, supersede=supersede, model=choice,
                                live=bool(live))
    except KeyError:
        return payloads.error("That init image is not on the server (it may have been removed). Upload it again.")
    except (ValueError, TypeError, JobRejected) as exc:
        return payloads.error(str(exc))
    return payloads.job_accepted(job.id)


@socketio.on("select_model")
@answers_every_payload
def on_select_model(payload):
    """Make a listed model the one jobs naming none run on, and load it on the worker after the
    jobs already queued. The ack comes at once; model_status reports the load, and model_error a
    failure (the previous model then keeps running and stays selected)."""
    state = _studio()
    models = state.studio.models
    if payload.get("model") is None:
        return payloads.error("select_model expects {model: a name GET /api/models lists}.")
    try:
        choice = state.runtime.wait_off_loop(models.choose, payload["model"])
    except ValueError as exc:  # UnknownModel: not listed, refused, or not a name
        return payloads.error(str(exc))
    selection = state.runtime.wait_off_loop(models.select, choice)
    state.jobs.enqueue_call(lambda: models.switch(choice))
    return payloads.model_selected(choice.name, selection.family, selection.defaults, selection.native_size)


def _job_id(payload) -> str | None:
    job_id = payload.get("job_id")
    return job_id if isinstance(job_id, str) and 0 < len(job_id) <= 100 else None


@socketio.on("cancel")
@answers_every_payload
def on_cancel(payload):
    job_id = _job_id(payload)
    if job_id is None:
        return payloads.error("cancel expects {job_id} with the id a generate ack gave.")
    if not _studio().jobs.cancel(job_id, client=_studio().tabs.tab_of(request.sid)):
        return payloads.error(f"No unfinished job {job_id!r} of yours to cancel.")
    return payloads.cancelled()


@socketio.on("promote")
@answers_every_payload
def on_promote(payload):
    """Full-VAE decode of one cached step latent; the image comes back in the acknowledgement."""
    job_id = _job_id(payload)
    if job_id is None:
        return payloads.error("promote expects {job_id, index, item?}.")
    index, item = payload.get("index"), payload.get("item", 0)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (index, item)) or index < -1 or item < 0:
        return payloads.error("index must be a whole number from -1 (the init frame) up, and item from 0 up.")
    state = _studio()
    if not state.jobs.owns(state.tabs.tab_of(request.sid), job_id):
        return payloads.error(f"No job {job_id!r} of yours to decode.")
    if state.cluster:  # the worker that ran the job holds its steps: it decodes and answers through Redis
        try:
            return state.jobs.decode_step(job_id, item, index)
        except StepsEvicted as exc:
            return payloads.error(str(exc))
    if state.studio.model is None:
        return payloads.error("The model is still loading.")

    def decode() -> dict:
        image = state.studio.promote(job_id, item, index)
        return payloads.promoted(index, item, image.width, image.height, png_bytes(image))

    try:
        # Torch work and PNG encoding: on the worker, between steps, never on the socket loop.
        return state.runtime.wait_off_loop(state.jobs.run_on_worker, decode)
    except StepsEvicted as exc:
        return payloads.error(str(exc))
