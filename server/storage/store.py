"""Saved outputs: numbered PNG files with their metadata inside them, and safe writes.

Each output is `outputs/NNNNNN.SEED.png`. The PNG carries two text chunks: `parameters`
(AUTOMATIC1111 format, read by many viewers) and `img2img-studio` (our full metadata as
JSON plus the dream command). The files are the source of truth: the counter is re-derived
from the folder on start-up, and the listing's in-memory index is only a cache of the
files' headers, checked against the folder (names and stat) on every call. Files are written
with `safe_files.write_atomic`.

Two folders below hold outputs that are not in the gallery, named the same way:
- `outputs/live/`: Live's results (it makes many while a slider moves), pruned to the newest
  LIVE_KEPT; `keep` moves one into the gallery under the next gallery name. Its own counter.
- `outputs/.trash/`: outputs deleted from the gallery, restorable (see gallery.py). They keep
  their names, so the gallery counter counts them too and never hands out a name again.
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
from .safe_files import move_within, remove_within, shown_path, write_atomic
from .uploads import ID_PATTERN as UPLOAD_ID_PATTERN

METADATA_KEY = "img2img-studio"
# fullmatch, ASCII digits only: `\d` would also accept other scripts' digits, and `$`
# would accept a trailing newline. Counters past 999999 simply grow a digit.
NAME_PATTERN = re.compile(r"([0-9]{6,})\.([0-9]+)\.png", re.ASCII)
GALLERY = ""  # the outputs folder itself
LIVE_FOLDER = "live"
TRASH_FOLDER = ".trash"
FOLDERS = (GALLERY, LIVE_FOLDER, TRASH_FOLDER)
LIVE_KEPT = 32  # Live results kept in outputs/live/; older ones are deleted as new ones arrive


@dataclass(frozen=True)
class SavedOutput:
    name: str
    path: Path
    url: str
    live: bool = False


def output_url(name: str, folder: str = GALLERY) -> str:
    return f"/outputs/{folder}/{name}" if folder else f"/outputs/{name}"


class OutputStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)  # the outputs folder itself: the user's choice
        self._lock = threading.Lock()  # naming, writing and moving in
        # The listing's cache, per folder: name -> (stat signature, listing entry). Filled on the
        # first list() (the CLI never lists, so it never pays for reading every header), kept up to
        # date by save(); list() reads the header only of files it has not seen or that changed.
        self._index: dict[str, dict[str, tuple[tuple, dict]]] = {folder: {} for folder in FOLDERS}
        self._index_lock = threading.Lock()
        self._next = max(self._counters(GALLERY) + self._counters(TRASH_FOLDER), default=0) + 1
        self._next_live = max(self._counters(LIVE_FOLDER), default=0) + 1

    def save(self, image: Image.Image, metadata: dict, live: bool = False) -> SavedOutput:
        """Save into the gallery, or with `live` into outputs/live/ (not listed, pruned)."""
        seed = metadata.get("seed")
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"metadata['seed'] must be a non-negative int, got {seed!r}")
        data, record = _encode_png(image, metadata)  # outside the lock: encoding is the slow part
        folder = LIVE_FOLDER if live else GALLERY

        with self._lock:
            name = self._free_name(seed, live)
            path = self._folder_path(folder) / name
            write_atomic(path, data, root=self.root)
            if live:
                self._next_live += 1
            else:
                self._next += 1
        try:
            st = os.stat(path, follow_symlinks=False)
        except OSError:  # already gone again: the next list() finds out
            pass
        else:
            entry = self._entry(name, folder, json.loads(record), image.size, st.st_mtime)
            with self._index_lock:
                self._index[folder][name] = (_signature(st), entry)
        if live:
            self._prune_live()
        return SavedOutput(name=name, path=path, url=output_url(name, folder), live=live)

    def keep(self, live_name: str) -> SavedOutput:
        """Move a Live result into the gallery under the next gallery name; KeyError when there
        is no such Live result (kept already, or pruned)."""
        match = NAME_PATTERN.fullmatch(live_name) if isinstance(live_name, str) else None
        if not match:
            raise KeyError(f"{live_name!r} is not a Live result's name")
        with self._lock:
            name = self._free_name(int(match.group(2)), live=False)
            try:
                move_within(self._folder_path(LIVE_FOLDER) / live_name, self.root / name, root=self.root)
            except FileNotFoundError:
                raise KeyError(f"No Live result named {live_name!r}: it was kept already, or is one of the "
                               f"older ones Live does not keep (it keeps the newest {LIVE_KEPT}).") from None
            self._next += 1
        return SavedOutput(name=name, path=self.root / name, url=output_url(name))

    def list(self, folder: str = GALLERY) -> list[dict]:
        """Every output in `folder` (the gallery by default), newest (highest counter) first.
        Reads the folder's names and stat only; a PNG's header is read once, the first time its
        file is seen."""
        found = []
        for name, counter, st in self._scan(folder):
            found.append((counter, name, st))
        found.sort(key=lambda item: item[0], reverse=True)

        with self._index_lock:
            known = dict(self._index[folder])
        current = {}
        for _, name, st in found:
            current[name] = self._cached_entry(known.get(name), name, folder, st)
        with self._index_lock:
            # Entries saved while we scanned stay; files that vanished drop out.
            saved_meanwhile = {name: value for name, value in self._index[folder].items()
                               if name not in known and name not in current}
            self._index[folder] = {**current, **saved_meanwhile}
        return [dict(current[name][1]) for _, name, _ in found]

    def item(self, name: str, folder: str = GALLERY) -> dict:
        """One output's listing entry, as list() gives it; KeyError when `folder` has no plain
        file of that name."""
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            raise KeyError(f"{name!r} is not an output name")
        try:
            st = os.stat(self._folder_path(folder) / name, follow_symlinks=False)
        except OSError:
            st = None
        if st is None or not stat.S_ISREG(st.st_mode):
            raise KeyError(f"No output named {name!r}")
        with self._index_lock:
            known = self._index[folder].get(name)
        cached = self._cached_entry(known, name, folder, st)
        with self._index_lock:
            self._index[folder][name] = cached
        return dict(cached[1])

    def _cached_entry(self, cached, name: str, folder: str, st: os.stat_result) -> tuple[tuple, dict]:
        if cached is None or cached[0] != _signature(st):  # new here, or replaced since
            meta, size = _read_header(self._folder_path(folder) / name)
            cached = (_signature(st), self._entry(name, folder, meta, size, st.st_mtime))
        return cached

    def _scan(self, folder: str) -> list[tuple[str, int, os.stat_result]]:
        """(name, counter, stat) of the plain files named like outputs directly in `folder`. A
        missing subfolder, or one that is a link, holds none."""
        path = self._folder_path(folder)
        if folder and (os.path.islink(path) or not os.path.isdir(path)):
            return []
        found = []
        for entry in os.scandir(path):
            match = NAME_PATTERN.fullmatch(entry.name)
            if not match:
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:  # deleted since the scan
                continue
            if stat.S_ISREG(st.st_mode):  # no links, no folders
                found.append((entry.name, int(match.group(1)), st))
        return found

    def _counters(self, folder: str) -> list[int]:
        return [counter for _, counter, _ in self._scan(folder)]

    def _free_name(self, seed: int, live: bool) -> str:
        """The next free name (under self._lock; the caller counts it used once its file is
        there). Skips names that appeared since the scan (e.g. another process): never
        overwrite; a gallery name is not free while the trash holds it."""
        if live:
            while os.path.lexists(self._folder_path(LIVE_FOLDER) / self._output_name(self._next_live, seed)):
                self._next_live += 1
            return self._output_name(self._next_live, seed)
        while any(os.path.lexists(self._folder_path(folder) / self._output_name(self._next, seed))
                  for folder in (GALLERY, TRASH_FOLDER)):
            self._next += 1
        return self._output_name(self._next, seed)

    def _prune_live(self) -> None:
        """Keep the newest LIVE_KEPT Live results: a few drags make dozens."""
        found = sorted(self._scan(LIVE_FOLDER), key=lambda item: item[1], reverse=True)
        for name, _, _ in found[LIVE_KEPT:]:
            remove_within(self._folder_path(LIVE_FOLDER) / name, root=self.root)
            with self._index_lock:  # a long Live session must not grow the cache
                self._index[LIVE_FOLDER].pop(name, None)

    def _folder_path(self, folder: str) -> Path:
        if folder not in FOLDERS:
            raise KeyError(f"{folder!r} is not an outputs folder")
        return self.root / folder if folder else self.root

    def path_for(self, name: str, folder: str = GALLERY) -> Path:
        """The file for a requested name, or KeyError. Only plain files directly in root (or
        directly in its `folder`, which must not be a link itself)."""
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            raise KeyError(f"{name!r} is not an output name")
        path = self._folder_path(folder) / name
        # A symlink could point anywhere; the resolved file must sit directly in root (or folder).
        resolved = path.resolve()
        expected = self.root.resolve() / folder if folder else self.root.resolve()
        if resolved.parent != expected or not resolved.is_file():
            raise KeyError(f"No output named {name!r}")
        return resolved

    @staticmethod
    def read_metadata(path: Path) -> dict:
        """The metadata JSON stored in a PNG, or {} when it has none or it is unreadable."""
        return _read_header(path)[0]

    @staticmethod
    def _output_name(counter: int, seed: int) -> str:
        return f"{counter:06d}.{seed}.png"

    def _entry(self, name: str, folder: str, meta: dict, size, created: float) -> dict:
        """One item of list(), in the shape GET /api/outputs promises."""
        width, height = size
        meta = self._served(meta)
        return {
            "name": name,
            "url": output_url(name, folder),
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
