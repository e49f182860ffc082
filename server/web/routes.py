"""HTTP API: thin handlers over the studio's stores and the step plan."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request, send_file
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge

from ..engine import GenerationRequest, plan_steps
from ..engine.request import request_limits
from ..storage.images import ImageRejected, apply_repaint_mask, decode_upload
from ..storage.gallery import Gallery, GalleryError, OutputQuery
from ..storage.safe_files import DiskFull, StorageError, UnsafeOutputPath
from ..storage.store import LIVE_FOLDER, TRASH_FOLDER

bp = Blueprint("api", __name__)


def _state():
    return current_app.extensions["studio"]


def error(status: int, message: str):
    return jsonify({"error": message}), status


@bp.get("/api/health")
def health():
    state = _state()
    studio = state.studio
    status, workers = state.model_status(), state.workers()
    return jsonify({
        "status": status.status,
        "model": status.model,
        "device": ", ".join(sorted({w["device"] for w in workers if w.get("device")})) or studio.device_name,
        "queue_length": state.jobs.queue_length(),
        "model_progress": status.progress,
        "model_message": status.message,
        # Before loading, no --model means the demo; after, the model says what it is.
        "is_demo": studio.is_demo,
        "native_size": studio.native_size,
        # What a single-file checkpoint was detected as, e.g. "Stable Diffusion XL"; null for folders.
        "family": studio.family,
        # The model folder's recommended settings (studio_defaults.json); the page starts at them.
        "defaults": studio.model_defaults,
        "async_mode": current_app.config["ASYNC_MODE"],
        "limits": request_limits(),  # what a generate is checked against; the page clamps to these
        "mode": "cluster" if state.cluster else "embedded",
        "workers": workers,  # who runs jobs: the embedded worker thread, or each live cluster worker
    })


@bp.get("/api/models")
def models():
    """The models folder: checkpoints and diffusers folders with their family (read from headers,
    no weights), the refused files with why, and loras/. A directory walk: off the socket loop."""
    state = _state()
    listing = state.runtime.wait_off_loop(state.studio.model_listing)
    return jsonify(listing)


@bp.post("/api/uploads")
def upload():
    file = request.files.get("image")
    if file is None:
        return error(400, "Send the image as multipart form field 'image'.")
    max_pixels = int(current_app.config["MAX_UPLOAD_MEGAPIXELS"] * 1_000_000)
    mask_file = request.files.get("mask")  # optional: light = repaint (the page's eraser)
    data, mask_data = file.read(), mask_file.read() if mask_file is not None else None
    state = _state()
    try:
        # Decoding and re-encoding take seconds for a big image: off the socket loop.
        record = state.runtime.wait_off_loop(_store_upload, state.studio.uploads, data, mask_data, max_pixels)
    except ImageRejected as exc:
        return error(exc.status, exc.message)
    except StorageError as exc:  # a full disk, or a linked folder the studio will not write through
        return error(507 if isinstance(exc, DiskFull) else 500, str(exc))
    return jsonify({"id": record.id, "width": record.width, "height": record.height,
                    "has_alpha": record.has_alpha}), 201


def _store_upload(uploads, data: bytes, mask_data: bytes | None, max_pixels: int):
    image = decode_upload(data, max_pixels=max_pixels)
    if mask_data is not None:
        image = apply_repaint_mask(image, decode_upload(mask_data, max_pixels=max_pixels))
    return uploads.save(image)


@bp.get("/api/uploads/<upload_id>")
def upload_file(upload_id: str):
    state = _state()
    try:
        record = state.runtime.wait_off_loop(state.studio.uploads.record, upload_id)
    except KeyError as exc:
        return error(404, exc.args[0] if exc.args else "No such upload.")
    return send_file(record.path, mimetype="image/png", max_age=3600)


@bp.get("/api/plan")
def plan():
    args = request.args
    studio = _state().studio
    # What a generate job would get for the settings left out: the model's recommendations first.
    usual = GenerationRequest.from_payload({}, defaults=studio.model_defaults)
    try:
        steps = int(args.get("steps", usual.steps))
        strength = float(args.get("strength", usual.strength))
    except ValueError:
        return error(400, "steps must be a whole number and strength a number from 0 to 1.")
    try:
        min_taken = int(args.get("min_taken_steps", usual.min_taken_steps))
    except ValueError:
        return error(400, "min_taken_steps must be a whole number (0 for off).")
    exact = args.get("exact_steps", "0").lower() in ("1", "true", "yes", "on")
    sampler = args.get("sampler", usual.sampler)
    config = studio.scheduler_config
    if config is None:
        return error(503, "The model's scheduler is not known yet; try again when it has loaded.")
    try:
        step_plan = plan_steps(config, sampler, steps, strength, exact, min_taken)
    except ValueError as exc:
        return error(400, str(exc))
    return jsonify(step_plan.to_dict())


@bp.record_once
def _attach_gallery(setup):
    # After create_app has made the studio: the gallery manages the studio's outputs store.
    setup.app.extensions["gallery"] = Gallery(setup.app.extensions["studio"].studio.outputs)


def _gallery() -> Gallery:
    return current_app.extensions["gallery"]


def _gallery_call(method, *args, status=200):
    """Run a gallery change off the socket loop (it moves files); its refusals as {error}."""
    state = _state()
    try:
        return jsonify(state.runtime.wait_off_loop(method, *args)), status
    except GalleryError as exc:
        return error(exc.status, str(exc))
    except StorageError as exc:  # a linked folder, or a full disk
        return error(507 if isinstance(exc, DiskFull) else 400 if isinstance(exc, UnsafeOutputPath) else 500,
                     str(exc))
    except OSError as exc:  # e.g. no permission to move it: say so, no traceback
        return error(500, f"Could not move the file: {exc.strerror or exc}.")


@bp.get("/api/outputs")
def outputs():
    """The gallery (or ?trash=1 the trash), filtered and paged; X-Total-Count: all that match."""
    try:
        query = OutputQuery.from_args(request.args)
    except ValueError as exc:
        return error(400, str(exc))
    state = _state()
    items, total = state.runtime.wait_off_loop(_gallery().query, query)
    response = jsonify(items)
    response.headers["X-Total-Count"] = str(total)
    return response


@bp.delete("/api/outputs/<name>")
def trash_output(name: str):
    return _gallery_call(_gallery().trash, name)


@bp.post("/api/outputs/<name>/restore")
def restore_output(name: str):
    return _gallery_call(_gallery().restore, name)


@bp.put("/api/outputs/<name>/star")
def star_output(name: str):
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("starred"), bool):
        return error(400, 'Send JSON {"starred": true} or {"starred": false}.')
    return _gallery_call(_gallery().star, name, body["starred"])


@bp.post("/api/outputs/live/<name>/keep")
def keep_live_result(name: str):
    return _gallery_call(_gallery().keep, name, status=201)


@bp.get("/outputs/<path:name>")
def output_file(name: str):
    """A gallery output, or one in outputs/live/ or outputs/.trash/ (`live/NAME`, `.trash/NAME`)."""
    folder, _, file_name = name.rpartition("/")
    try:
        if folder not in (LIVE_FOLDER, TRASH_FOLDER, ""):
            raise KeyError(name)
        path = _state().studio.outputs.path_for(file_name, folder)
    except KeyError:
        return error(404, f"No output named {name!r}.")
    return send_file(path, mimetype="image/png", max_age=3600)


@bp.app_errorhandler(RequestEntityTooLarge)
def too_large(exc):
    config = current_app.config
    length = request.content_length
    if length is not None and length <= config["MAX_CONTENT_LENGTH"]:
        # Werkzeug says "too large" for too many multipart parts too; say which limit it was.
        return error(413, f"The upload has too many form parts (the limit is {config['MAX_FORM_PARTS']}, "
                          "--max-form-parts). Send the image, and optionally a mask, as the only fields.")
    return error(413, f"The upload is larger than {config['MAX_UPLOAD_MB']} MB. Use a smaller image or "
                      "export it as JPEG/WebP.")


@bp.app_errorhandler(NotFound)
@bp.app_errorhandler(MethodNotAllowed)
def api_route_missing(exc: HTTPException):
    """Scripts calling /api/... get an {error} they can read, not Flask's HTML page (a name with a
    slash in it, `..%2Fx`, matches no route at all)."""
    if not request.path.startswith("/api/"):
        return exc
    body, status = error(exc.code, f"{request.method} {request.path[:120]} is not part of the studio's API "
                                   "(the README's contract lists its routes; outputs are named like 000012.1234.png).")
    return body, status, [(k, v) for k, v in exc.get_headers() if k.lower() == "allow"]
