"""A job's LoRAs, from names to files: the studio side of `generate`'s `loras` and `--lora`.

The engine (engine/loras.py) applies LoRA files and knows no folders. A request names LoRAs as
GET /api/models lists them (paths relative to the models folder's loras/, checked by
model_library: never a path from a client). `--lora NAME-or-PATH[:WEIGHT]` may also give a file
outside the folder: the person starting the studio may, a page may not. Such a file is registered
here under its file name (listed with `source: "--lora"`), and requests may then name it.

Resolution reads headers only (cached by model_library), so the socket side can refuse an unknown
name in the ack (off the loop); the worker resolves again before applying, so a file removed in
between ends that job with a message naming it.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from ..engine.loras import LoraError, LoraFile, read_lora
from ..storage.model_library import LORA_FOLDER, ModelLibrary, UnknownModel
from ..storage.model_hashes import HASH_CHUNK, file_key


class LoraFlagError(ValueError):
    """A `--lora` that cannot be used; the message names it (a usage error for the CLI)."""


class JobLoras:
    """The LoRAs jobs can name: the models folder's loras/, plus files `--lora` registered."""

    def __init__(self, library: ModelLibrary):
        self.library = library
        self.extra: dict[str, Path] = {}  # name -> path of a --lora file outside loras/
        self.server_defaults: tuple[tuple[str, float], ...] = ()  # serve's --lora: for jobs giving no `loras`
        self._a1111: dict[tuple, str] = {}

    def register(self, specs) -> tuple[tuple[str, float], ...]:
        """`--lora` values [(NAME-or-PATH, weight)] -> (name, weight) pairs that requests can use.
        A name listed in loras/ first, else a file path (registered under its file name). LoraError
        when it is neither, or when the file is not a LoRA this studio can use."""
        try:
            return self._register(specs)
        except ValueError as exc:
            raise LoraFlagError(str(exc)) from None

    def _register(self, specs) -> tuple[tuple[str, float], ...]:
        from ..engine.request import parse_loras

        pairs = []
        parse_loras(specs)  # the weights' range, and at most MAX_LORAS, as for a request
        for text, weight in specs:
            try:
                self.library.lora(text)
                pairs.append((text, float(weight)))
                continue
            except UnknownModel as exc:
                if any(e.name == text for e in self.library.loras()):  # listed, but refused: say why
                    raise LoraError(str(exc)) from None
            path = Path(text).expanduser()
            if not path.is_file():
                raise LoraError(f"{text} is neither a LoRA in {self.library.root.name}/{LORA_FOLDER}/ (--models-dir) "
                                "nor a file.")
            name = self.library.lora_name_of(path)
            if name is not None:  # a path into loras/: its listed name
                try:
                    self.library.lora(name)
                except UnknownModel as exc:
                    raise LoraError(str(exc)) from None
            else:
                name = path.name
                taken = {e.name for e in self.library.loras()} | {n for n, p in self.extra.items()
                                                                  if p != path.resolve()}
                if name in taken:
                    name = f"{path.name} (--lora)"
                read_lora(path, name)  # refuse a file that is not a usable LoRA now, naming it
                self.extra[name] = path.resolve()
            pairs.append((name, float(weight)))
        return tuple(pairs)

    def resolve(self, pairs) -> list[tuple[LoraFile, float]]:
        """(name, weight) pairs -> [(LoraFile, weight)] for engine.loras.apply_loras. UnknownModel or
        LoraError (both ValueErrors, messages naming the LoRA) when a name cannot be used."""
        found = []
        for name, weight in pairs:
            if name in self.extra:
                found.append((read_lora(self.extra[name], name), weight))
                continue
            try:
                entry = self.library.lora(name)  # checks the name stays inside loras/
            except UnknownModel as exc:
                raise UnknownModel(f"LoRA {exc}" if str(exc).startswith(name) else str(exc)) from None
            found.append((entry.lora if isinstance(entry.lora, LoraFile) else read_lora(entry.path, name), weight))
        return found

    def listing(self) -> list[dict]:
        """The --lora files outside loras/, as GET /api/models lists LoRAs (with `source: "--lora"`)."""
        from ..engine.loras import LABELS

        shown = []
        for name, path in self.extra.items():
            try:
                lora = read_lora(path, name)
            except (LoraError, OSError) as exc:
                shown.append({"name": name, "family": None, "size": 0, "refused": str(exc), "source": "--lora"})
                continue
            shown.append({"name": name, "family": LABELS.get(lora.family), "size": lora.size,
                          "defaults": dict(lora.defaults), "source": "--lora"})
        return shown

    def find_recorded(self, records) -> list[tuple[dict, str | None]]:
        """Each LoRA an output recorded ({name, weight, sha256}) with the name it has in the models
        folder now, or None when it is not there. By SHA-256 first (so a renamed file is found; each
        listed LoRA is hashed once, the one of the recorded name first, and cached in outputs/.cache/
        per file version), then by name when the output records no SHA-256."""
        listed = [e for e in self.library.loras() if not e.refused]
        found = []
        for record in records or ():
            name, sha = record.get("name"), record.get("sha256")
            same_name = [e for e in listed if e.name == name]
            if sha:
                match = next((e for e in same_name + [e for e in listed if e.name != name]
                              if self.library.hashes.compute(e.path) == sha), None)
            else:
                match = same_name[0] if same_name else None
            found.append((record, match.name if match else None))
        return found

    def a1111_hash(self, lora: LoraFile) -> str:
        """A1111's hash of a LoRA: for a .safetensors file, the SHA-256 of the bytes after the header
        (Kohya's "addnet" hash; A1111's extensions-builtin/Lora/network.py reads it with
        use_addnet_hash=True, and Civitai lists it as AutoV3). Its first 12 hex are the `Lora hashes`."""
        key = file_key(Path(lora.path))
        if key not in self._a1111:
            digest = hashlib.sha256()
            with open(lora.path, "rb") as fh:
                length = int.from_bytes(fh.read(8), "little")
                fh.seek(8 + length)
                while chunk := fh.read(HASH_CHUNK):
                    digest.update(chunk)
            self._a1111[key] = digest.hexdigest()
        return self._a1111[key]


def recommended_settings(files) -> dict:
    """The LoRAs' recommended settings (`<stem>.studio_defaults.json`), a later LoRA's over an earlier
    one's. They go over the model's: a few-step LoRA makes any model a few-step one."""
    merged: dict = {}
    for lora, _weight in files:
        merged.update(lora.defaults or {})
    return merged
