"""Saved outputs: numbered PNG files with their metadata inside them, and safe writes.

Each output is `outputs/NNNNNN.SEED.png`. The PNG carries two text chunks: `parameters`
(AUTOMATIC1111 format, read by many viewers) and `img2img-studio` (our full metadata as
JSON plus the dream command). The files are the source of truth: the counter is re-derived
from the folder on start-up, and the listing's in-memory index is only a cache of the
files' headers, checked against the folder (names and stat) on every call. Files are written
with `safe_files.write_atomic`.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from .metadata import a1111_parameters, dream_command
from .safe_files import shown_path, write_atomic
from .uploads import ID_PATTERN as UPLOAD_ID_PATTERN

METADATA_KEY = "img2img-studio"
# fullmatch, ASCII digits only: `\d` would also accept other scripts' digits, and `$`
# would accept a trailing newline. Counters past 999999 simply grow a digit.
NAME_PATTERN = re.compile(r"([0-9]{6,})\.([0-9]+)\.png", re.ASCII)
@dataclass(frozen=True)
class SavedOutput:
    name: str
    path: Path
    url: str


class OutputStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)  # the outputs folder itself: the user's choice
        self._lock = threading.Lock()  # naming and writing
        # The listing's cache: name -> (stat signature, listing entry). Filled on the first list()
        # (the CLI never lists, so it never pays for reading every header), kept up to date by
        # save(); list() reads the header only of files it has not seen or that changed.
        self._index: dict[str, tuple[tuple, dict]] = {}
        self._index_lock = threading.Lock()
        counters = [int(m.group(1)) for m in map(NAME_PATTERN.fullmatch, os.listdir(self.root))
                    if m]
        self._next = max(counters, default=0) + 1

    def save(self, image: Image.Image, metadata: dict) -> SavedOutput:
        seed = metadata.get("seed")
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"metadata['seed'] must be a non-negative int, got {seed!r}")
        data, record = _encode_png(image, metadata)  # outside the lock: encoding is the slow part

        with self._lock:
            # Skip names that appeared since the scan (e.g. another process), never overwrite.
            while os.path.lexists(self.root / self._output_name(self._next, seed)):
                self._next += 1
            name = self._output_name(self._next, seed)
            path = self.root / name
            write_atomic(path, data, root=self.root)
            self._next += 1
        try:
            st = os.stat(path, follow_symlinks=False)
        except OSError:  # already gone again: the next list() finds out
            pass
        else:
            entry = self._entry(name, json.loads(record), image.size, st.st_mtime)
            with self._index_lock:
                self._index[name] = (_signature(st), entry)
        return SavedOutput(name=name, path=path, url=f"/outputs/{name}")

    def list(self) -> list[dict]:
        """Every saved output, newest (highest counter) first. Reads the folder's names and stat
        only; a PNG's header is read once, the first time its file is seen."""
        found = []
        for entry in os.scandir(self.root):
            match = NAME_PATTERN.fullmatch(entry.name)
            if not match:
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:  # deleted since the scan
                continue
            if stat.S_ISREG(st.st_mode):  # no links, no folders
                found.append((int(match.group(1)), entry.name, st))
        found.sort(key=lambda item: item[0], reverse=True)

        with self._index_lock:
            known = dict(self._index)
        current = {}
        for _, name, st in found:
            cached = known.get(name)
            if cached is None or cached[0] != _signature(st):  # new here, or replaced since
                meta, size = _read_header(self.root / name)
                cached = (_signature(st), self._entry(name, meta, size, st.st_mtime))
            current[name] = cached
        with self._index_lock:
            # Entries saved while we scanned stay; files that vanished drop out.
            saved_meanwhile = {name: value for name, value in self._index.items()
                               if name not in known and name not in current}
            self._index = {**current, **saved_meanwhile}
        return [dict(current[name][1]) for _, name, _ in found]

    def path_for(self, name: str) -> Path:
        """The file for a requested name, or KeyError. Only plain files directly in root."""
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            raise KeyError(f"{name!r} is not an output name")
        path = self.root / name
        # A symlink could point anywhere; the resolved file must sit directly in root.
        resolved = path.resolve()
        if resolved.parent != self.root.resolve() or not resolved.is_file():
            raise KeyError(f"No output named {name!r}")
        return resolved

    @staticmethod
    def read_metadata(path: Path) -> dict:
        """The metadata JSON stored in a PNG, or {} when it has none or it is unreadable."""
        return _read_header(path)[0]

    @staticmethod
    def _output_name(counter: int, seed: int) -> str:
        return f"{counter:06d}.{seed}.png"

    def _entry(self, name: str, meta: dict, size, created: float) -> dict:
        """One item of list(), in the shape GET /api/outputs promises."""
        width, height = size
        meta = self._served(meta)
        return {
            "name": name,
            "url": f"/outputs/{name}",
            "seed": meta.get("seed", int(NAME_PATTERN.fullmatch(name).group(2))),
            "prompt": meta.get("prompt"),
            "strength": meta.get("strength"),
            "width": width if width is not None else meta.get("width"),
            "height": height if height is not None else meta.get("height"),
            "created": created,
            "metadata": meta,
        }

    def _served(self, meta: dict) -> dict:
        """`meta` with no absolute path in it: outputs saved by older versions named the init
        image by an absolute path when outputs/ lay outside the working directory. It is named
        by its upload id instead, as new outputs name it."""
        init = meta.get("init_image")
        if not isinstance(init, dict) or not isinstance(init.get("path"), str) \
                or not os.path.isabs(init["path"]):
            return meta
        old = init["path"]
        init = {key: value for key, value in init.items() if key != "path"}
        upload_id = init.get("id")
        if isinstance(upload_id, str) and UPLOAD_ID_PATTERN.fullmatch(upload_id):
            init["path"] = shown_path(self.root / "uploads" / f"{upload_id}.png", self.root)
        meta = dict(meta, init_image=init)
        if isinstance(meta.get("command"), str):
            meta["command"] = (meta["command"].replace(shlex.quote(old), shlex.quote(init["path"]))
                               if "path" in init
                               else dream_command({k: v for k, v in meta.items() if k != "command"}))
        return meta


def _signature(st: os.stat_result) -> tuple:
    """Changes when the file is replaced (os.replace gives a new inode) or rewritten."""
    return st.st_ino, st.st_size, st.st_mtime_ns


def _read_header(path: Path) -> tuple[dict, tuple[int | None, int | None]]:
    """(metadata, size) from a PNG without decoding its pixels; ({}, (None, None)) if unreadable."""
    try:
        # img.info holds the text chunks that come before the pixel data, where we put ours.
        with Image.open(path, formats=["PNG"]) as img:
            raw, size = img.info.get(METADATA_KEY), img.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return {}, (None, None)
    try:
        meta = json.loads(raw) if raw else {}
    except (TypeError, ValueError):
        meta = {}
    return (meta if isinstance(meta, dict) else {}), size


def _encode_png(image: Image.Image, metadata: dict) -> tuple[bytes, str]:
    """The PNG bytes, and the metadata JSON they carry (what _read_header will read back)."""
    info = PngInfo()
    info.add_text("parameters", a1111_parameters(metadata))  # falls back to iTXt for non-latin-1
    record = dict(metadata, command=dream_command(metadata))
    # default=str: a stray Path or numpy scalar in metadata must not lose the image.
    text = json.dumps(record, ensure_ascii=False, default=str)
    info.add_itxt(METADATA_KEY, text, zip=True)
    buf = io.BytesIO()
    image.save(buf, "PNG", pnginfo=info)
    return buf.getvalue(), text
