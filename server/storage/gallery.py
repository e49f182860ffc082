"""Managing the gallery: the trash, stars, filtering and paging, and keeping Live results.

Deleting moves an output (and its intermediates folder) to `outputs/.trash/` under the same name,
so it can be restored; nothing here deletes a picture. Stars live in one small JSON index,
`outputs/stars.json`, keyed by output name: a trashed and restored output keeps its star, and the
store never hands out a name again. Every move goes through safe_files.move_within (no links,
never replacing a file, never outside outputs/). All of it touches the disk: callers on the socket
loop run it through Runtime.wait_off_loop.
"""
from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .intermediates import intermediates_dir
from .safe_files import StorageError, move_within, write_atomic
from .store import GALLERY, NAME_PATTERN, TRASH_FOLDER, OutputStore

STARS_FILE = "stars.json"
MAX_PAGE = 200
_YES, _NO = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


class GalleryError(Exception):
    """A request the gallery cannot do; `status` is the HTTP status, str() the message."""

    status = 400


class NotFound(GalleryError):
    status = 404


class Conflict(GalleryError):
    status = 409


@dataclass(frozen=True)
class OutputQuery:
    """What GET /api/outputs asks for. Without parameters: the whole gallery, contact sheets left
    out (they show in their own row, not as a picture to reuse)."""

    text: str = ""
    starred_only: bool = False
    sheets: bool = False
    trash: bool = False
    offset: int = 0
    limit: int | None = None

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> "OutputQuery":
        """From a request's query string; ValueError with a message a person can act on."""
        return cls(text=args.get("q", "").strip(), starred_only=_flag(args, "starred"),
                   sheets=_flag(args, "sheets"), trash=_flag(args, "trash"),
                   offset=_whole(args, "offset", 0, None, 0),
                   limit=_whole(args, "limit", 1, MAX_PAGE, None))

    def matches(self, item: dict) -> bool:
        meta = item.get("metadata") or {}
        if "contact_sheet_of" in meta and not self.sheets:
            return False
        if self.starred_only and not item["starred"]:
            return False
        if self.text:
            wanted = self.text.casefold()
            texts = (meta.get("prompt"), meta.get("negative_prompt"))
            return any(isinstance(t, str) and wanted in t.casefold() for t in texts)
        return True


def _flag(args: Mapping[str, str], key: str) -> bool:
    value = args.get(key, "").strip().lower()
    if value in _YES or value in _NO:
        return value in _YES
    raise ValueError(f"{key} must be 1 or 0 (got {value[:20]!r}).")


def _whole(args: Mapping[str, str], key: str, lowest: int, highest: int | None, default):
    if key not in args:
        return default
    raw = args[key].strip()
    span = f"from {lowest} to {highest}" if highest is not None else f"of at least {lowest}"
    if not raw.isascii() or not raw.isdigit() or not lowest <= int(raw) <= (highest or int(raw)):
        raise ValueError(f"{key} must be a whole number {span} (got {raw[:20]!r}).")
    return int(raw)


class StarIndex:
    """The starred output names, read once and written atomically on each change."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.path = self.root / STARS_FILE
        self._lock = threading.Lock()
        self._names = self._read()

    def __contains__(self, name: str) -> bool:
        return name in self._names

    def names(self) -> frozenset[str]:
        return frozenset(self._names)

    def set(self, name: str, starred: bool) -> None:
        with self._lock:
            names = (self._names | {name}) if starred else (self._names - {name})
            if names == self._names:
                return
            # Names whose file is gone for good (deleted from the trash by hand) drop out here.
            names = {n for n in names if any(os.path.lexists(self.root / folder / n)
                                             for folder in (GALLERY, TRASH_FOLDER))}
            data = json.dumps({"starred": sorted(names)}, indent=1).encode()
            write_atomic(self.path, data, root=self.root)
            self._names = frozenset(names)

    def _read(self) -> frozenset[str]:
        try:  # O_NOFOLLOW: a link planted at outputs/stars.json is not read through
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            with os.fdopen(fd, "rb") as f:
                saved = json.loads(f.read(1_000_000))
        except (OSError, ValueError):  # none yet, or unreadable: no stars rather than no studio
            return frozenset()
        names = saved.get("starred") if isinstance(saved, dict) else None
        return frozenset(n for n in names if isinstance(n, str) and NAME_PATTERN.fullmatch(n)) \
            if isinstance(names, list) else frozenset()


class Gallery:
    def __init__(self, store: OutputStore):
        self.store = store
        self.root = store.root
        self.stars = StarIndex(store.root)

    def query(self, query: OutputQuery) -> tuple[list[dict], int]:
        """(the page of items asked for, how many match the filter in all)."""
        folder = TRASH_FOLDER if query.trash else GALLERY
        starred = self.stars.names()
        items = [self._shown(item, starred, query.trash) for item in self.store.list(folder)]
        matching = [item for item in items if query.matches(item)]
        end = None if query.limit is None else query.offset + query.limit
        return matching[query.offset:end], len(matching)

    def trash(self, name: str) -> dict:
        """Move a gallery output, and its intermediates folder, to outputs/.trash/."""
        self._check_name(name)
        self._move_with_intermediates(name, GALLERY, TRASH_FOLDER)
        return {"name": name, "trashed": True}

    def restore(self, name: str) -> dict:
        """Move a trashed output (and its intermediates) back into the gallery."""
        self._check_name(name)
        self._move_with_intermediates(name, TRASH_FOLDER, GALLERY)
        return self.item(name)

    def star(self, name: str, starred: bool) -> dict:
        self._check_name(name)
        try:
            self.store.item(name)
        except KeyError:
            raise NotFound(f"No output named {name!r} in the gallery (a trashed one must be restored "
                           "before it can be starred).") from None
        self.stars.set(name, starred)
        return {"name": name, "starred": starred}

    def keep(self, live_name: str) -> dict:
        """Move a Live result into the gallery under the next gallery name."""
        self._check_name(live_name)
        try:
            saved = self.store.keep(live_name)
        except KeyError as exc:
            raise NotFound(exc.args[0]) from None
        return self.item(saved.name)

    def item(self, name: str, folder: str = GALLERY) -> dict:
        return self._shown(self.store.item(name, folder), self.stars.names(), folder == TRASH_FOLDER)

    @staticmethod
    def _shown(item: dict, starred: frozenset[str], trashed: bool) -> dict:
        return {**item, "starred": item["name"] in starred, "trashed": trashed}

    @staticmethod
    def _check_name(name: str) -> None:
        # Only names the store makes: no "..", no slashes, no absolute paths, nothing else.
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            raise NotFound(f"{name[:80]!r} is not an output name (outputs are named like 000012.1234.png).")

    def _move_with_intermediates(self, name: str, source: str, target: str) -> None:
        """Both or neither: when the intermediates folder cannot follow, the PNG goes back."""
        where = {GALLERY: "the gallery", TRASH_FOLDER: "the trash"}
        png_from, png_to = self.root / source / name, self.root / target / name
        try:
            move_within(png_from, png_to, root=self.root)
        except FileNotFoundError:
            raise NotFound(f"No output named {name!r} in {where[source]}.") from None
        except FileExistsError:
            raise Conflict(f"{where[target].capitalize()} has an output named {name!r} already; "
                           "nothing was moved.") from None
        steps_from = self._intermediates(source, name)
        if not os.path.lexists(steps_from):
            return
        try:
            move_within(steps_from, self._intermediates(target, name), root=self.root)
        except (OSError, StorageError) as exc:
            move_within(png_to, png_from, root=self.root)
            if isinstance(exc, FileExistsError):
                raise Conflict(f"{where[target].capitalize()} has intermediates for {name!r} already; "
                               "nothing was moved.") from None
            raise

    def _intermediates(self, folder: str, name: str) -> Path:
        # outputs/intermediates/<stem>/ for a gallery output, outputs/.trash/intermediates/<stem>/ in the trash
        return intermediates_dir(self.root / folder, name)
