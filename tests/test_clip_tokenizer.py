"""CLIP's tokenizer built offline from open_clip_torch's BPE file: the ids CLIP gives, padding
for SD 1.x ("<|endoftext|>") and SD 2.x / SDXL's second encoder ("!"), truncation, and a clear
error when the file is missing or wrong."""
from __future__ import annotations

import gzip

import pytest
import torch
from server.engine import clip_tokenizer as ct
from server.engine.clip_tokenizer import clip_tokenizer
from server.engine.loading import ModelLoadError

ASTRONAUT = "a photograph of an astronaut riding a horse"
ASTRONAUT_IDS = [49406, 320, 8853, 539, 550, 18376, 6765, 320, 4558, 49407]
BOS, EOS, BANG = 49406, 49407, 0


def word_end_id(char: str) -> int:
    """A printable ASCII character's id with </w>: bytes_to_unicode lists '!'..'~' first, so
    its plain id is ord(char) - ord('!') and the </w> copy sits 256 further on."""
    return 256 + ord(char) - ord("!")


@pytest.fixture(scope="module", params=["<|endoftext|>", "!"])
def tokenizer(request):
    return clip_tokenizer(request.param)


def test_known_prompt_gives_clips_ids(tokenizer):
    assert tokenizer(ASTRONAUT).input_ids == ASTRONAUT_IDS


def test_vocabulary_size_and_special_tokens(tokenizer):
    assert len(tokenizer) == 49408
    assert tokenizer.convert_ids_to_tokens([BOS, EOS]) == ["<|startoftext|>", "<|endoftext|>"]
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id) == (BOS, EOS)
    assert tokenizer.unk_token == "<|endoftext|>"
    assert tokenizer.model_max_length == 77
    assert tokenizer.convert_ids_to_tokens([0, 256]) == ["!", "!</w>"]


def test_padding_to_77_uses_the_chosen_pad_token():
    for pad_token, pad_id in (("<|endoftext|>", EOS), ("!", BANG)):
        tokenizer = clip_tokenizer(pad_token)
        assert tokenizer.pad_token_id == pad_id
        ids = tokenizer(ASTRONAUT, padding="max_length", max_length=77).input_ids
        assert len(ids) == 77
        assert ids[: len(ASTRONAUT_IDS)] == ASTRONAUT_IDS
        assert ids[len(ASTRONAUT_IDS):] == [pad_id] * (77 - len(ASTRONAUT_IDS))
    assert clip_tokenizer().pad_token_id == EOS


def test_truncation_at_77_keeps_eos_last(tokenizer):
    ids = tokenizer(" ".join(["horse"] * 200), truncation=True, max_length=77).input_ids
    assert len(ids) == 77
    assert ids[0] == BOS and ids[-1] == EOS
    assert ids[1:-1] == [4558] * 75


def test_mixed_case_and_punctuation_tokenize_as_clip_does(tokenizer):
    text = "A Photograph, of an ASTRONAUT!"
    ids = tokenizer(text).input_ids
    assert ids == tokenizer(text.lower()).input_ids
    assert ids == [BOS, 320, 8853, word_end_id(","), 539, 550, 18376, word_end_id("!"), EOS]


def test_exclamation_marks_stay_text_with_the_bang_pad():
    """open_clip (what SD 2.x / SDXL were trained with) gives these ids for "! !! !!!"; a
    tokenizer with "!" registered as a special pad token would give 0s (diffusers #4153)."""
    assert clip_tokenizer("!")("! !! !!!").input_ids == [BOS, 256, 748, 995, EOS]
    assert clip_tokenizer()("! !! !!!").input_ids == [BOS, 256, 748, 995, EOS]


def test_built_twice_gives_fresh_tokenizers_with_the_same_ids():
    first, second = clip_tokenizer(), clip_tokenizer()
    assert first is not second
    prompt = "Café au lait, 1920s photo — 50mm f/1.8, ultra-detailed!!"
    assert first(prompt).input_ids == second(prompt).input_ids
    assert clip_tokenizer("!")(prompt).input_ids == first(prompt).input_ids


def test_diffusers_style_call_gives_one_row_of_77(tokenizer):
    batch = tokenizer(ASTRONAUT, padding="max_length", max_length=tokenizer.model_max_length,
                      truncation=True, return_tensors="pt")
    assert batch.input_ids.shape == (1, 77)
    assert batch.input_ids.dtype == torch.long


def test_a_stable_diffusion_pipeline_encodes_prompts_with_it():
    from diffusers import StableDiffusionPipeline
    from tests.tiny_model import build_tiny_components
    from transformers import CLIPTextConfig, CLIPTextModel

    components = build_tiny_components()
    components["tokenizer"] = clip_tokenizer()
    components["text_encoder"] = CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
        max_position_embeddings=77, bos_token_id=BOS, eos_token_id=EOS, pad_token_id=EOS)).eval()
    pipe = StableDiffusionPipeline(**components, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    embeds, negative = pipe.encode_prompt(ASTRONAUT, "cpu", 1, True, negative_prompt="blurry")
    assert embeds.shape == negative.shape == (1, 77, 32)


def test_unknown_pad_token_is_refused():
    with pytest.raises(ValueError, match="not in CLIP's vocabulary"):
        clip_tokenizer("<pad>")


def test_missing_package_names_the_setup_script(monkeypatch):
    monkeypatch.setattr(ct, "DISTRIBUTION", "no_such_distribution_for_clip_test")
    with pytest.raises(ModelLoadError, match="scripts/setup.sh"):
        clip_tokenizer()


def test_missing_file_names_the_setup_script(monkeypatch):
    monkeypatch.setattr(ct, "VOCAB_FILE", "open_clip/no_such_vocab.txt.gz")
    with pytest.raises(ModelLoadError, match="scripts/setup.sh"):
        clip_tokenizer()


def test_a_file_that_is_not_clips_vocabulary_fails_loudly(tmp_path):
    short = tmp_path / "short.txt.gz"
    short.write_bytes(gzip.compress(b"#version: 0.2\ni n\nt h\n"))
    with pytest.raises(ModelLoadError, match="not CLIP's BPE vocabulary"):
        ct.load_vocab(short)
    garbage = tmp_path / "garbage.txt.gz"
    garbage.write_bytes(b"not gzip at all")
    with pytest.raises(ModelLoadError, match="Cannot read"):
        ct.load_vocab(garbage)
