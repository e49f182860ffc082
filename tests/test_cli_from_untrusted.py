"""`generate --from` on a PNG that img2img studio did not write, or that was edited: it is safe
to leave running on files from elsewhere. Malformed settings end in one clean line naming the
field; the init image the metadata names is used only when its SHA-256 matches the recorded one,
and is not decoded before that."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from server.cli import main
from tests.helpers import png_bytes, sketch
from tests.test_cli_generate import pixels, stored

ROOT = Path(__file__).resolve().parent.parent
UPLOAD_ID = "0123456789abcdef"


# ---- helpers -----------------------------------------------------------------------------------

def run_cli(*args):
    return CliRunner().invoke(main, ["generate", *map(str, args)])


def crafted_png(path: Path, chunk) -> Path:
    """A real PNG carrying `chunk` as its img2img-studio text: a dict or any JSON value is
    dumped as JSON (as the studio stores it), a str is stored as-is (not JSON, say)."""
    info = PngInfo()
    info.add_itxt("img2img-studio", chunk if isinstance(chunk, str) else json.dumps(chunk), zip=True)
    sketch(seed=7).save(path, pnginfo=info)
    return path


def base_meta(**overrides) -> dict:
    """Well-formed metadata, as Studio records it, naming an init image that is not here."""
    meta = {
        "prompt": "a lighthouse", "negative_prompt": "", "init_image": {
            "id": UPLOAD_ID, "sha256": UPLOAD_ID + "0" * 48,
            "path": f"outputs/uploads/{UPLOAD_ID}.png", "width": 128, "height": 128},
        "strength": 0.7, "steps": 4, "exact_steps": False, "cfg_scale": 7.5, "seed": 42,
        "sampler": "k_lms", "width": 128, "height": 128, "fit": False, "fit_box": None,
        "with_variations": [], "mode": "img2img", "model": "tiny", "warnings": [],
    }
    meta.update(overrides)
    return meta


def with_init(**fields) -> dict:
    return base_meta(init_image={**base_meta()["init_image"], **fields})


def assert_one_clean_line(result, *needles):
    """Exit 1 via click (no exception escaped: CliRunner would hold it), one `Error:` line."""
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output and "Usage:" not in result.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def no_decoding(monkeypatch):
    """Fails the run if any file is decoded as an image (it would be, only after a hash match)."""
    import server.storage.images

    calls = []

    def refuse(data, *args, **kwargs):
        calls.append(data)
        raise AssertionError("an unverified file was decoded")

    monkeypatch.setattr(server.storage.images, "decode_upload", refuse)
    return calls


def no_outputs_written(workdir: Path) -> bool:
    return not (workdir / "outputs").exists() or not any((workdir / "outputs").glob("*.png"))


# ---- 1. malformed metadata: one clean line naming the field --------------------------------------

MALFORMED = [
    # (what the chunk holds, the field the message names)
    (base_meta(with_variations=[[1]]), "with_variations"),
    (base_meta(with_variations="x"), "with_variations"),
    (base_meta(with_variations=[["a", "b"]]), "with_variations"),
    (base_meta(with_variations=[[1, 2, 3]]), "with_variations"),
    (base_meta(with_variations=[1, 2]), "with_variations"),
    (base_meta(with_variations={"1": 0.5}), "with_variations"),
    (base_meta(with_variations=[[-1, 0.1]]), "with_variations"),
    (base_meta(with_variations=[[1, 1.5]]), "with_variations"),
    (base_meta(with_variations=[[True, 0.1]]), "with_variations"),
    (base_meta(with_variations=[[1.5, 0.1]]), "with_variations"),
    (base_meta(with_variations=[[None, None]]), "with_variations"),
    (base_meta(contact_sheet_of=5), "contact_sheet_of"),
    (base_meta(contact_sheet_of=[1, 2]), "contact_sheet_of"),
    (base_meta(contact_sheet_of="000001.1.png"), "contact_sheet_of"),
    (base_meta(contact_sheet_of=["000001.1.png", {"a": 1}]), "contact_sheet_of"),
    (base_meta(contact_sheet_of=["000001.1.png\nrm -rf ~"]), "contact_sheet_of"),
    (base_meta(steps="10"), "steps"),
    (base_meta(steps=[10]), "steps"),
    (base_meta(steps=0), "steps"),
    (base_meta(steps=10.5), "steps"),
    (base_meta(steps=True), "steps"),
    (base_meta(steps=10**9), "steps"),
    (base_meta(seed=1.5), "seed"),
    (base_meta(seed="42"), "seed"),
    (base_meta(seed=-1), "seed"),
    (base_meta(seed=2**32), "seed"),
    (base_meta(seed={"s": 1}), "seed"),
    (base_meta(prompt={"a": 1}), "prompt"),
    (base_meta(prompt=5), "prompt"),
    (base_meta(prompt=["fire"]), "prompt"),
    (base_meta(negative_prompt=3), "negative_prompt"),
    (base_meta(cfg_scale="7"), "cfg_scale"),
    (base_meta(cfg_scale=51), "cfg_scale"),
    (base_meta(cfg_scale=False), "cfg_scale"),
    (base_meta(strength="0.7"), "strength"),
    (base_meta(strength=2), "strength"),
    (base_meta(sampler="k_nope"), "sampler"),
    (base_meta(sampler=["k_lms"]), "sampler"),
    (base_meta(width=-8), "width"),
    (base_meta(width="384"), "width"),
    (base_meta(width=100), "width"),
    (base_meta(width=4096), "width"),
    (base_meta(height=0), "height"),
    (base_meta(height=[128]), "height"),
    (base_meta(fit="yes"), "fit"),
    (base_meta(exact_steps=1), "exact_steps"),
    (base_meta(min_taken_steps=-1), "min_taken_steps"),
    (base_meta(min_taken_steps="5"), "min_taken_steps"),
    (base_meta(fit=True, fit_box="512"), "fit_box"),
    (base_meta(fit=True, fit_box=[512]), "fit_box"),
    (base_meta(fit=True, fit_box=["a", 512]), "fit_box"),
    (base_meta(fit=True, fit_box=[-8, 64]), "fit_box"),
    (base_meta(mode=3), "mode"),
    (base_meta(mode=["img2img"]), "mode"),
    (base_meta(model=5), "model"),
    (base_meta(init_image="x.png"), "init_image"),
    (base_meta(init_image=5), "init_image"),
    (base_meta(init_image=["a"]), "init_image"),
    (with_init(id="../../etc/passwd"), "init_image.id"),
    (with_init(id="ABCDEF0123456789"), "init_image.id"),
    (with_init(id=5), "init_image.id"),
    (with_init(sha256="zz"), "init_image.sha256"),
    (with_init(sha256=7), "init_image.sha256"),
    (with_init(path=5), "init_image.path"),
    (with_init(path={"a": 1}), "init_image.path"),
    (with_init(path=""), "init_image.path"),
]


@pytest.mark.parametrize("chunk, field", MALFORMED, ids=[f"{f}-{i}" for i, (_, f) in enumerate(MALFORMED)])
def test_malformed_metadata_is_one_clean_line(chunk, field, workdir, no_decoding):
    png = crafted_png(workdir / "crafted.png", chunk)
    result = run_cli("--from", png)
    line = assert_one_clean_line(result, str(png), f"has a malformed '{field}' (expected ",
                                 "it was not saved by img2img studio or was edited.")
    assert "\n" not in line and no_outputs_written(workdir) and not no_decoding


@pytest.mark.parametrize("chunk", [[1, 2], "[1, 2]", '"a string"', "42", "null", "true", "{not json", ""])
def test_metadata_that_is_not_a_json_object_is_one_clean_line(chunk, workdir, no_decoding):
    png = crafted_png(workdir / "crafted.png", chunk)
    assert_one_clean_line(run_cli("--from", png), str(png))
    assert no_outputs_written(workdir)


@pytest.mark.parametrize("chunk", [base_meta(**{"mode": "txt2img", "init_image": None}, prompt="x" * 2001),
                                   base_meta(**{"mode": "txt2img", "init_image": None}, width=16)])
def test_well_typed_settings_no_request_takes_are_one_clean_line(chunk, workdir, no_decoding):
    """Types right, yet no request takes them: the request's own reason, said of the file."""
    png = crafted_png(workdir / "crafted.png", chunk)
    assert_one_clean_line(run_cli("--from", png), f"{png} holds settings that cannot be used: ")
    assert no_outputs_written(workdir)


def test_switches_that_override_a_malformed_field_still_report_it(workdir, no_decoding):
    """The file is wrong whatever the switches say; better said than half-used."""
    png = crafted_png(workdir / "crafted.png", base_meta(steps="ten"))
    assert_one_clean_line(run_cli("--from", png, "-s5"), "'steps'")


TXT2IMG = {"mode": "txt2img", "init_image": None, "strength": None}


@pytest.mark.parametrize("chunk", [base_meta(with_variations=[[1]]), base_meta(contact_sheet_of=7),
                                   base_meta(**TXT2IMG, sampler=[1]), base_meta(**TXT2IMG, steps=[4]), [1]])
def test_malformed_metadata_in_a_real_process_prints_no_traceback(chunk, tmp_path):
    """As a person runs it: stderr holds the one line, stdout nothing. (txt2img: nothing stops
    the run earlier, at the missing init image.)"""
    png = crafted_png(tmp_path / "crafted.png", chunk)
    proc = subprocess.run([sys.executable, "-m", "server", "generate", "--from", str(png)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and str(png) in lines[0], proc.stderr
    assert not (tmp_path / "outputs").exists()


# ---- 2. the init image the metadata names: used only when its SHA-256 matches --------------------

def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def refused(result, png: Path) -> str:
    return assert_one_clean_line(result, f"The init image recorded in {png}", "not on this machine",
                                 "SHA-256", "give the image with -I PATH.")


def test_a_path_outside_is_hashed_not_decoded_and_refused(workdir, no_decoding):
    """`../../secret.png`, an image a crafted PNG should not get to use: it is an image, it exists,
    and its hash is not the recorded one, so it is never decoded."""
    secret = workdir.parent / f"{workdir.name}-secret.png"
    secret.write_bytes(png_bytes(sketch(seed=3)))
    png = crafted_png(workdir / "crafted.png", with_init(path=f"../{secret.name}"))
    assert (workdir / f"../{secret.name}").is_file()
    refused(run_cli("--from", png), png)
    assert not no_decoding and no_outputs_written(workdir)


@pytest.mark.skipif(not Path("/etc/passwd").is_file(), reason="no /etc/passwd here")
def test_an_absolute_system_path_is_refused(workdir, no_decoding):
    png = crafted_png(workdir / "crafted.png", with_init(path="/etc/passwd"))
    line = refused(run_cli("--from", png), png)
    assert "root:" not in line and not no_decoding and no_outputs_written(workdir)


def test_an_upload_whose_bytes_differ_from_the_recorded_hash_is_refused(workdir, no_decoding):
    """The upload beside the PNG, by id, but not the recorded bytes (edited, or a crafted id)."""
    data = png_bytes(sketch(seed=4))
    png = crafted_png(workdir / "crafted.png", with_init(id=UPLOAD_ID, sha256=sha256(data + b"x"),
                                                         path=f"elsewhere/{UPLOAD_ID}.png"))
    (workdir / "uploads").mkdir()
    (workdir / "uploads" / f"{UPLOAD_ID}.png").write_bytes(data)
    refused(run_cli("--from", png), png)
    assert not no_decoding and no_outputs_written(workdir)


def test_an_init_image_without_a_recorded_hash_is_refused(workdir, no_decoding):
    data = png_bytes(sketch(seed=5))
    (workdir / "uploads").mkdir()
    (workdir / "uploads" / f"{UPLOAD_ID}.png").write_bytes(data)
    png = crafted_png(workdir / "crafted.png", with_init(sha256=None, path=f"uploads/{UPLOAD_ID}.png"))
    assert_one_clean_line(run_cli("--from", png), "SHA-256", "-I PATH")
    assert not no_decoding and no_outputs_written(workdir)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_path_that_is_not_a_regular_file_is_not_read(workdir, no_decoding):
    """A named pipe would block a read for ever; a folder cannot be hashed: both are refused."""
    os.mkfifo(workdir / "pipe")
    (workdir / "folder").mkdir()
    for path in ("pipe", str(workdir / "folder"), "/dev/zero"):
        png = crafted_png(workdir / "crafted.png", with_init(path=path))
        refused(run_cli("--from", png), png)
    assert not no_decoding and no_outputs_written(workdir)


# ---- ...and when it matches, it is used (end to end, on the demo model) ----------------------------

@pytest.fixture
def shared_model(demo_model, monkeypatch):
    import server.worker.studio as studio_module

    real = studio_module.load_model
    monkeypatch.setattr(studio_module, "load_model",
                        lambda model_path, *a, **k: demo_model if model_path is None else real(model_path, *a, **k))


def saved(result) -> list[Path]:
    assert result.exit_code == 0, result.output
    return [Path(line) for line in result.stdout.splitlines()[::2]]


def test_a_matching_file_at_the_recorded_path_is_used(workdir, shared_model):
    """No upload under the id beside the PNG or in --outputs: the recorded path is tried, hashed
    and, matching, used; the output is the same."""
    sketch(seed=1).save(workdir / "fire.png")
    [first] = saved(run_cli("fire", "-s4", "-S3", "-I", "fire.png", "-f", "0.5"))
    moved = workdir / "elsewhere" / first.name
    moved.parent.mkdir()
    shutil.copy(first, moved)  # beside it: no uploads folder
    assert (workdir / stored(first)["init_image"]["path"]).is_file()
    [again] = saved(run_cli("--from", moved, "--outputs", "other"))
    assert again.parent == Path("other") and np.array_equal(pixels(again), pixels(first))


def test_a_tampered_upload_is_refused_and_dash_i_still_rescues(workdir, shared_model):
    """The upload the output was made from is overwritten: --from refuses it (before the model
    loads, writing nothing). With -I the person's own file is used, with a warning when it is not
    the recorded image."""
    sketch(seed=1).save(workdir / "fire.png")
    sketch(seed=9).save(workdir / "other.png")
    [first] = saved(run_cli("fire", "-s4", "-S3", "-I", "fire.png", "-f", "0.5"))
    upload = workdir / stored(first)["init_image"]["path"]
    upload.write_bytes(png_bytes(sketch(seed=9)))
    before = sorted((workdir / "outputs").glob("*.png"))
    refused(run_cli("--from", first), first)
    assert sorted((workdir / "outputs").glob("*.png")) == before

    upload.unlink()  # (the upload store would reuse a file already under that id)
    rescued = run_cli("--from", first, "-I", "fire.png")
    [again] = saved(rescued)
    assert np.array_equal(pixels(again), pixels(first)) and "Warning" not in rescued.stderr
    other = run_cli("--from", first, "-I", "other.png")
    [changed] = saved(other)
    assert "SHA-256" in other.stderr and "differs" in other.stderr
    assert not np.array_equal(pixels(changed), pixels(first))
