"""The demo model's CLIP tokenizer: a word-level vocabulary built offline.

A BPE model is trained (with the `tokenizers` library) on the caption vocabulary until every
word is one `word</w>` token; its vocab and merges then feed transformers' `CLIPTokenizer`, so
the shipped folder loads with the normal `CLIPTokenizer.from_pretrained`. Words outside the
vocabulary still tokenize: they fall back to letter pieces (every letter and digit has a
token), and characters nothing covers become `<|endoftext|>` (CLIP's unknown token).
"""
from __future__ import annotations

import string

from transformers import CLIPTokenizer

from .scenes import vocabulary

MAX_LENGTH = 32  # captions are at most ~20 words; shorter context = cheaper cross-attention
SPECIAL = ["<|startoftext|>", "<|endoftext|>"]


def build_vocab_and_merges(words: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(end_of_word_suffix="</w>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    alphabet = list(string.ascii_lowercase + string.digits + string.punctuation)
    trainer = trainers.BpeTrainer(
        vocab_size=100_000, min_frequency=1, special_tokens=SPECIAL, end_of_word_suffix="</w>",
        initial_alphabet=alphabet, show_progress=False,
    )
    # Every letter also as a word-final piece, so any unknown word can end.
    corpus = words + alphabet
    tok.train_from_iterator(corpus, trainer=trainer)
    model = tok.model
    import json

    state = json.loads(tok.to_str())["model"]
    # The trainer numbers equally frequent pieces in hash order, which changes from process to
    # process; number them in a fixed order so a retrained model's ids are the same.
    rest = sorted((t for t in state["vocab"] if t not in SPECIAL), key=lambda t: (len(t), t))
    vocab = {t: i for i, t in enumerate(SPECIAL + rest)}
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in state["merges"]]
    del model
    return vocab, merges


def build_tokenizer() -> CLIPTokenizer:
    vocab, merges = build_vocab_and_merges(vocabulary())
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=MAX_LENGTH,
                              bos_token=SPECIAL[0], eos_token=SPECIAL[1], unk_token=SPECIAL[1],
                              pad_token=SPECIAL[1])
    for word in vocabulary():  # every caption word must be a single token
        ids = tokenizer(word, add_special_tokens=False).input_ids
        if len(ids) != 1:
            raise RuntimeError(f"tokenizer splits vocabulary word {word!r} into {ids}")
    return tokenizer
