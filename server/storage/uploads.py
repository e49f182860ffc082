"""Validated uploads, stored as PNG files named by their content.

The id is the start of the SHA-256 of the stored PNG bytes, so uploading the same pixels
twice gives the same id and one file. PNG keeps RGBA, and with it the RGB under alpha 0.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from .safe_files import ensure_folder, write_atomic

ID_PATTERN = re.compile(r"[0-9a-f]{16}", re.ASCII)  # used with fullmatch


@dataclass(frozen=True)
class UploadRecord:
    id: str
    width: int
    height: int
    has_alpha: bool
    sha256: str
    path: Path


class UploadStore:
    def __init__(self, root: Path, outputs_root: Path | None = None):
        """`root` is the uploads folder; `outputs_root`, the outputs folder that holds it (by
        default its parent), is where writes must stay: a link at `root` is refused."""
        self.root = Path(root)
        self.outputs_root = Path(outputs_root) if outputs_root is not None else self.root.parent

    def save(self, image: Image.Image) -> UploadRecord:
        """Store an image from `decode_upload` (mode RGB or RGBA) and describe it."""
        if image.mode not in ("RGB", "RGBA"):
            raise ValueError(f"UploadStore takes RGB or RGBA images (from decode_upload), "
                             f"got mode {image.mode}")
        if image.mode == "RGBA" and image.getchannel("A").getextrema()[0] == 255:
            # Same rule as decode_upload: RGBA means "has transparency", nothing else.
            image = image.convert("RGB")

        buf = io.BytesIO()
        image.save(buf, "PNG")  # no pnginfo: nothing from the original file travels on
        data = buf.getvalue()
        digest = hashlib.sha256(data).hexdigest()
        path = self.root / f"{digest[:16]}.png"

        ensure_folder(self.root, root=self.outputs_root)  # refuses a link at outputs/uploads
        # The same bytes stored already: no write. A file under that name with other bytes (edited
        # by hand, or half-written by an older version) is replaced, so the id always means these pixels.
        if path.is_symlink() or not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            write_atomic(path, data, root=self.outputs_root)
        return UploadRecord(id=digest[:16], width=image.width, height=image.height,
                            has_alpha=image.mode == "RGBA", sha256=digest, path=path)

    def load(self, upload_id: str) -> Image.Image:
        """The stored image, fully loaded, in mode RGB or RGBA."""
        with Image.open(self._path(upload_id), formats=["PNG"]) as img:
            img.load()
            return img.copy() if img.mode in ("RGB", "RGBA") else img.convert("RGB")

    def record(self, upload_id: str) -> UploadRecord:
        path = self._path(upload_id)
        data = path.read_bytes()
        with Image.open(io.BytesIO(data), formats=["PNG"]) as img:  # header only
            width, height, mode = img.width, img.height, img.mode
        return UploadRecord(id=upload_id, width=width, height=height, has_alpha=mode == "RGBA",
                            sha256=hashlib.sha256(data).hexdigest(), path=path)

    def _path(self, upload_id: str) -> Path:
        # The id pattern alone keeps the path inside root: no separators, no dots.
        if not isinstance(upload_id, str) or not ID_PATTERN.fullmatch(upload_id):
            raise KeyError(f"{upload_id!r} is not an upload id (16 lowercase hex characters).")
        path = self.root / f"{upload_id}.png"
        # ...but a symlink planted in root could still point elsewhere.
        if path.is_symlink() or not path.is_file():
            raise KeyError(f"No upload with id {upload_id}. Upload the image again.")
        return path
