"""The models folder (`--models-dir`): what `GET /api/models` lists and `generate`'s `model` names.

It holds single-file checkpoints, diffusers folders (with model_index.json) and `loras/`. Listing
loads no weights: a .safetensors file's header and a shape or two tell its family
(engine/families.py); a .ckpt is a pickle that must be unpickled to show its keys, so its family
waits for the load (model_entries.py describes each entry). Each entry is cached by its files' (path, size, mtime_ns), so listing again
opens only what changed. Files that look like a model but are not one this studio runs are listed
as refused, with the reason.

A name is the path relative to the folder, with "/" separators. It never leads outside the folder
(no "..", no absolute paths, no links out of it; checked again when used), so a name from a socket
payload is safe to open. SHA-256s of model files: model_hashes.py.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from ..engine.checkpoint_file import CHECKPOINT_SUFFIXES
from ..engine.loading import ModelSummary
from ..engine.model_defaults import DEFAULTS_FILE
from .model_entries import REFUSED_SUFFIXES, ModelEntry, describe_file, describe_folder, describe_lora, lora_listing
from .model_hashes import HashCache, file_key as _file_key

LORA_FOLDER = "loras"
MAX_DEPTH = 4  # folders below the models folder that are searched (links inside it could loop)
MAX_ENTRIES = 2000


class UnknownModel(ValueError):
    """A name that is not a model the folder lists (or is refused); the message is for people."""


class ModelLibrary:
    def __init__(self, models_dir: str | Path, outputs_dir: Path):
        self.root = Path(models_dir).expanduser().absolute()
        self.hashes = HashCache(Path(outputs_dir) / ".cache" / "model-sha256.json", Path(outputs_dir))
        self._entries: dict[str, tuple[tuple, ModelEntry]] = {}  # path -> (stat key, entry)
        self._learned: dict[tuple, ModelSummary] = {}  # stat key -> what a load told (a .ckpt's family)

    # -- listing -----------------------------------------------------------------------------
    def models(self) -> list[ModelEntry]:
        return self._scan(self._real_root(), "")

    def loras(self) -> list[ModelEntry]:
        root = self._real_root()
        folder = root / LORA_FOLDER if root else None
        if folder is None or not folder.is_dir() or folder.is_symlink():
            return []
        return self._scan(root, LORA_FOLDER + "/", loras=True)

    def listing(self) -> dict:
        """`models` and `loras` as GET /api/models shows them (`current` is the studio's)."""
        return {"models": [e.to_dict(self.hashes.known(e.path)) for e in self.models()],
                "loras": [lora_listing(e, self.hashes.known(e.path)) for e in self.loras()]}

    def find(self, name) -> ModelEntry | None:
        """What the listing would show under `name` (refused or not), without listing the rest."""
        name = _checked_name(name)
        root, parts = self._real_root(), name.split("/")
        if root is None or parts[0] == LORA_FOLDER or len(parts) > MAX_DEPTH or any(p.startswith(".") for p in parts):
            return None
        path = root / name
        try:
            if not path.exists():
                return None
            if not _inside(path.resolve(), root):
                return ModelEntry(name, path, "file", 0, refused="a link to a place outside the models folder")
            if path.is_dir():
                index = (path / "model_index.json").is_file()
                return self._cached(path, name, _folder_key(path), describe_folder) if index else None
            return self._file_entry(path, name, loras=False)
        except OSError:
            return None

    def entry(self, name) -> ModelEntry:
        """The listed, usable model `name`; UnknownModel says why not."""
        found = self.find(name)
        if found is None:
            raise UnknownModel(f"No model named {name!r} in the models folder ({self.root.name}/); "
                               "GET /api/models lists them.")
        if found.refused:
            raise UnknownModel(f"{name} cannot be used: {found.refused}")
        return found

    def find_recorded(self, name: str, sha256: str | None) -> ModelEntry | None:
        """The model an output recorded: a listed file whose SHA-256 the studio already knows to
        match (found even when renamed), else the one listed under the recorded name."""
        if sha256:
            for entry in self.models():
                if not entry.refused and self.hashes.known(entry.path) == sha256:
                    return entry
        try:
            found = self.find(name)
        except UnknownModel:
            return None
        return found if found is not None and not found.refused else None

    def lora(self, name) -> ModelEntry:
        name = _checked_name(name)
        found = next((e for e in self.loras() if e.name == name), None)
        if found is None or found.refused:
            raise UnknownModel(f"{name} cannot be used: {found.refused}" if found else
                               f"No LoRA named {name!r} in {self.root.name}/{LORA_FOLDER}/.")
        self.check_inside(found.path)
        return found

    def name_of(self, path: str | Path) -> str | None:
        """The listed name of a path inside the folder (as --model may give it), else None."""
        root = self._real_root()
        try:
            relative = Path(path).expanduser().resolve().relative_to(root) if root else None
        except (ValueError, OSError):
            return None
        return relative.as_posix() if relative and relative.parts and relative.parts[0] != LORA_FOLDER else None

    def lora_name_of(self, path: str | Path) -> str | None:
        """The listed name of a path inside loras/ (as --lora may give it), else None."""
        root = self._real_root()
        try:
            relative = Path(path).expanduser().resolve().relative_to(root / LORA_FOLDER) if root else None
        except (ValueError, OSError):
            return None
        return relative.as_posix() if relative and relative.parts else None

    def check_inside(self, path: Path) -> None:
        """Raise UnknownModel when `path` (a link, say, swapped in after listing) leads outside."""
        root = self._real_root()
        if root is None or not _inside(Path(path).resolve(), root):
            raise UnknownModel(f"{Path(path).name} is outside the models folder; it is not used.")

    def remember_loaded(self, path: Path, summary: ModelSummary) -> None:
        """What loading a file told (a .ckpt's family), shown by later listings of that version."""
        key = _file_key(Path(path))
        if key is not None:
            self._learned[key] = summary
            self._entries.pop(str(path), None)

    # -- scanning ----------------------------------------------------------------------------
    def _real_root(self) -> Path | None:
        return self.root.resolve() if self.root.is_dir() else None  # missing: nothing listed, nothing made

    def _scan(self, root: Path | None, prefix: str, loras: bool = False) -> list[ModelEntry]:
        if root is None:
            return []
        found: list[ModelEntry] = []
        stack = [(root / prefix.rstrip("/") if prefix else root, prefix, 0)]
        while stack and len(found) < MAX_ENTRIES:
            folder, shown, depth = stack.pop()
            try:
                children = sorted(os.scandir(folder), key=lambda c: c.name, reverse=True)
            except OSError:
                continue
            for child in children:
                name = shown + child.name
                if child.name.startswith(".") or (not shown and child.name == LORA_FOLDER and not loras):
                    continue
                path = Path(child.path)
                try:
                    if child.is_symlink() and not _inside(path.resolve(), root):
                        found.append(ModelEntry(name, path, "file", 0, refused=(
                            "a link to a place outside the models folder, which is not followed; "
                            "point --models-dir at that folder, or move the model here")))
                    elif child.is_dir():
                        if not loras and (path / "model_index.json").is_file():
                            found.append(self._cached(path, name, _folder_key(path), describe_folder))
                        elif not loras and (path / "unet").is_dir():
                            found.append(ModelEntry(name, path, "folder", _folder_key(path)[1], refused=(
                                "a folder with unet/ but no model_index.json, so not a diffusers model folder")))
                        elif depth + 1 < MAX_DEPTH:
                            stack.append((path, name + "/", depth + 1))
                    elif child.is_file():
                        found.append(self._file_entry(path, name, loras))
                except OSError:
                    continue
        return sorted((e for e in found if e is not None), key=lambda e: e.name.lower())

    def _file_entry(self, path: Path, name: str, loras: bool) -> ModelEntry | None:
        suffix = path.suffix.lower()
        if suffix in REFUSED_SUFFIXES and not loras:
            return ModelEntry(name, path, "file", path.stat().st_size, refused=REFUSED_SUFFIXES[suffix])
        if suffix not in CHECKPOINT_SUFFIXES:
            return None  # a config, a preview image, notes: not a model attempt
        key = _file_key(path) + _beside_key(path)
        if loras:
            return self._cached(path, name.removeprefix(LORA_FOLDER + "/"), key, describe_lora)
        return self._cached(path, name, key, self._describe_file)

    def _cached(self, path: Path, name: str, key: tuple, describe: Callable) -> ModelEntry:
        hit = self._entries.get(str(path))
        if hit is not None and hit[0] == key and hit[1].name == name:
            return hit[1]
        entry = describe(path, name, key)
        self._entries[str(path)] = (key, entry)
        return entry

    def _describe_file(self, path: Path, name: str, key: tuple) -> ModelEntry:
        return describe_file(path, name, key, learned=self._learned.get(tuple(key[:3])))


def _checked_name(name) -> str:
    if not isinstance(name, str) or not 0 < len(name) <= 1024 or "\0" in name or "\\" in name:
        raise UnknownModel("A model name is the text GET /api/models lists, e.g. \"sd15.safetensors\".")
    parts = name.split("/")
    if name.startswith("/") or ":" in parts[0] or any(p in ("", ".", "..") for p in parts):
        raise UnknownModel(f"{name!r} is not a name in the models folder: names are relative paths inside it "
                           "(no '..', no absolute paths).")
    return name


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _beside_key(path: Path) -> tuple:
    """The files beside a checkpoint that change what it is detected as (families.py)."""
    beside = (path.with_suffix(".yaml"), path.with_name(path.stem + "." + DEFAULTS_FILE), path.with_name(DEFAULTS_FILE))
    return tuple((o.stat().st_size, o.stat().st_mtime_ns) if o.is_file() else None for o in beside)


def _folder_key(path: Path) -> tuple:
    """(path, total size, newest mtime_ns) of a folder's files."""
    infos = []
    for folder, _dirs, files in os.walk(path):
        for file in files:
            try:
                infos.append(os.stat(os.path.join(folder, file)))
            except OSError:  # a broken link: loading will say so
                pass
    return (str(path), sum(i.st_size for i in infos), max((i.st_mtime_ns for i in infos), default=0))

