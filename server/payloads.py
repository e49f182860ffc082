"""Every Socket.IO payload the server sends, built in one place.

One function per server -> client message, and one per acknowledgement that carries data. Each takes
plain values and returns the dict that goes on the wire, so the field names live here and nowhere
else; the README's "The contract" section documents them, and tests/test_payloads.py holds the two
together. Optional fields (`?` in the README) are left out, not sent as null, when they do not apply.
The key order is the order the README lists them in.
"""
from __future__ import annotations

# -- model messages (README: Server -> client) -----------------------------------------------------


def model_status(status: str, progress: float, message: str, model: str, current: str | None) -> dict:
    """`model_status` {status, progress, message, model, current}: `current` (the selected model)
    is the one loading or loaded when nothing else is selected."""
    return {"status": status, "progress": round(progress, 3), "message": message, "model": model,
            "current": current or model}


def model_error(model: str, error: str, current: str | None) -> dict:
    """`model_error` {model, error, current}: `current` is the model still running, or None."""
    return {"model": model, "error": error, "current": current}


# -- job messages (README: Server -> client) --------------------------------------------------------


def plan_preview(decoder: str, width: int | None, height: int | None, strip: dict | None = None) -> dict:
    """job_plan's `preview` {decoder, width, height, strip?}; `strip` is itself a plan_preview
    (without a strip), sent with preview_kind "both"."""
    preview = {"decoder": decoder, "width": width, "height": height}
    if strip is not None:
        preview["strip"] = strip
    return preview


def job_plan(job_id: str, mode: str, steps_total: int, skipped: int, taken: int, timesteps: list,
             sigmas: list, seed: int, item: int, items: int, strength: float | None, preview: dict) -> dict:
    """`job_plan` {job_id, mode, steps_total, skipped, taken, timesteps, sigmas, seed, item, items,
    strength, preview}: before each output's first step. `strength` is None for txt2img."""
    return {"job_id": job_id, "mode": mode, "steps_total": steps_total, "skipped": skipped, "taken": taken,
            "timesteps": timesteps, "sigmas": sigmas, "seed": seed, "item": item, "items": items,
            "strength": strength, "preview": preview}


def job_step(job_id: str, index: int, step: int | None, steps_total: int, timestep, kind: str, item: int,
             width: int, height: int, mime: str, image: bytes, step_ended_at: float,
             x0: tuple[int, int, bytes] | None = None) -> dict:
    """`job_step` {job_id, index, step, steps_total, timestep, kind, width, height, mime, image, item,
    x0_image?, x0_width?, x0_height?, step_ended_at}: one preview frame. `x0` is (width, height,
    bytes) of the step's predicted result, sent beside the x_t picture with preview_kind "both"."""
    payload = {"job_id": job_id, "index": index, "step": step, "steps_total": steps_total, "timestep": timestep,
               "kind": kind, "width": width, "height": height, "mime": mime, "image": image, "item": item}
    if x0 is not None:
        x0_width, x0_height, x0_image = x0
        payload.update(x0_image=x0_image, x0_width=x0_width, x0_height=x0_height)
    payload["step_ended_at"] = step_ended_at
    return payload


def saved_output(name: str, url: str, seed: int, elapsed_s: float, metadata: dict,
                 intermediates_dir: str | None = None) -> dict:
    """One saved output as job_output carries it and job_done's `outputs` lists it.
    `intermediates_dir` is relative to the outputs folder: payloads never carry an absolute path."""
    output = {"name": name, "url": url, "seed": seed, "metadata": metadata, "elapsed_s": elapsed_s}
    if intermediates_dir is not None:
        output["intermediates_dir"] = intermediates_dir
    return output


def job_output(job_id: str, output: dict, item: int, items: int) -> dict:
    """`job_output` {job_id, item, items, name, url, seed, elapsed_s, metadata, intermediates_dir?}:
    `output` is a saved_output."""
    return {"job_id": job_id, **output, "item": item, "items": items}


def saved_file(name: str, url: str) -> dict:
    """A file the job saved beside its outputs: job_done's `contact_sheet` {name, url}."""
    return {"name": name, "url": url}


def job_done(job_id: str, outputs: list[dict], job_elapsed_s: float, contact_sheet: dict | None = None) -> dict:
    """`job_done` {job_id, name, url, seed, elapsed_s, job_elapsed_s, metadata, outputs,
    contact_sheet?}: the top-level fields are the last output's; `outputs` are saved_outputs;
    `contact_sheet` a saved_file (a sweep's)."""
    last = outputs[-1]
    done = {"job_id": job_id, **{key: last[key] for key in ("name", "url", "seed", "elapsed_s", "metadata")},
            "outputs": outputs}
    if contact_sheet is not None:
        done["contact_sheet"] = contact_sheet
    done["job_elapsed_s"] = job_elapsed_s
    return done


def job_cancelled(job_id: str) -> dict:
    """`job_cancelled` {job_id}."""
    return {"job_id": job_id}


def job_error(job_id: str, error: str) -> dict:
    """`job_error` {job_id, error}: `error` is a sentence for the person."""
    return {"job_id": job_id, "error": error}


# -- acknowledgements (README: Client -> server) ----------------------------------------------------


def error(message: str) -> dict:
    """`{error}`: how every client -> server event answers a request it refuses."""
    return {"error": message}


def job_accepted(job_id: str) -> dict:
    """`generate`'s ack {job_id}."""
    return {"job_id": job_id}


def cancelled() -> dict:
    """`cancel`'s ack {ok}."""
    return {"ok": True}


def model_selected(model: str, family: str | None, defaults: dict, native_size: int | None) -> dict:
    """`select_model`'s ack {ok, model, family, defaults, native_size}: the new selection's."""
    return {"ok": True, "model": model, "family": family, "defaults": defaults, "native_size": native_size}


def promoted(index: int, item: int, width: int, height: int, png: bytes) -> dict:
    """`promote`'s ack {ok, index, item, width, height, mime, image}: a step's full decode as PNG."""
    return {"ok": True, "index": index, "item": item, "width": width, "height": height, "mime": "image/png",
            "image": png}
