"""Reading a single-file checkpoint (`.safetensors`, or `.ckpt` as tensors only) without trusting it.

A `.safetensors` file is opened lazily: its key names, shapes and header metadata are read
without loading any weights, so the family can be told (and the page can plan steps) before the
slow part. A `.ckpt` is a pickle, and a pickle can run any code when it is loaded (InvokeAI's
CVE-2024-12029 was exactly this), so it is read only with `torch.load(weights_only=True)`: tensors,
numbers, strings and containers. One that needs anything more is refused, and nothing in it runs.
"""
from __future__ import annotations

import pickle
from functools import cached_property
from pathlib import Path

import torch

SAFETENSORS_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth")
CHECKPOINT_SUFFIXES = SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES


class CheckpointError(ValueError):
    """A file that is not a checkpoint we can read; the message says why and what to do."""


class CheckpointFile:
    """The tensors of one checkpoint, by their original (LDM/SGM) key names."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.metadata: dict[str, str] = {}  # the safetensors header's __metadata__ (modelspec.*, ...)
        self.global_step: int | None = None  # what a .ckpt's training loop recorded
        suffix = self.path.suffix.lower()
        if suffix in SAFETENSORS_SUFFIXES:
            self._open_safetensors()
        elif suffix in PICKLE_SUFFIXES:
            self._load_pickle()
        else:
            raise CheckpointError(f"{self.path.name} is not a checkpoint file: --model takes a diffusers folder or "
                                  f"a single {', '.join(CHECKPOINT_SUFFIXES)} file.")

    @classmethod
    def from_state_dict(cls, state: dict, name: str = "in-memory.safetensors", metadata: dict | None = None):
        """Tensors already in memory, in the original layout (tests check full-size layouts on
        the `meta` device this way, without writing gigabytes)."""
        checkpoint = cls.__new__(cls)
        checkpoint.path, checkpoint.metadata, checkpoint.global_step = Path(name), dict(metadata or {}), None
        checkpoint._tensors, checkpoint._keys, checkpoint._handle = dict(state), list(state), None
        return checkpoint

    # -- reading ---------------------------------------------------------------------------------
    def _open_safetensors(self) -> None:
        from safetensors import SafetensorError, safe_open

        try:
            self._handle = safe_open(str(self.path), framework="pt", device="cpu")
            self.metadata = dict(self._handle.metadata() or {})
            self._keys = list(self._handle.keys())
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{self.path.name} is not a readable .safetensors file ({exc}).") from None
        self._tensors: dict[str, torch.Tensor] | None = None

    def _load_pickle(self) -> None:
        try:
            with torch.serialization.safe_globals(_DATA_ONLY_GLOBALS):
                data = _torch_load(self.path)
        except pickle.UnpicklingError as exc:
            found = _unsafe_global(str(exc))
            raise CheckpointError(
                f"{self.path.name} was refused: loading it would need more than tensors{found}, and a pickle "
                "that builds other objects can run code on this machine. Nothing in it was run. Convert it "
                "once to .safetensors on a machine you trust (or download the .safetensors version) and "
                "point --model at that.") from None
        except Exception as exc:  # a damaged pickle fails in many ways inside the (safe) unpickler
            raise CheckpointError(f"{self.path.name} is not a readable checkpoint ({type(exc).__name__}: {exc}).") from None
        if not isinstance(data, dict):
            raise CheckpointError(f"{self.path.name} holds a {type(data).__name__}, not a dictionary of tensors.")
        step = data.get("global_step")
        self.global_step = step if isinstance(step, int) else None
        # Training checkpoints keep the weights under "state_dict", sometimes nested.
        while isinstance(data.get("state_dict"), dict):
            data = data["state_dict"]
        self._tensors = {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
        self._keys = list(self._tensors)
        self._handle = None

    # -- the view families and conversion use ----------------------------------------------------
    def keys(self) -> list[str]:
        return self._keys

    def __contains__(self, key: str) -> bool:
        return key in self._key_set

    @cached_property
    def _key_set(self) -> set[str]:
        return set(self._keys)

    def shape(self, key: str) -> tuple[int, ...]:
        if self._handle is not None:
            return tuple(self._handle.get_slice(key).get_shape())
        return tuple(self._tensors[key].shape)

    def tensor(self, key: str) -> torch.Tensor:
        if self._handle is not None:
            return self._handle.get_tensor(key)
        return self._tensors[key]

    def state_dict(self, prefixes: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
        """Every tensor (or those under `prefixes`), loaded."""
        keys = [k for k in self._keys if not prefixes or k.startswith(prefixes)]
        return {k: self.tensor(k) for k in keys}

    def count(self, prefix: str) -> int:
        return sum(1 for k in self._keys if k.startswith(prefix))


# Plain data some training checkpoints hold beside the weights (numpy scalars in callbacks'
# state): allowing these builds numbers, never callables.
def _data_only_globals() -> list:
    import codecs

    import numpy as np

    allowed = [codecs.encode, np.dtype]
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            allowed.append(__import__(module, fromlist=["scalar"]).scalar)
            break
        except (ImportError, AttributeError):
            continue
    allowed += [type(np.dtype(name)) for name in ("float64", "float32", "int64", "int32")]
    return allowed


_DATA_ONLY_GLOBALS = _data_only_globals()


def _torch_load(path: Path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc):
            raise
        return torch.load(path, map_location="cpu", weights_only=True)  # the legacy (non-zip) format


def _unsafe_global(message: str) -> str:
    """The global the pickle asked for, from torch's message, to name in ours."""
    for marker in ("Unsupported global: GLOBAL ", "GLOBAL "):
        if marker in message:
            name = message.split(marker, 1)[1].split()[0].rstrip(".,")
            return f" (it asks for {name})"
    return ""
