"""The shipped demo model (server/demo_model/weights): loads offline through the studio's own
loader, follows prompts, keeps a sketch's layout at low strength, and can be retrained."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from training.demo_model.judge import adherence, judge, layout_similarity
from training.demo_model.scenes import render, scene_from_prompt
from server.engine import GenerationRequest, generate, load_model
from tests.helpers import as_a_person_gets_it

PROMPTS = ["tree on a hill with a river", "fire", "a house and a tree at night", "the sun and a cloud",
           "a red house", "a lake at sunset"]


def test_loads_offline_and_generates_at_native_size(demo_model):
    assert demo_model.is_demo and demo_model.native_size == 128
    out = generate(demo_model, GenerationRequest(prompt="tree on a hill with a river", steps=10, seed=1), None)
    assert out.image.size == (128, 128)
    assert np.asarray(out.image).std() > 10  # a picture, not a flat field


def test_follows_a_small_prompt_set(demo_model):
    # Three seeds, not one: a single seed's 12 checks swung widely on earlier weights (58% to 75%).
    results = []
    for prompt in PROMPTS:
        for seed in (1, 2, 3):
            out = generate(demo_model, as_a_person_gets_it(demo_model, prompt=prompt, steps=15, seed=seed), None)
            results.append(judge(out.image, prompt))
    assert adherence(results) >= 0.7, results


def test_layout_similarity_falls_with_strength(demo_model):
    sketch = render(scene_from_prompt("the sun over a hill with a river"), np.random.default_rng(102), 128)
    sims = []
    for strength in (0.1, 0.4, 0.7, 1.0):
        req = as_a_person_gets_it(demo_model, prompt="fire at night", steps=15, strength=strength, seed=9)
        sims.append(layout_similarity(sketch, generate(demo_model, req, sketch).image))
    assert sims[0] > 0.8, sims
    for earlier, later in zip(sims, sims[1:]):
        assert later <= earlier + 0.05, sims


def test_tokenizer_tolerates_unknown_words(demo_model):
    tokenizer = demo_model.pipe.tokenizer
    for word in ("tree", "hill", "river", "fire", "photograph", "sunset", "purple"):
        assert len(tokenizer(word, add_special_tokens=False).input_ids) == 1, word
    ids = tokenizer("a zebra 🚀 ÜNÏCODE, 42!! " * 10, padding="max_length", truncation=True,
                    max_length=tokenizer.model_max_length).input_ids
    assert len(ids) == tokenizer.model_max_length
    out = generate(demo_model, GenerationRequest(prompt="a zebra riding 🚀 in Zürich", steps=4, seed=1), None)
    assert out.image.size == (128, 128)


def test_judge_is_exact_on_the_renderer_itself():
    rng = np.random.default_rng(0)
    results = [judge(render(scene_from_prompt(p), rng), p) for p in PROMPTS for _ in range(3)]
    assert adherence(results) == 1.0


def test_training_smoke_run_loads(tmp_path):
    from training.demo_model.train import main

    out = tmp_path / "model"
    main(["--out", str(out), "--smoke"])
    model = load_model(out, "cpu")
    result = generate(model, GenerationRequest(prompt="fire", steps=2, seed=0), None)
    assert result.image.size == (model.native_size, model.native_size)


def test_a_resumed_run_can_train_the_vae_further(tmp_path):
    """--continue-vae: the folder's VAE takes more steps, the latents are re-encoded and
    rescaled, the UNet goes on from the folder's, and the result still loads and generates."""
    import json

    from safetensors.torch import load_file
    from training.demo_model.train import main

    first, second = tmp_path / "first", tmp_path / "second"
    main(["--out", str(first), "--smoke"])
    main(["--resume", str(first), "--continue-vae", "--out", str(second), "--smoke"])
    meta = json.loads((second / "training.json").read_text())
    assert meta["vae_steps"] == meta["resumed_from"]["vae_steps"] + 2  # the smoke run's 2 VAE steps
    assert meta["latent_std"] != meta["resumed_from"]["latent_std"]
    before, after = (load_file(folder / "vae" / "diffusion_pytorch_model.safetensors") for folder in (first, second))
    assert any(not torch.equal(before[k], after[k]) for k in before)
    model = load_model(second, "cpu")
    result = generate(model, GenerationRequest(prompt="fire", steps=2, seed=0), None)
    assert result.image.size == (model.native_size, model.native_size)


def test_the_unet_learning_rate_warms_up_then_decays_to_its_floor():
    """--unet-lr-floor 0.1 ends a run at a tenth of the peak rate; the default (1.0) keeps the
    constant rate earlier runs trained with, so their recorded commands still reproduce."""
    from training.demo_model.train import UNET_PEAK_LR, warm_cosine_rate

    def unet_rate(step, floor):
        return warm_cosine_rate(step, 6000, peak=UNET_PEAK_LR, warmup=100, floor=floor)

    assert unet_rate(1, 0.1) < UNET_PEAK_LR / 50  # warming up
    decayed = [unet_rate(s, 0.1) for s in range(100, 6001, 100)]
    assert decayed == sorted(decayed, reverse=True)
    assert decayed[0] == pytest.approx(UNET_PEAK_LR, rel=1e-3)
    assert decayed[-1] == pytest.approx(UNET_PEAK_LR / 10)
    assert {unet_rate(s, 1.0) for s in (100, 3000, 6000)} == {UNET_PEAK_LR}


def test_continue_vae_refuses_to_be_ignored_or_to_train_on_stale_latents(tmp_path, capsys):
    from training.demo_model.train import main

    with pytest.raises(SystemExit):
        main(["--continue-vae", "--out", str(tmp_path / "out"), "--smoke"])
    assert "--resume" in capsys.readouterr().err
    stale = tmp_path / "latents.pt"
    stale.write_bytes(b"old")
    with pytest.raises(SystemExit):
        main(["--resume", str(tmp_path), "--continue-vae", "--latents-cache", str(stale), "--out", str(tmp_path / "o")])
    assert "new --latents-cache" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_the_tokenizer_numbers_its_pieces_the_same_in_every_process():
    """A retrained or resumed model must see the same ids for the same words (the BPE trainer
    itself orders tied pieces by a per-process hash)."""
    import json
    import os
    import subprocess
    import sys

    code = ("import json; from training.demo_model.tokenizer import build_vocab_and_merges; "
            "from training.demo_model.scenes import vocabulary; "
            "print(json.dumps(build_vocab_and_merges(vocabulary())[0], sort_keys=True))")
    repo_root = Path(__file__).resolve().parent.parent  # `training` is a source folder, not an installed package
    vocabs = [json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                        cwd=repo_root, env={**os.environ, "PYTHONHASHSEED": seed}).stdout)
              for seed in ("1", "2", "3")]
    assert vocabs[0] == vocabs[1] == vocabs[2]
    assert vocabs[0]["a</w>"] != vocabs[0]["tree</w>"]
