"""CLIP's tokenizer, built offline from the BPE vocabulary that open_clip_torch ships.

A Stable Diffusion checkpoint in one .safetensors file carries the text encoder's weights but
no tokenizer, and this studio never downloads from a model hub. Every SD text encoder (OpenAI's
CLIP ViT-L/14 for SD 1.x and SDXL's first encoder, OpenCLIP ViT-H/bigG for SD 2.x and SDXL's
second) uses the same 49,408-token byte-level BPE, published as `bpe_simple_vocab_16e6.txt.gz`.
The PyPI package open_clip_torch ships that file; scripts/setup.sh installs it with --no-deps
(its torchvision dependency can replace the CPU torch build), so this module reads the file by
its path in the installed distribution and never imports open_clip.

The vocabulary is laid out as open_clip (and OpenAI's CLIP) build it: the 256 byte-level
characters in GPT-2's `bytes_to_unicode` order, the same 256 with `</w>`, one entry per merge,
then `<|startoftext|>` (49406) and `<|endoftext|>` (49407).
"""

from __future__ import annotations

import functools
import gzip
import importlib.metadata
from pathlib import Path

from transformers import CLIPTokenizer

from .loading import ModelLoadError

DISTRIBUTION = "open_clip_torch"
VOCAB_FILE = "open_clip/bpe_simple_vocab_16e6.txt.gz"
VOCAB_SIZE = 49408
MERGE_COUNT = 49152 - 256 - 2  # open_clip: merges[1 : 49152 - 256 - 2 + 1], after the header line
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
MAX_LENGTH = 77
_SETUP_HINT = "Run scripts/setup.sh, which installs open_clip_torch (without its dependencies) for this file."


def _byte_characters() -> list[str]:
    """GPT-2's bytes_to_unicode values, in that function's order: printable bytes map to
    themselves, the rest to code points from 256 up, so every byte is a visible character."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    points = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            points.append(256 + extra)
            extra += 1
    return [chr(p) for p in points]


def vocab_path() -> Path:
    """Where the installed open_clip_torch keeps its BPE file; ModelLoadError when it is absent."""
    try:
        path = Path(importlib.metadata.distribution(DISTRIBUTION).locate_file(VOCAB_FILE))
    except importlib.metadata.PackageNotFoundError:
        raise ModelLoadError(f"CLIP's tokenizer needs {VOCAB_FILE} from {DISTRIBUTION}, which is not installed. {_SETUP_HINT}") from None
    if not path.is_file():
        raise ModelLoadError(f"CLIP's tokenizer vocabulary is missing: {path} does not exist. {_SETUP_HINT}")
    return path


@functools.lru_cache(maxsize=4)
def load_vocab(path: Path) -> tuple[dict[str, int], tuple[tuple[str, str], ...]]:
    """CLIP's vocabulary (token -> id) and merges from the gzipped BPE file, checked for size."""
    try:
        lines = gzip.decompress(path.read_bytes()).decode("utf-8").split("\n")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"Cannot read CLIP's tokenizer vocabulary {path}: {exc}. {_SETUP_HINT}") from exc
    merges = tuple(tuple(line.split()) for line in lines[1 : MERGE_COUNT + 1])
    characters = _byte_characters()
    tokens = [*characters, *(c + "</w>" for c in characters), *("".join(m) for m in merges), BOS, EOS]
    vocab = {token: i for i, token in enumerate(tokens)}
    if (
        len(merges) != MERGE_COUNT
        or any(len(m) != 2 for m in merges)
        or len(vocab) != VOCAB_SIZE
        or vocab.get(BOS) != VOCAB_SIZE - 2
    ):
        raise ModelLoadError(
            f"{path} is not CLIP's BPE vocabulary: it gave {len(merges)} merges and {len(vocab)} tokens, "
            f"expected {MERGE_COUNT} and {VOCAB_SIZE}. Reinstall it with scripts/setup.sh."
        )
    return vocab, merges


def clip_tokenizer(pad_token: str = EOS) -> CLIPTokenizer:
    """A fresh CLIPTokenizer (77 tokens) like openai/clip-vit-large-patch14's, padding with
    `pad_token`: "<|endoftext|>" for SD 1.x and SDXL's first encoder, "!" (id 0) for SD 2.x and
    SDXL's second. The vocabulary is read once per process.

    A pad token other than "<|endoftext|>" is set by id after construction rather than passed to
    the constructor: passed in, "!" would become an added special token, and every "!" in a prompt
    would then be split off as id 0 instead of CLIP's "!</w>" (256), as open_clip, which SD 2.x and
    SDXL were trained with, tokenizes it (diffusers issue #4153)."""
    vocab, merges = load_vocab(vocab_path())
    if pad_token not in vocab:
        raise ValueError(f"pad_token {pad_token!r} is not in CLIP's vocabulary")
    tokenizer = CLIPTokenizer(
        vocab=dict(vocab), merges=list(merges), unk_token=EOS, bos_token=BOS, eos_token=EOS,
        pad_token=EOS, model_max_length=MAX_LENGTH,
    )
    if pad_token != EOS:
        tokenizer.pad_token_id = vocab[pad_token]
    return tokenizer
