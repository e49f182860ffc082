"""LoRAs: what a file is for, told from its header, and a set of them applied to the loaded model.

Why: LoRAs come in two key formats (Kohya/A1111's `lora_unet_…`/`lora_te_…` with `.lora_down`/`.lora_up`/
`.alpha`; diffusers/peft's `unet.….lora_A`/`text_encoder.…`), each for one model family. diffusers'
`load_lora_weights` (peft) loads both, but a LoRA for another family fails inside it with an error that does
not name the file, or half-loads (SD 1.x and SDXL share a CLIP-L text encoder). So `read_lora` reads only the
safetensors header (never a tensor, never a pickle) and tells the family by structure first (a second text
encoder, SDXL's block layout, SD 1.x's convolution proj_in), then by width (cross-attention 768 SD 1.x, 1024
SD 2.x, 2048 SDXL); scaled-down models may end "unknown", which may still try to load. `apply_loras` loads
each file once as an adapter named by its SHA-256, weights them with `set_adapters` (diffusers' own calls, so
diffusers' pixels), keeps the set between jobs, and unloads everything for an empty set, so a job without
LoRAs gets the base model's exact pixels. A refused set leaves the model as it was. All torch work runs on
the caller's thread (the worker).
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from .checkpoint_file import PICKLE_SUFFIXES
from .conditioning import is_sdxl
from .families import CONFIG_DIR

FAMILIES = ("sd1", "sd2", "sdxl")
LABELS = {key: json.loads((CONFIG_DIR / f"{key}.json").read_text())["label"] for key in FAMILIES}
PARTS = ("unet", "text_encoder", "text_encoder_2")  # what a LoRA may change, as the pipelines name them
_PREFIXES = {"lora_unet_": "unet", "lora_te1_": "text_encoder", "lora_te2_": "text_encoder_2",  # Kohya's,
             "lora_te_": "text_encoder", "unet.": "unet", "text_encoder_2.": "text_encoder_2",  # then diffusers'
             "text_encoder.": "text_encoder"}
_DOWN = ("lora_down.weight", "lora.down.weight", "lora_A.weight", "lora_linear_layer.down.weight")
_HEADER_LIMIT = 100 * 1024 * 1024  # safetensors' own limit
# Block layouts, on module names with "_" for "." (diffusers' and SGM's names; attention layers only).
_ATTN = r"_\d+_(transformer_blocks|proj_in|proj_out|norm)"
_SDXL_LAYOUT = re.compile(rf"transformer_blocks_[1-9]|up_blocks_0_attentions{_ATTN}|output_blocks_[0-2]{_ATTN}")
_SD12_LAYOUT = re.compile(rf"down_blocks_0_attentions{_ATTN}|up_blocks_3_attentions{_ATTN}"
                          rf"|input_blocks_[12]{_ATTN}|output_blocks_([6-9]|1[01]){_ATTN}")
_CROSS_WIDTH = {768: {"sd1"}, 1024: {"sd2"}, 2048: {"sdxl"}}
_TEXT_WIDTH = {768: {"sd1", "sdxl"}, 1024: {"sd2"}}
# Noise for a user (our count of matched layers says what matters): transformers reports a text encoder's
# base weights as "MISSING" when an adapter loads; diffusers lists the other adapters' keys as missing, and
# warns when a LoRA has no text encoder part; peft warns that a model holds several adapters.
_NOISE = ("LOAD REPORT", "led to missing keys in the model", "No LoRA keys associated to")
for _name in ("transformers.integrations.peft", "diffusers.utils.peft_utils", "diffusers.loaders.lora_base",
              "diffusers.loaders.peft"):
    logging.getLogger(_name).addFilter(lambda record: not any(t in record.getMessage() for t in _NOISE))
warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute", category=UserWarning)


class LoraError(ValueError):
    """A LoRA that cannot be used here; the message names the file and says why."""


@dataclass(frozen=True)
class LoraFile:
    name: str  # what people see (the caller may pass the path inside the models folder)
    path: Path
    family: str  # "sd1" | "sd2" | "sdxl" | "unknown"
    size: int  # bytes
    format: str  # "kohya" | "diffusers"
    layers: int  # down/up pairs in the file
    parts: tuple[str, ...]  # which of PARTS it changes
    could_be: tuple[str, ...] = FAMILIES  # the families its keys allow; a model outside them refuses it
    why: str = ""  # what told the family
    defaults: dict = field(default_factory=dict, hash=False)  # recommended settings from <name>.studio_defaults.json

    @property
    def sha256(self) -> str:
        return file_sha256(self.path)

    @property
    def adapter_name(self) -> str:  # stable across jobs and runs; a file replaced on disk gets a new one
        return "studio-" + self.sha256[:16]


_HASHES: dict[tuple, str] = {}


def file_sha256(path: Path) -> str:
    """The file's SHA-256, remembered while its size and modification time stay the same."""
    stat = Path(path).stat()
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def read_lora(path: str | Path, name: str | None = None) -> LoraFile:
    """What a LoRA file is, from its header alone; LoraError naming it when it cannot be used."""
    path = Path(path)
    name, suffix = name or path.name, path.suffix.lower()
    if suffix in PICKLE_SUFFIXES or suffix == ".bin":
        raise LoraError(f"{name} was refused: LoRAs are read only from .safetensors files, because loading a "
                        f"{suffix} pickle can run code on this machine. Use the .safetensors version of it.")
    if suffix != ".safetensors":
        raise LoraError(f"{name} is not a LoRA file (LoRAs are .safetensors files).")
    shapes = _read_header(path, name)
    if any(".hada_w" in k or ".lokr_w" in k for k in shapes):
        raise LoraError(f"{name} is a LyCORIS LoHa/LoKr, which diffusers cannot load for Stable Diffusion.")
    layers, formats = [], set()
    for key, shape in shapes.items():
        for prefix, part in _PREFIXES.items():
            if key.startswith(prefix) and key.endswith(_DOWN):
                layers.append((part, key[len(prefix):].replace(".", "_"), shape))
                formats.add("kohya" if prefix.startswith("lora_") else "diffusers")
                break
    if not layers:
        first = f" (the first is {next(iter(shapes))!r})" if shapes else ""
        raise LoraError(f"{name} is not a Stable Diffusion LoRA: none of its {len(shapes)} tensors is a LoRA layer "
                        f"for a UNet or a text encoder{first}.")
    could_be, why = _families(layers)
    return LoraFile(name, path, could_be[0] if len(could_be) == 1 else "unknown", path.stat().st_size,
                    "kohya" if formats == {"kohya"} else "diffusers", len(layers),
                    tuple(p for p in PARTS if any(part == p for part, _, _ in layers)), could_be, why,
                    _read_defaults(path, name))


def _read_header(path: Path, name: str) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes; the tensors' bytes are never read, only their extent checked."""
    unreadable = f"{name} is not a readable .safetensors file"
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            length = int.from_bytes(fh.read(8), "little")
            if size < 8 or length > min(_HEADER_LIMIT, size - 8):
                raise LoraError(f"{unreadable} (its header length is wrong).")
            header = json.loads(fh.read(length))
        header.pop("__metadata__", None)
        shapes = {key: tuple(int(d) for d in entry["shape"]) for key, entry in header.items()}
        end = max((int(entry["data_offsets"][1]) for entry in header.values()), default=0)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LoraError(f"{unreadable} ({exc}).") from None
    except (AttributeError, TypeError, KeyError, ValueError, IndexError):
        raise LoraError(f"{unreadable} (its header does not describe tensors).") from None
    if size < 8 + length + end:
        raise LoraError(f"{name} is truncated: its header describes {8 + length + end} bytes, the file has {size} "
                        "(an interrupted download?).")
    return shapes


def _families(layers) -> tuple[tuple[str, ...], str]:
    """The families a LoRA's layers allow, and why: structure first, then widths."""
    said = []
    if any(part == "text_encoder_2" for part, _, _ in layers):
        said.append(({"sdxl"}, "it changes a second text encoder"))
    unet = [(module, shape) for part, module, shape in layers if part == "unet"]
    names = " ".join(module for module, _ in unet)
    if _SDXL_LAYOUT.search(names):
        said.append(({"sdxl"}, "its UNet layers are laid out as SDXL's"))
    elif _SD12_LAYOUT.search(names):
        said.append(({"sd1", "sd2"}, "its UNet layers are laid out as SD 1.x/2.x's"))
    conv = next((len(shape) == 4 for module, shape in unet if "proj_in" in module), None)
    if conv is not None:
        said.append(({"sd1"} if conv else {"sd2", "sdxl"},
                     f"its proj_in is a {'1x1 convolution' if conv else 'linear layer'}"))
    cross = next((s[1] for m, s in unet if re.search(r"attn2_(processor_)?to_[kv]", m) and s[1] in _CROSS_WIDTH), 0)
    if cross:
        said.append((_CROSS_WIDTH[cross], f"its cross-attention takes {cross}-wide text embeddings"))
    text = next((s[1] for p, m, s in layers if p == "text_encoder" and re.search(r"[qkv]_proj|fc1", m)
                 and s[1] in _TEXT_WIDTH), 0)
    if text:
        said.append((_TEXT_WIDTH[text], f"its text encoder is {text} wide"))
    could_be = set(FAMILIES).intersection(*(families for families, _ in said))
    if not could_be:  # the signs disagree: let loading decide
        return FAMILIES, "its layers point to different families"
    return tuple(f for f in FAMILIES if f in could_be), "; ".join(why for _, why in said)


def _read_defaults(path: Path, name: str) -> dict:
    """`<name>.studio_defaults.json` beside the LoRA (not the folder's one, which would speak for every LoRA)."""
    from .model_defaults import DEFAULTS_FILE, read_checkpoint_defaults

    if not path.with_name(f"{path.stem}.{DEFAULTS_FILE}").is_file():
        return {}
    try:
        settings, facts = read_checkpoint_defaults(path)
    except ValueError as exc:
        raise LoraError(f"{name}: {exc}") from None
    if facts:
        raise LoraError(f"{name}: {', '.join(facts)} in {path.stem}.{DEFAULTS_FILE} describes a model, not a LoRA.")
    return settings


def model_family(model) -> str:
    """"sd1" | "sd2" | "sdxl" for a LoadedModel, from its components."""
    if is_sdxl(model.pipe):
        return "sdxl"
    config = model.pipe.unet.config
    if config.cross_attention_dim == 1024 or (config.cross_attention_dim != 768 and config.use_linear_projection):
        return "sd2"
    return "sd1"


@dataclass
class LoraSet:
    """The LoRAs applied to one model, in order: what the next job runs with."""

    files: list[LoraFile] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    loads: int = 0  # files loaded into this model so far (re-applying a set loads nothing)
    notes: dict[str, str] = field(default_factory=dict)  # adapter -> what to tell the user (a partial match)

    @property
    def names(self) -> list[str]:
        return [f.adapter_name for f in self.files]

    @property
    def warnings(self) -> list[str]:
        return [self.notes[n] for n in self.names if n in self.notes]

    def records(self) -> list[dict]:  # what an output's metadata records
        return [{"name": f.name, "weight": w, "sha256": f.sha256} for f, w in zip(self.files, self.weights)]


def applied_loras(model) -> LoraSet:
    """The model's current set, kept on the LoadedModel so it lives and dies with it."""
    if getattr(model, "_lora_set", None) is None:
        model._lora_set = LoraSet()
    return model._lora_set


def apply_loras(model, loras) -> LoraSet:
    """Make `loras` ([(LoraFile, weight)], in order) the model's set. The same set again does nothing, new
    weights only re-weight, files no longer wanted are dropped, and an empty set unloads everything.
    LoraError names the file when one cannot be used; the model is then left as it was."""
    state, family = applied_loras(model), model_family(model)
    wanted: dict[str, tuple[LoraFile, float]] = {}
    for lora, weight in loras:
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise LoraError(f"{lora.name}: the weight must be a number, got {weight!r}.")
        if family not in lora.could_be:
            said = " or ".join(LABELS[f] for f in lora.could_be)
            raise LoraError(f"{lora.name} is a LoRA for {said} ({lora.why.split('; ')[0]}); "
                            f"the model is {LABELS[family]}.")
        if not lora.path.is_file():
            raise LoraError(f"{lora.name} is no longer at {lora.path}.")
        before = wanted.get(lora.adapter_name, (lora, 0.0))[1]
        wanted[lora.adapter_name] = (lora, before + float(weight))  # the same file twice adds up, as in A1111
    names, weights = list(wanted), [w for _, w in wanted.values()]
    if names == state.names and weights == state.weights:
        state.files = [lora for lora, _ in wanted.values()]  # the same files, perhaps under new names
        return state
    pipe, loaded_now, notes = model.pipe, [], {}
    if not names:
        pipe.unload_lora_weights()  # every peft wrapper goes: the base modules, untouched
        state.files, state.weights, state.notes = [], [], {}
        return state
    try:
        for adapter, (lora, _) in wanted.items():
            if adapter not in state.names:
                loaded_now.append(adapter)
                notes[adapter] = _load(pipe, lora, adapter)
                state.loads += 1
        pipe.set_adapters(names, adapter_weights=weights)
    except Exception as exc:  # undo: drop what this call loaded, put the previous set back (or none at all)
        present = {a for adapters in pipe.get_list_adapters().values() for a in adapters}
        if not state.names:
            pipe.unload_lora_weights()
        else:
            pipe.delete_adapters([a for a in loaded_now if a in present])
            pipe.set_adapters(state.names, adapter_weights=state.weights)
        if isinstance(exc, LoraError):
            raise
        culprit = wanted[loaded_now[-1]][0].name if loaded_now else ", ".join(f.name for f, _ in wanted.values())
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [""]
        detail = next((line for line in lines if line.startswith("size mismatch")), lines[0])  # torch's says which
        raise LoraError(f"{culprit} does not fit this {LABELS[family]} model ({type(exc).__name__}: "
                        f"{detail[:300]}).") from exc
    dropped = [n for n in state.names if n not in wanted]
    if dropped:
        pipe.delete_adapters(dropped)
    state.files, state.weights = [lora for lora, _ in wanted.values()], weights
    state.notes = {n: note for n, note in {**state.notes, **notes}.items() if n in wanted and note}
    return state


def _load(pipe, lora: LoraFile, adapter: str) -> str | None:
    """Load one file as an adapter: a local .safetensors path, never a pickle (use_safetensors) nor the hub
    (local_files_only). LoraError when none of its layers match the model's; a note when some do not."""
    pipe.load_lora_weights(str(lora.path), adapter_name=adapter, use_safetensors=True, local_files_only=True)
    from peft.tuners.tuners_utils import BaseTunerLayer

    modules = [m for part in PARTS if getattr(pipe, part, None) is not None for m in getattr(pipe, part).modules()]
    matched = sum(1 for m in modules if isinstance(m, BaseTunerLayer) and adapter in getattr(m, "lora_A", {}))
    if matched == 0:
        raise LoraError(f"{lora.name}: none of its {lora.layers} layers match this model's (a LoRA for another "
                        "model?).")
    if matched < lora.layers:
        return f"{lora.name}: only {matched} of its {lora.layers} layers match this model's; the rest are ignored."
    return None
