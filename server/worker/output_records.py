"""What a saved output records about itself, in its PNG's JSON chunk.

Each output's record reproduces it alone: the request in single-output form (this output's own
strength, seed and full variation list; one iteration, a batch of one, no sweep), plus how it was
made (plan, model, LoRAs, the init image by upload id, and under `job` the whole job's settings).
A contact sheet's record names the outputs it shows (`contact_sheet_of`), so listings can tell it
from an output.
"""
from __future__ import annotations

from pathlib import Path

from ..engine import GenerationRequest
from ..engine.results import GenerationResult
from ..storage.safe_files import shown_path
from ..storage.uploads import UploadRecord


def output_record(request: GenerationRequest, result: GenerationResult, init_image: dict | None, warnings: list,
                  job_info: dict, model: dict, loras: list, live: bool) -> dict:
    """One output's metadata. `job_info` holds its place in the job ({item, items}); `live`
    says the page's Live mode made it."""
    return {
        **request.to_dict(),
        "seed": result.seed,
        "variation_amount": 0.0,
        "variation_seed": None,
        "with_variations": [list(v) for v in result.with_variations],
        "iterations": 1,
        "batch_size": 1,
        "strengths": [],
        "mode": result.mode,
        "fit_box": [request.width, request.height] if request.fit else None,
        "width": result.width,
        "height": result.height,
        "strength": result.strength,
        "steps_total": result.plan.steps_total,
        "skipped": result.plan.skipped,
        "taken": result.plan.taken,
        "model": model,  # {name, sha256}: the name as GET /api/models lists it
        # [{name, weight, sha256, a1111_hash}] of the set applied (a1111_hash: 12 hex, for A1111's
        # `Lora hashes`); metadata.a1111_parameters writes A1111's <lora:name:weight> from it.
        "loras": loras,
        "init_image": init_image,
        "job": {**job_info, "variation_amount": request.variation_amount,
                "variation_seed": request.variation_seed, "iterations": request.iterations,
                "batch_size": request.batch_size, "strengths": list(request.strengths)},
        "live": live,
        "warnings": list(result.warnings) + warnings,
        "elapsed_s": round(result.elapsed_s, 3),
    }


def init_image_record(upload: UploadRecord | None, outputs_dir: Path) -> dict | None:
    """The init image as outputs name it: by upload id and url, with `path`
    (for the dream command's -I) relative to where the studio was started, or the outputs folder's
    parent: never absolute."""
    if upload is None:
        return None
    return {"id": upload.id, "sha256": upload.sha256, "width": upload.width, "height": upload.height,
            "has_alpha": upload.has_alpha, "url": f"/api/uploads/{upload.id}",
            "path": shown_path(upload.path, outputs_dir)}


def contact_sheet_record(request: GenerationRequest, size: tuple[int, int], outputs: list[dict], model: dict,
                         loras: list, live: bool) -> dict:
    """A sweep's contact sheet: the job's settings, and the names of the outputs it shows."""
    first = outputs[0]["metadata"]
    return {**request.to_dict(), "seed": first["seed"], "mode": "sweep", "strengths": list(request.strengths),
            "width": size[0], "height": size[1], "model": model, "loras": loras, "init_image": first["init_image"],
            "contact_sheet_of": [o["name"] for o in outputs], "live": live}
