"""Saved outputs: numbered PNG files with their metadata inside them, and safe writes.

Each output is `outputs/NNNNNN.SEED.png`. The PNG carries two text chunks: `parameters`
(AUTOMATIC1111 format, read by many viewers) and `img2img-studio` (our full metadata as
JSON plus the dream command). The files are the source of truth: the counter is re-derived
from the folder on start-up, and the listing's in-memory index is only a cache of the
files' headers, checked against the folder (names and stat) on every call.

Every file the studio writes goes through `write_atomic`, which writes only inside the
outputs folder: it walks there folder by folder without following links, so a symlink
planted at `outputs/uploads` (or any folder below outputs/) cannot redirect a write.
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import secrets
import shlex
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from .metadata import a1111_parameters, dream_command

METADATA_KEY = "img2img-studio"
# fullmatch, ASCII digits only: `\d` would also accept other scripts' digits, and `$`
# would accept a trailing newline. Counters past 999999 simply grow a digit.
NAME_PATTERN = re.compile(r"([0-9]{6,})\.([0-9]+)\.png", re.ASCII)
TEMP_PREFIX, TEMP_SUFFIX = ".tmp-", ".part"  # never match NAME_PATTERN, so never listed or served

_DISK_FULL = {errno.ENOSPC} | ({errno.EDQUOT} if hasattr(errno, "EDQUOT") else set())
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class StorageError(OSError):
    """A save the studio refused or could not finish. str() is the message for a person (no
    absolute paths, no errno prefix): the job runner shows it as "Generation failed: ..."."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(code, message)

    def __str__(self) -> str:
        return self.strerror


class UnsafeOutputPath(StorageError):
    """A write that would land outside the outputs folder or go through a symbolic link."""


class DiskFull(StorageError):
    """The disk (or quota) holding the outputs folder ran out while saving."""


@dataclass(frozen=True)
class SavedOutput:
    name: str
    path: Path
    url: str


def write_atomic(path: Path, data: bytes, *, root: Path) -> None:
    """Write `data` to `path`, a file inside the outputs folder `root`, so readers see either no
    file or the whole file.

    Refuses (UnsafeOutputPath) a path outside `root` and any symbolic link between `root` and
    the file; creates missing folders on the way (never through a link). The file gets the usual
    mode, 0o666 less the umask. A full disk raises DiskFull and leaves no temp file behind.
    `root` itself may be a link (e.g. outputs/ on another disk): the user chose it.
    """
    root, path = Path(root), Path(path)
    shown_root = _root_name(root)
    parts = _parts_below(root, path, shown_root)
    shown = "/".join(parts)
    folder_fd = _open_folder(root, parts[:-1], shown_root)
    tmp = f"{TEMP_PREFIX}{secrets.token_hex(8)}{TEMP_SUFFIX}"
    try:
        try:
            # O_EXCL | O_NOFOLLOW: a fresh file of our own; 0o666 is narrowed by the umask.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o666,
                         dir_fd=folder_fd)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, parts[-1], src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=folder_fd)
            except OSError:
                pass  # never created, or already renamed
            raise
    except OSError as exc:
        if exc.errno in _DISK_FULL and not isinstance(exc, StorageError):
            raise DiskFull(f"The disk holding {shown_root}/ is full: could not save {shown}. "
                           "Free some space and run it again.", exc.errno) from exc
        raise
    finally:
        os.close(folder_fd)


def ensure_folder(folder: Path, *, root: Path) -> Path:
    """Create `folder` (inside `root`) and any missing parents, refusing links as write_atomic
    does. Returns `folder`."""
    root, folder = Path(root), Path(folder)
    shown_root = _root_name(root)
    parts = _parts_below(root, folder, shown_root, allow_root=True)
    os.close(_open_folder(root, parts, shown_root))
    return folder


def shown_path(path: Path, root: Path) -> str:
    """How served metadata and reproduce commands name a file inside the outputs folder `root`,
    never as an absolute path: as the folder was given when that was relative (the usual
    `outputs/uploads/<id>.png`, which works from where the studio was started), else from the
    outputs folder's own name (`outputs/uploads/<id>.png` for `--outputs /data/outputs`)."""
    root, path = Path(root), Path(path)
    try:
        relative = Path(os.path.abspath(path)).relative_to(os.path.abspath(root))
    except ValueError:  # not inside the outputs folder: its name alone
        return path.name
    if not root.is_absolute():
        shown = os.path.normpath(root / relative)
        if not os.path.isabs(shown):
            return Path(shown).as_posix()
    return (Path(_root_name(root)) / relative).as_posix()


def _root_name(root: Path) -> str:
    return Path(os.path.abspath(root)).name or "outputs"


def _parts_below(root: Path, path: Path, shown_root: str, allow_root: bool = False) -> list[str]:
    """`path`'s components below `root`, compared as written (no links followed)."""
    try:
        parts = list(Path(os.path.abspath(path)).relative_to(os.path.abspath(root)).parts)
    except ValueError:
        raise UnsafeOutputPath(f"{path.name} would be written outside {shown_root}/; the studio "
                               f"writes only inside {shown_root}/.") from None
    if not parts and not allow_root:
        raise UnsafeOutputPath(f"Cannot write a file over {shown_root}/ itself.")
    return parts


def _open_folder(root: Path, parts: list[str], shown_root: str) -> int:
    """A descriptor of root/parts..., walked one folder at a time with O_NOFOLLOW (so a link
    swapped in between a check and the write cannot redirect it), creating missing folders."""
    try:  # root itself may be a link (outputs/ on another disk): the user chose it
        fd = os.open(root, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
    except FileNotFoundError:
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(root, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
    try:
        for depth, name in enumerate(parts):
            shown = "/".join([shown_root, *parts[:depth + 1]])
            try:
                os.mkdir(name, 0o777, dir_fd=fd)  # the umask narrows it, as for any folder
            except FileExistsError:
                pass
            except OSError as exc:
                if exc.errno in _DISK_FULL:
                    raise DiskFull(f"The disk holding {shown_root}/ is full: could not create "
                                   f"{shown}. Free some space and run it again.", exc.errno) from exc
                raise
            try:
                child = os.open(name, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC, dir_fd=fd)
            except OSError as exc:
                refusal = _refusal(fd, name, shown, shown_root, exc)
                if refusal is exc:
                    raise
                raise refusal from exc
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _refusal(fd: int, name: str, shown: str, shown_root: str, exc: OSError) -> OSError:
    """Why a folder on the way could not be opened, in words a person can act on."""
    try:
        is_link = stat.S_ISLNK(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode)
    except OSError:
        is_link = False
    if is_link:
        return UnsafeOutputPath(
            f"{shown} is a symbolic link; the studio writes only inside {shown_root}/ and follows no "
            f"links there. Replace {shown} with a real folder (or start the studio with --outputs "
            "where you want images saved) and run it again.")
    if exc.errno in (errno.ENOTDIR, errno.ELOOP):
        return UnsafeOutputPath(f"{shown} is not a folder; the studio needs a folder there. Move "
                                "that file away and run it again.")
    return exc


def sweep_stale_temp_files(root: Path, older_than_s: float = 600.0) -> int:
    """Remove temporary files a killed process left in `root` (never following links).

    Only old ones: a `generate` running beside the server may be writing a fresh one right now.
    Returns how many were removed."""
    removed, now = 0, time.time()
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in files:
            if name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX):
                path = os.path.join(folder, name)
                try:
                    if now - os.lstat(path).st_mtime >= older_than_s:
                        os.unlink(path)
                        removed += 1
                except OSError:
                    pass  # gone already, or not ours to remove
    return removed


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
        if isinstance(upload_id, str) and _UPLOAD_ID.fullmatch(upload_id):
            init["path"] = shown_path(self.root / "uploads" / f"{upload_id}.png", self.root)
        meta = dict(meta, init_image=init)
        if isinstance(meta.get("command"), str):
            meta["command"] = (meta["command"].replace(shlex.quote(old), shlex.quote(init["path"]))
                               if "path" in init
                               else dream_command({k: v for k, v in meta.items() if k != "command"}))
        return meta


_UPLOAD_ID = re.compile(r"[0-9a-f]{16}", re.ASCII)  # as uploads.ID_PATTERN (which imports us)


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
