"""What one file or folder in the models folder is: a ModelEntry, described from headers and
configs only (engine/families.py tells a checkpoint's family), or refused with the reason.

model_library.py finds the entries and caches them; this module describes each one.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..engine.checkpoint_file import SAFETENSORS_SUFFIXES
from ..engine.loading import ModelLoadError, ModelSummary, _check_folder, summarize_model

DETECTED_AT_LOAD = "detected at load"
# Files people keep beside models that this studio cannot load: listed as refused, so a person
# sees why a file is not offered instead of wondering where it went. Anything else (configs,
# previews, notes) is not a model attempt and is left out.
REFUSED_SUFFIXES = {
    ".bin": "a .bin file (PyTorch weights of one component, or another tool's format); this studio loads "
            ".safetensors and .ckpt checkpoints and diffusers folders",
    ".gguf": "a GGUF file (quantised weights for other runtimes); this studio loads .safetensors and .ckpt checkpoints",
    ".onnx": "an ONNX export; this studio loads .safetensors and .ckpt checkpoints",
    ".sft": "a .sft file; rename it to .safetensors if it is one",
    ".part": "an unfinished download", ".crdownload": "an unfinished download", ".tmp": "an unfinished download",
}
_FOLDER_FAMILIES = {768: "Stable Diffusion 1.x", 1024: "Stable Diffusion 2.x", 2048: "Stable Diffusion XL"}


@dataclass(frozen=True)
class ModelEntry:
    name: str  # relative to the models folder (to loras/ for a LoRA)
    path: Path
    kind: str  # "file" | "folder"
    size: int
    family: str | None = None
    refused: str | None = None  # why it cannot be used
    detail: str | None = None  # e.g. "detected at load" for a .ckpt's family
    summary: ModelSummary | None = field(default=None, repr=False)  # recommended settings, scheduler
    lora: object | None = field(default=None, repr=False, compare=False)  # a LoRA's engine.loras.LoraFile

    def to_dict(self, sha256: str | None = None) -> dict:
        optional = {"sha256": sha256, "refused": self.refused, "detail": self.detail}
        return {"name": self.name, "family": self.family, "kind": self.kind, "size": self.size,
                **{key: value for key, value in optional.items() if value}}


def describe_file(path: Path, name: str, key: tuple, learned: ModelSummary | None) -> ModelEntry:
    """A checkpoint file from its header (a .safetensors), or what loading it told (`learned`);
    a .ckpt is a pickle, so its family waits for the load. `key` is its cache key, size second."""
    size = key[1]
    if learned is not None:
        return ModelEntry(name, path, "file", size, learned.family, summary=learned)
    if path.suffix.lower() not in SAFETENSORS_SUFFIXES:  # a pickle: unpickling it is loading it
        return ModelEntry(name, path, "file", size, detail=DETECTED_AT_LOAD)
    try:
        summary = summarize_model(path)
    except ModelLoadError as exc:
        return ModelEntry(name, path, "file", size, refused=str(exc))
    return ModelEntry(name, path, "file", size, summary.family, summary=summary)


def describe_folder(path: Path, name: str, key: tuple) -> ModelEntry:
    """A diffusers folder (with model_index.json) from its configs, or why it cannot be used."""
    size = key[1]
    try:
        info = _check_folder(path)
        summary = summarize_model(path)
    except (ModelLoadError, OSError, ValueError) as exc:
        return ModelEntry(name, path, "folder", size, refused=str(exc))
    return ModelEntry(name, path, "folder", size, _folder_family(path, info), summary=summary)


def describe_lora(path: Path, name: str, key: tuple) -> ModelEntry:
    """A LoRA's family (labelled as models' are) by the LoRA engine's header reader, or why not."""
    try:
        from ..engine import loras
    except ImportError:  # the LoRA engine is not part of this build: LoRAs are listed without a family
        return ModelEntry(name, path, "file", key[1])
    try:
        found = loras.read_lora(path, name)
    except ValueError as exc:  # LoraError
        return ModelEntry(name, path, "file", key[1], refused=str(exc))
    family = getattr(found, "family", None)
    return ModelEntry(name, path, "file", key[1], getattr(loras, "LABELS", {}).get(family, None), lora=found)


def lora_listing(entry: ModelEntry, sha256: str | None = None) -> dict:
    """A LoRA as GET /api/models lists it: name, family, size, sha256? (once a job has used it),
    refused?, and `defaults`, the settings its `<stem>.studio_defaults.json` recommends ({} when
    none; the page offers them as "Apply")."""
    shown = {k: v for k, v in entry.to_dict(sha256).items() if k not in ("kind", "detail")}
    if not entry.refused:
        shown["defaults"] = dict(getattr(entry.lora, "defaults", None) or {})
    return shown


def _folder_family(path: Path, info: dict) -> str | None:
    """A diffusers folder's family from its UNet config (the text encoder width), as for files."""
    try:
        unet = json.loads((path / "unet" / "config.json").read_text())
    except (OSError, ValueError):
        return None
    family = "Stable Diffusion XL" if "XL" in info.get("_class_name", "") else \
        _FOLDER_FAMILIES.get(unet.get("cross_attention_dim"))
    if family and unet.get("in_channels") == 9:
        family += " inpainting"
    return family
