"""Writing files inside the outputs folder, and nowhere else.

Every file the studio writes goes through `write_atomic`, which walks from the outputs folder
to the target folder by folder without following links, so a symlink planted at
`outputs/uploads` (or any folder below outputs/) cannot redirect a write, and readers see either
no file or the whole file. A full disk is a `DiskFull` with a message a person can act on.
"""
from __future__ import annotations

import errno
import os
import secrets
import stat
import time
from pathlib import Path

TEMP_PREFIX, TEMP_SUFFIX = ".tmp-", ".part"  # never an output name (store.NAME_PATTERN), so never listed or served

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


def _open_folder(root: Path, parts: list[str], shown_root: str, create: bool = True) -> int:
    """A descriptor of root/parts..., walked one folder at a time with O_NOFOLLOW (so a link
    swapped in between a check and the write cannot redirect it), creating missing folders
    (with create=False a missing one is a FileNotFoundError)."""
    try:  # root itself may be a link (outputs/ on another disk): the user chose it
        fd = os.open(root, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
    except FileNotFoundError:
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(root, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
    try:
        for depth, name in enumerate(parts):
            shown = "/".join([shown_root, *parts[:depth + 1]])
            try:
                if create:
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
            except FileNotFoundError:
                raise  # only with create=False: nothing there to move or remove
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


def move_within(source: Path, target: Path, *, root: Path) -> None:
    """Move the file or folder `source` to `target`, both inside the outputs folder `root`, never
    replacing anything at `target` (FileExistsError) and never through a symbolic link.

    The folders on both sides are walked as write_atomic walks them (the target's missing ones are
    created); a missing `source` is a FileNotFoundError; a `source` that is itself a link (or not a
    plain file or folder) is refused with UnsafeOutputPath and stays where it is. The move is a
    rename, so readers see the file in one place or the other, never half of it.
    """
    root = Path(root)
    shown_root = _root_name(root)
    source_parts = _parts_below(root, Path(source), shown_root)
    target_parts = _parts_below(root, Path(target), shown_root)
    shown_source, shown_target = "/".join([shown_root, *source_parts]), "/".join([shown_root, *target_parts])
    source_fd = _open_folder(root, source_parts[:-1], shown_root, create=False)
    try:
        mode = os.stat(source_parts[-1], dir_fd=source_fd, follow_symlinks=False).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            what = "a symbolic link" if stat.S_ISLNK(mode) else "not a plain file or folder"
            raise UnsafeOutputPath(f"{shown_source} is {what}; the studio moves only its own files and "
                                   f"follows no links in {shown_root}/. It was left where it is.")
        target_fd = _open_folder(root, target_parts[:-1], shown_root)
        try:
            _rename_without_replacing(source_fd, source_parts[-1], target_fd, target_parts[-1],
                                      stat.S_ISDIR(mode), shown_target)
        finally:
            os.close(target_fd)
    finally:
        os.close(source_fd)


def _rename_without_replacing(source_fd: int, source: str, target_fd: int, target: str, is_folder: bool,
                              shown_target: str) -> None:
    exists = FileExistsError(errno.EEXIST, f"{shown_target} exists already; nothing was moved.")
    if not is_folder:
        # A hard link fails if the target exists, where rename would silently replace it: the
        # no-replace check and the move are one step. Filesystems without hard links fall through.
        try:
            os.link(source, target, src_dir_fd=source_fd, dst_dir_fd=target_fd, follow_symlinks=False)
        except FileExistsError:
            raise exists from None
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.EXDEV):
                raise
        else:
            os.unlink(source, dir_fd=source_fd)
            return
    try:
        os.stat(target, dir_fd=target_fd, follow_symlinks=False)
    except FileNotFoundError:
        os.rename(source, target, src_dir_fd=source_fd, dst_dir_fd=target_fd)
    else:
        raise exists


def remove_within(path: Path, *, root: Path) -> bool:
    """Delete the plain file `path` inside `root`, walking to it without following links. False when
    it is not there or is not a plain file (a link or folder is left alone)."""
    root = Path(root)
    shown_root = _root_name(root)
    parts = _parts_below(root, Path(path), shown_root)
    try:
        fd = _open_folder(root, parts[:-1], shown_root, create=False)
    except FileNotFoundError:
        return False
    try:
        if not stat.S_ISREG(os.stat(parts[-1], dir_fd=fd, follow_symlinks=False).st_mode):
            return False
        os.unlink(parts[-1], dir_fd=fd)
        return True
    except FileNotFoundError:
        return False
    finally:
        os.close(fd)


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
