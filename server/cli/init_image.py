"""The init image of a `generate` run: the file -I gives, or the one --from's output records.

A given file is used as given; a recorded one only when its SHA-256 is the one recorded, since
the metadata comes from a file, so from anyone (see `find_recorded_init_image`). Errors about a
given file point at -I; errors about a recorded one are the run's own.
"""
from __future__ import annotations

from pathlib import Path

import click


def given_init_path(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.is_file():
        raise click.BadParameter(f"{text} does not exist or is not a file.", param_hint="'-I' / '--init-img'")
    return path


# An upload is a PNG of at most MAX_UPLOAD_MEGAPIXELS; no file near this size is one.
_MAX_INIT_BYTES = 512 * 1024 * 1024


def find_recorded_init_image(recorded: dict, cli: dict):
    """(path, image) of the init image --from's metadata names, used only when the file's SHA-256
    is the recorded one: by upload id in the uploads folder beside the PNG, then in --outputs',
    then at the recorded path. The metadata comes from a file, so from anyone: its path may name
    any file at all, so each candidate is hashed first and decoded only after it matches (the
    same bytes that were hashed, so nothing can change between the two)."""
    import hashlib

    source = cli["from_output"]
    upload_id, digest, recorded_path = recorded.get("id"), recorded.get("sha256"), recorded.get("path")
    shown = f"{recorded_path!r}" if recorded_path else f"upload {upload_id}"  # repr: one line
    if not digest:
        raise click.ClickException(
            f"{source} records no SHA-256 for its init image ({shown}), so it cannot be checked; give "
            "the image with -I PATH.")
    candidates = []
    if upload_id:  # checked: 16 hex characters, so no separators or dots
        for folder in (Path(source).parent / "uploads", Path(cli["outputs"]) / "uploads"):
            candidates.append(folder / f"{upload_id}.png")
    if recorded_path:
        candidates.append(Path(recorded_path))
    for candidate in candidates:
        data = _regular_file_bytes(candidate)
        if data is not None and hashlib.sha256(data).hexdigest() == digest:
            return candidate, _decode_init_image(data, candidate, given=False)
    raise click.ClickException(
        f"The init image recorded in {source} ({shown}) is not on this machine or its SHA-256 differs "
        "from the one recorded; give the image with -I PATH.")


def _regular_file_bytes(path: Path) -> bytes | None:
    """A regular file's bytes, or None for anything else: missing, unreadable, a folder, a pipe
    or a device (opened without blocking, and checked once open), or too large to be an upload."""
    import os
    import stat

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except (OSError, ValueError):  # ValueError: an embedded NUL
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > _MAX_INIT_BYTES:
            return None
        with os.fdopen(fd, "rb", closefd=False) as file:
            data = file.read(_MAX_INIT_BYTES + 1)
        return data if len(data) <= _MAX_INIT_BYTES else None
    except OSError:
        return None
    finally:
        os.close(fd)


def read_init_image(path: Path, given: bool):
    try:
        data = path.read_bytes()
    except OSError as exc:
        _init_image_error(f"{path} cannot be read: {exc.strerror or exc}", given)
    return _decode_init_image(data, path, given)


def _decode_init_image(data: bytes, path: Path, given: bool):
    from ..storage.images import ImageRejected, decode_upload

    try:
        return decode_upload(data)
    except ImageRejected as exc:
        _init_image_error(f"{path} cannot be used: {exc.message}", given)


def _init_image_error(message: str, given: bool):
    if given:
        raise click.BadParameter(message, param_hint="'-I' / '--init-img'")
    raise click.ClickException(message)
