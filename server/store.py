"""Saved outputs: numbered PNG files with their metadata inside them.

Each output is `outputs/NNNNNN.SEED.png`. The PNG carries two text chunks: `parameters`
(AUTOMATIC1111 format, read by many viewers) and `img2img-studio` (our full metadata as
JSON plus the dream command). The files are the only source of truth: there is no index
to get out of step, and the counter is re-derived from the folder on start-up.
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from .metadata import a1111_parameters, dream_command

METADATA_KEY = "img2img-studio"
# fullmatch, ASCII digits only: `\d` would also accept other scripts' digits, and `$`
# would accept a trailing newline. Counters past 999999 simply grow a digit.
NAME_PATTERN = re.compile(r"([0-9]{6,})\.([0-9]+)\.png", re.ASCII)


@dataclass(frozen=True)
class SavedOutput:
    name: str
    path: Path
    url: str


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` so readers see either no file or the whole file.

    The temp file lives in the same folder so os.replace is a same-filesystem rename.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class OutputStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        counters = [int(m.group(1)) for m in map(NAME_PATTERN.fullmatch, os.listdir(self.root))
                    if m]
        self._next = max(counters, default=0) + 1

    def save(self, image: Image.Image, metadata: dict) -> SavedOutput:
        seed = metadata.get("seed")
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"metadata['seed'] must be a non-negative int, got {seed!r}")
        data = _encode_png(image, metadata)  # outside the lock: encoding is the slow part

        with self._lock:
            # Skip names that appeared since the scan (e.g. another process), never overwrite.
            while (self.root / self._output_name(self._next, seed)).exists():
                self._next += 1
            name = self._output_name(self._next, seed)
            path = self.root / name
            write_atomic(path, data)
            self._next += 1
        return SavedOutput(name=name, path=path, url=f"/outputs/{name}")

    def list(self) -> list[dict]:
        """Every saved output, newest (highest counter) first."""
        entries = []
        for entry in os.scandir(self.root):
            match = NAME_PATTERN.fullmatch(entry.name)
            if match and entry.is_file(follow_symlinks=False):
                entries.append((int(match.group(1)), entry))
        entries.sort(key=lambda item: item[0], reverse=True)
        described = (self._describe(entry) for _, entry in entries)
        return [item for item in described if item is not None]

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

    def _describe(self, entry: os.DirEntry) -> dict | None:
        name = entry.name
        try:
            created = entry.stat(follow_symlinks=False).st_mtime
        except FileNotFoundError:  # deleted since the scan
            return None
        meta, (width, height) = _read_header(Path(entry.path))
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


def _encode_png(image: Image.Image, metadata: dict) -> bytes:
    info = PngInfo()
    info.add_text("parameters", a1111_parameters(metadata))  # falls back to iTXt for non-latin-1
    record = dict(metadata, command=dream_command(metadata))
    # default=str: a stray Path or numpy scalar in metadata must not lose the image.
    info.add_itxt(METADATA_KEY, json.dumps(record, ensure_ascii=False, default=str), zip=True)
    buf = io.BytesIO()
    image.save(buf, "PNG", pnginfo=info)
    return buf.getvalue()
