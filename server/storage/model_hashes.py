"""SHA-256s of model files, cached in outputs/.cache/ by (path, size, mtime_ns).

Computed on the worker when a model loads (a checkpoint of several GB takes seconds to read),
streamed 1 MiB at a time, and kept so each version of a file is read once; the CLI and the server
share the cache file. Outputs record the hash, and `--from` finds a model by it.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

from .safe_files import ensure_folder, write_atomic

HASH_CHUNK = 1024 * 1024


def file_key(path: Path) -> tuple:
    """(path, size, mtime_ns): a file version, as far as caches here are concerned."""
    info = Path(path).stat()
    return (str(path), info.st_size, info.st_mtime_ns)


class HashCache:
    """SHA-256s of model files by (path, size, mtime_ns), in outputs/.cache/ (shared with the CLI).
    A renamed or moved file keeps its inode, size and mtime: it is known under its new name too."""

    def __init__(self, file: Path, outputs_dir: Path):
        self.file, self.outputs_dir = file, outputs_dir
        self._seen: tuple | None = None  # the cache file's (size, mtime_ns) when last read
        self._known: dict[str, list] = {}

    def known(self, path: Path) -> str | None:
        try:
            path = Path(path).resolve()
            info = path.stat()
        except OSError:
            return None
        self._reload()
        version = [info.st_size, info.st_mtime_ns]
        stored = self._known.get(str(path))
        if stored and stored[:2] == version:
            return stored[2]
        moved = version + [info.st_dev, info.st_ino]
        return next((v[2] for v in self._known.values() if v[:2] + v[3:5] == moved), None)

    def compute(self, path: Path, progress: Callable[[float], None] | None = None) -> str:
        """The file's SHA-256, from the cache or read in 1 MiB chunks (on the worker)."""
        path = Path(path).resolve()
        cached = self.known(path)
        if cached:
            if str(path) not in self._known:  # found under its old name: keep it under the new one
                self._store(path, file_key(path), cached)
            return cached
        key = file_key(path)
        digest, done = hashlib.sha256(), 0
        with open(path, "rb") as file:
            while chunk := file.read(HASH_CHUNK):
                digest.update(chunk)
                done += len(chunk)
                if progress and done % (64 * HASH_CHUNK) < HASH_CHUNK:
                    progress(done / max(key[1], 1))
        sha = digest.hexdigest()
        if progress:
            progress(1.0)
        if file_key(path) == key:  # not changed while it was read
            self._store(path, key, sha)
        return sha

    def remember(self, path: Path, sha: str) -> None:
        """Keep a SHA-256 computed elsewhere (a job's LoRA), so listings show it without reading."""
        path = Path(path).resolve()
        if self.known(path) != sha:
            self._store(path, file_key(path), sha)

    def _store(self, path: Path, key: tuple, sha: str) -> None:
        info = path.stat()
        self._reload()
        self._known[key[0]] = [key[1], key[2], sha, info.st_dev, info.st_ino]
        # Files that are gone are forgotten (a renamed one was just stored under its new name).
        self._known = {name: v for name, v in self._known.items() if os.path.exists(name)}
        self._save()

    def _reload(self) -> None:
        try:
            info = self.file.stat()
        except OSError:
            return
        if self._seen != (info.st_size, info.st_mtime_ns):
            try:
                data = json.loads(self.file.read_text())
                self._known = {k: v for k, v in data.items() if isinstance(v, list) and len(v) == 5}
            except (OSError, ValueError, AttributeError):
                self._known = {}
            self._seen = (info.st_size, info.st_mtime_ns)

    def _save(self) -> None:
        try:
            ensure_folder(self.file.parent, root=self.outputs_dir)
            write_atomic(self.file, json.dumps(self._known, indent=0).encode(), root=self.outputs_dir)
        except OSError:
            pass  # a cache: computing it again later is the only cost
