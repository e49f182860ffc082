"""LoRAs per job, end to end: `generate`'s `loras` over Socket.IO, serve's and the CLI's `--lora`,
outputs recording them (JSON and A1111's `parameters`), `--from` reproducing them, and a LoRA's
recommended settings.

A small SD 1.x single-file checkpoint (random weights, tests/checkpoint_families.py) sits in a
temporary models folder; its loras/ holds LoRAs built on random weights by tests/lora_files.py. The
reference for each picture is the engine itself, with the LoRA applied directly (apply_loras)."""
from __future__ import annotations

import hashlib
import json
import re
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from server.engine import GenerationRequest, generate, load_model
from server.engine.loras import apply_loras, read_lora
from tests.tiny_model import build_tiny_xl_components
from server.storage.metadata import dream_command
from tests import checkpoint_families as families
from tests.helpers import collect_events, connect, job_ended, studio_app
from tests.lora_files import random_lora, write_diffusers_lora, write_kohya_lora

SD1 = "sd1.safetensors"
# Every setting given, so no recommended setting changes them.
SETTINGS = {"prompt": "a red barn in a field", "steps": 2, "seed": 7, "width": 64, "height": 64, "sampler": "euler",
            "cfg_scale": 5.0, "preview": "off"}
TERMINAL = ("job_done", "job_cancelled", "job_error")


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    shutil.copy(families.cached_checkpoint("sd1", "small", torch.float32), root / SD1)
    components = families.build_components("sd1", "small")
    write_kohya_lora(random_lora(components, seed=1), root / "loras" / "style.safetensors")
    write_diffusers_lora(random_lora(components, seed=2, parts=("unet",)), root / "loras" / "styles" / "fast.safetensors")
    (root / "loras" / "styles" / "fast.studio_defaults.json").write_text(json.dumps({"steps": 3, "cfg_scale": 1.5}))
    write_kohya_lora(random_lora(build_tiny_xl_components(), seed=3), root / "loras" / "xl-style.safetensors", sgm=True)
    return root


@pytest.fixture(scope="module")
def direct(models_dir, tmp_path_factory):
    """The engine's own pixels for SETTINGS: the base model, and with style.safetensors applied directly."""
    model = load_model(models_dir / SD1, "cpu", cache_dir=tmp_path_factory.mktemp("direct-cache"))
    style = read_lora(models_dir / "loras" / "style.safetensors")

    def run(loras, **changes):
        apply_loras(model, loras)
        return np.asarray(generate(model, GenerationRequest(**{**SETTINGS, **changes})).image)

    out = {"base": run([]), 0.5: run([(style, 0.5)]), 1.0: run([(style, 1.0)]), 0.7: run([(style, 0.7)])}
    apply_loras(model, [])
    return out


@pytest.fixture
def app(tmp_path, models_dir):
    application = studio_app(tmp_path, models_dir, SD1)
    yield application
    application.extensions["studio"].shutdown()


def run_jobs(sio, payloads, timeout=300):
    """Queue every payload, wait for all to end; {job id: (event, payload)} in the order queued."""
    ids = [sio.emit("generate", payload, callback=True)["job_id"] for payload in payloads]
    events = collect_events(sio, lambda ev: all(job_ended(j)(ev) for j in ids), timeout=timeout)
    ends = {p["job_id"]: (n, p) for n, p in events if n in TERMINAL}
    return [ends[j] for j in ids]


def saved(app, name):
    with Image.open(app.extensions["studio"].studio.outputs_dir / name) as png:
        return np.asarray(png.convert("RGB")), png.text["parameters"], json.loads(png.text["img2img-studio"])


def sha256_of(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def a1111_hash_of(path):
    """A1111's LoRA hash, computed here from its definition: the SHA-256 of the bytes after the header."""
    data = path.read_bytes()
    return hashlib.sha256(data[8 + int.from_bytes(data[:8], "little"):]).hexdigest()[:12]


def test_jobs_with_loras_give_the_engines_pixels_and_a_job_without_gets_the_base(app, models_dir, direct):
    sio = connect(app)
    style = models_dir / "loras" / "style.safetensors"
    results = run_jobs(sio, [{**SETTINGS, "loras": [{"name": "style.safetensors", "weight": 0.5}]},
                             {**SETTINGS, "loras": [{"name": "style.safetensors", "weight": 1.0}]},
                             SETTINGS])
    assert [n for n, _ in results] == ["job_done"] * 3, results
    for (_, done), key in zip(results, (0.5, 1.0, "base")):
        pixels, parameters, stored = saved(app, done["name"])
        np.testing.assert_array_equal(pixels, direct[key])
        if key == "base":
            assert stored["loras"] == [] and done["metadata"]["loras"] == []
            assert "<lora:" not in parameters and "Lora hashes" not in parameters
            continue
        assert stored["loras"] == [{"name": "style.safetensors", "weight": key, "sha256": sha256_of(style),
                                    "a1111_hash": a1111_hash_of(style)}]
        assert done["metadata"]["loras"] == stored["loras"]
        prompt_line = parameters.splitlines()[0]
        assert prompt_line == f"a red barn in a field <lora:style:{key:g}>"
        assert f'Lora hashes: "style: {a1111_hash_of(style)}"' in parameters
        assert f"--lora style.safetensors:{key:g}" in dream_command(stored)
    assert not np.array_equal(direct[0.5], direct["base"]) and not np.array_equal(direct[0.5], direct[1.0])

    listing = {entry["name"]: entry for entry in app.test_client().get("/api/models").json["loras"]}
    assert listing["styles/fast.safetensors"]["defaults"] == {"steps": 3, "cfg_scale": 1.5}
    assert listing["style.safetensors"]["defaults"] == {} and listing["style.safetensors"]["family"]
    # Once a job has used a LoRA its SHA-256 is listed (the page matches recorded LoRAs by it).
    assert listing["style.safetensors"]["sha256"] == sha256_of(style)
    assert "sha256" not in listing["styles/fast.safetensors"]


def test_a_lora_for_another_family_ends_its_job_naming_it_and_the_next_job_runs(app, direct):
    sio = connect(app)
    (refused, payload), (after, done) = run_jobs(sio, [
        {**SETTINGS, "loras": [{"name": "xl-style.safetensors", "weight": 1}]}, SETTINGS])
    assert refused == "job_error" and "xl-style.safetensors is a LoRA for Stable Diffusion XL" in payload["error"]
    assert after == "job_done"
    np.testing.assert_array_equal(saved(app, done["name"])[0], direct["base"])


@pytest.mark.parametrize("loras, message", [
    ([{"name": "nope.safetensors", "weight": 1}], "No LoRA named 'nope.safetensors'"),
    ([{"name": "../sd1.safetensors", "weight": 1}], "not a name in the models folder"),
    ([{"name": "/etc/passwd", "weight": 1}], "not a name in the models folder"),
    ([{"name": "style.safetensors", "weight": 9}], "from -4 to 4"),
    ([{"name": "style.safetensors", "weight": "1"}], "from -4 to 4"),
    ("style.safetensors", "loras must be a list"),
    ([{"name": "style.safetensors"}] * 9, "at most 8"),
])
def test_unknown_path_like_or_malformed_loras_are_refused_in_the_ack(app, loras, message):
    ack = connect(app).emit("generate", {**SETTINGS, "loras": loras}, callback=True)
    assert message in ack.get("error", ""), ack


def test_a_loras_recommended_settings_fill_in_what_the_request_leaves_out(app):
    sio = connect(app)
    fast = [{"name": "styles/fast.safetensors", "weight": 1}]
    left_out = {k: v for k, v in SETTINGS.items() if k not in ("steps", "cfg_scale")}
    (_, filled), (_, given) = run_jobs(sio, [{**left_out, "loras": fast}, {**SETTINGS, "loras": fast}])
    assert (filled["metadata"]["steps"], filled["metadata"]["cfg_scale"]) == (3, 1.5)
    assert (given["metadata"]["steps"], given["metadata"]["cfg_scale"]) == (2, 5.0)  # the request's own win


def test_serves_lora_applies_to_jobs_that_give_no_loras(tmp_path, models_dir, direct):
    from server.cli import main

    application = studio_app(tmp_path, models_dir, SD1, LORAS=(("style.safetensors", 0.5),))
    try:
        sio = connect(application)
        (_, default), (_, none), (_, other) = run_jobs(sio, [
            SETTINGS, {**SETTINGS, "loras": []}, {**SETTINGS, "loras": [{"name": "style.safetensors", "weight": 1}]}])
        np.testing.assert_array_equal(saved(application, default["name"])[0], direct[0.5])
        np.testing.assert_array_equal(saved(application, none["name"])[0], direct["base"])
        np.testing.assert_array_equal(saved(application, other["name"])[0], direct[1.0])
    finally:
        application.extensions["studio"].shutdown()
    # A --lora that is not there stops the start with a usage error naming it.
    result = CliRunner().invoke(main, ["serve", "--port", "0", "--models-dir", str(models_dir),
                                       "--lora", "missing.safetensors:0.5", "--async-mode", "threading"])
    assert result.exit_code == 2 and "missing.safetensors is neither a LoRA in" in result.output


# ---- the command line --------------------------------------------------------------------------------

def run_cli(*args):
    from server.cli import main

    return CliRunner().invoke(main, ["generate", *map(str, args)])


def only_output(result):
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()[0]


CLI_SETTINGS = ["a red barn in a field", "-s2", "-S7", "-W64", "-H64", "-A", "euler", "-C5", "--model", SD1]


def test_cli_lora_saves_the_same_pixels_and_from_reproduces_them(tmp_path, models_dir, monkeypatch, direct):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "models"
    shutil.copytree(models_dir, folder)  # "models" beside outputs/: the default --models-dir
    made = only_output(run_cli(*CLI_SETTINGS, "--lora", "style.safetensors:0.7"))
    with Image.open(made) as png:
        np.testing.assert_array_equal(np.asarray(png.convert("RGB")), direct[0.7])
        record = json.loads(png.text["img2img-studio"])["loras"]
        assert "<lora:style:0.7>" in png.text["parameters"]
    assert record == [{"name": "style.safetensors", "weight": 0.7, "sha256": sha256_of(folder / "loras/style.safetensors"),
                       "a1111_hash": a1111_hash_of(folder / "loras/style.safetensors")}]

    again = run_cli("--from", made)
    assert "Warning" not in again.stderr, again.stderr
    with Image.open(only_output(again)) as png:
        np.testing.assert_array_equal(np.asarray(png.convert("RGB")), direct[0.7])
    assert "--lora style.safetensors:0.7" in again.stdout  # the printed line reproduces it too

    # Renamed: found by its SHA-256.
    (folder / "loras/style.safetensors").rename(folder / "loras/renamed.safetensors")
    renamed = run_cli("--from", made)
    assert "Using models/loras/renamed.safetensors for the LoRA 'style.safetensors'" in renamed.stderr
    with Image.open(only_output(renamed)) as png:
        np.testing.assert_array_equal(np.asarray(png.convert("RGB")), direct[0.7])

    # Gone: said clearly, and the run goes on without it.
    (folder / "loras/renamed.safetensors").unlink()
    missing = run_cli("--from", made)
    assert "made with the LoRA 'style.safetensors' at weight 0.7" in missing.stderr
    assert "which is not in models/loras/" in missing.stderr
    with Image.open(only_output(missing)) as png:
        np.testing.assert_array_equal(np.asarray(png.convert("RGB")), direct["base"])

    # A path outside the folder works too, recorded under its file name.
    outside = only_output(run_cli(*CLI_SETTINGS, "--lora", f"{models_dir / 'loras' / 'style.safetensors'}:0.7"))
    with Image.open(outside) as png:
        np.testing.assert_array_equal(np.asarray(png.convert("RGB")), direct[0.7])
    bad = run_cli(*CLI_SETTINGS, "--lora", "nope.safetensors")
    assert bad.exit_code == 2 and "nope.safetensors is neither a LoRA in models/loras/" in bad.output


def test_cli_lora_defaults_fill_in_steps_and_cfg(tmp_path, models_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(models_dir, tmp_path / "models")
    made = only_output(run_cli("a red barn", "-S7", "-W64", "-H64", "--model", SD1, "--lora", "styles/fast.safetensors"))
    with Image.open(made) as png:
        meta, parameters = json.loads(png.text["img2img-studio"]), png.text["parameters"]
    assert (meta["steps"], meta["cfg_scale"]) == (3, 1.5)
    assert re.search(r"Steps: 3, .*CFG scale: 1\.5", parameters)


def test_old_outputs_without_loras_still_read_and_bad_loras_metadata_is_named():
    from server.cli import recorded_settings
    from server.storage.metadata import a1111_parameters

    old = {"prompt": "fire", "steps": 10, "seed": 1, "model": "demo"}
    assert "loras" not in recorded_settings.settings_from_metadata(old)
    assert a1111_parameters(old).splitlines()[0] == "fire"
    with pytest.raises(recorded_settings.MalformedMetadata, match="'loras'"):
        recorded_settings.check_metadata({**old, "loras": [{"name": "x", "weight": 1, "sha256": "nothex"}]})
    with pytest.raises(recorded_settings.MalformedMetadata, match="'loras'"):
        recorded_settings.check_metadata({**old, "loras": "x.safetensors"})


def test_a_recorded_loras_list_can_be_sent_back_as_it_is():
    record = {"name": "style.safetensors", "weight": 0.5, "sha256": "0" * 64, "a1111_hash": "0" * 12}
    assert GenerationRequest.from_payload({"loras": [record]}).loras == (("style.safetensors", 0.5),)
    with pytest.raises(ValueError, match="only name and weight, not wieght"):
        GenerationRequest.from_payload({"loras": [{"name": "style.safetensors", "wieght": 0.5}]})
