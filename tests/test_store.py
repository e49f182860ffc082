"""OutputStore and the metadata text forms written into each PNG."""

import json
import os
import shlex
import threading

import pytest
from PIL import Image

from server.storage import store as store_module
from server.storage.metadata import a1111_parameters, dream_command
from server.storage.store import OutputStore


def make_meta(**overrides) -> dict:
    meta = {
        "prompt": "a lighthouse at dusk, oil painting",
        "negative_prompt": "blurry",
        "steps": 10,
        "exact_steps": False,
        "steps_total": 10,
        "skipped": 3,
        "taken": 7,
        "strength": 0.7,
        "cfg_scale": 7.5,
        "seed": 1592514025,
        "sampler": "k_lms",
        "width": 384,
        "height": 384,
        "fit": False,
        "mode": "img2img",
        "model": "tiny-sd",
        "init_image": {"id": "0123456789abcdef", "sha256": "0123456789abcdef" + "0" * 48,
                       "path": "outputs/uploads/0123456789abcdef.png"},
        "warnings": [],
        "elapsed_s": 1.25,
    }
    meta.update(overrides)
    return meta


def tiny(colour=(10, 20, 30)) -> Image.Image:
    return Image.new("RGB", (8, 6), colour)


@pytest.fixture
def store(tmp_path):
    return OutputStore(tmp_path)


# ---- saving and naming --------------------------------------------------------------

def test_names_count_up_and_embed_the_seed(store, tmp_path):
    first = store.save(tiny(), make_meta(seed=5))
    second = store.save(tiny(), make_meta(seed=123))
    assert (first.name, second.name) == ("000001.5.png", "000002.123.png")
    assert first.url == f"/outputs/{first.name}"
    assert first.path == tmp_path / first.name and first.path.is_file()


def test_counter_survives_a_new_store(tmp_path):
    OutputStore(tmp_path).save(tiny(), make_meta(seed=1))
    OutputStore(tmp_path).save(tiny(), make_meta(seed=1))
    tiny().save(tmp_path / "000041.9.png")  # e.g. an older run left a gap
    (tmp_path / "999999.png").write_bytes(b"not ours")  # wrong pattern: ignored
    (tmp_path / "uploads").mkdir()
    tiny().save(tmp_path / "uploads" / "000500.1.png")  # subfolder: ignored
    assert OutputStore(tmp_path).save(tiny(), make_meta(seed=2)).name == "000042.2.png"


def test_concurrent_saves_get_distinct_names(store):
    names, lock = [], threading.Lock()

    def worker():
        for _ in range(5):
            saved = store.save(tiny(), make_meta(seed=3))
            with lock:
                names.append(saved.name)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(names) == [f"{i:06d}.3.png" for i in range(1, 41)]


@pytest.mark.parametrize("seed", [-1, None, "7", 1.5, True])
def test_seed_must_be_a_non_negative_int(store, seed):
    with pytest.raises(ValueError, match="seed"):
        store.save(tiny(), make_meta(seed=seed))


def test_atomic_write_leaves_no_temp_files(store, tmp_path, monkeypatch):
    store.save(tiny(), make_meta())
    assert os.listdir(tmp_path) == ["000001.1592514025.png"]

    def broken_replace(src, dst, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(store_module.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        store.save(tiny(), make_meta())
    assert os.listdir(tmp_path) == ["000001.1592514025.png"]  # no temp, no partial file

    monkeypatch.undo()
    assert store.save(tiny(), make_meta()).path.is_file()


# ---- what goes into the PNG ---------------------------------------------------------

def test_png_text_chunks_round_trip(store):
    meta = make_meta(prompt="ünïcode “quotes” and, commas")
    saved = store.save(tiny(), meta)
    with Image.open(saved.path) as img:
        img.load()
        assert img.text["parameters"] == a1111_parameters(meta)
        stored = json.loads(img.text["img2img-studio"])
    assert stored == dict(meta, command=dream_command(meta))
    assert OutputStore.read_metadata(saved.path) == stored


def test_read_metadata_of_plain_or_broken_files(tmp_path):
    tiny().save(tmp_path / "plain.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnope")
    assert OutputStore.read_metadata(tmp_path / "plain.png") == {}
    assert OutputStore.read_metadata(tmp_path / "broken.png") == {}


def test_a1111_parameters_img2img():
    meta = make_meta()
    lines = a1111_parameters(meta).split("\n")
    assert lines[0] == meta["prompt"]
    assert lines[1] == f"Negative prompt: {meta['negative_prompt']}"
    fields = dict(part.split(": ", 1) for part in lines[2].split(", "))
    assert fields == {
        "Steps": str(meta["steps_total"]), "Sampler": meta["sampler"],
        "CFG scale": str(meta["cfg_scale"]), "Seed": str(meta["seed"]),
        "Size": f"{meta['width']}x{meta['height']}",
        "Denoising strength": str(meta["strength"]), "Model": meta["model"],
    }


def test_a1111_parameters_txt2img_without_negative():
    meta = make_meta(mode="txt2img", strength=None, negative_prompt="", init_image=None)
    lines = a1111_parameters(meta).split("\n")
    assert len(lines) == 2 and lines[0] == meta["prompt"]
    assert "Denoising strength" not in lines[1] and "Negative prompt" not in lines[1]
    assert lines[1].startswith(f"Steps: {meta['steps_total']}, ")


def test_a1111_steps_is_schedule_length_when_exact_steps():
    # exact_steps: the user asked for 10 taken steps; A1111 needs the full schedule length.
    meta = make_meta(steps=10, exact_steps=True, steps_total=15, taken=10, skipped=5,
                     strength=0.7)
    assert "Steps: 15," in a1111_parameters(meta)


def test_dream_command_matches_the_invokeai_form():
    meta = make_meta(prompt="fire", negative_prompt="")
    assert dream_command(meta) == ('"fire" -s10 -W384 -H384 -C7.5 -A k_lms -S1592514025 '
                                   "-I outputs/uploads/0123456789abcdef.png -f 0.7")


def test_dream_command_flags():
    meta = make_meta(fit=True, exact_steps=True)
    tokens = shlex.split(dream_command(meta))
    assert tokens[0] == meta["prompt"]
    assert "--fit" in tokens and "--exact-steps" in tokens
    assert tokens[tokens.index("--negative") + 1] == meta["negative_prompt"]
    assert tokens[tokens.index("-I") + 1] == meta["init_image"]["path"]
    assert tokens[tokens.index("-f") + 1] == str(meta["strength"])
    assert f"-S{meta['seed']}" in tokens and f"-s{meta['steps']}" in tokens


def test_dream_command_txt2img_has_no_init_or_strength():
    tokens = shlex.split(dream_command(make_meta(mode="txt2img", strength=None, init_image=None)))
    assert "-I" not in tokens and "-f" not in tokens


@pytest.mark.parametrize("prompt", [
    'a "quoted" word', "it's a dog's life", "both ' and \" quotes", "back\\slash \\n",
    "$HOME and `ls` and !bang", "multi\nline", "  spaces  around  ", "", "日本語 プロンプト",
])
def test_dream_command_quoting_round_trips(prompt):
    tokens = shlex.split(dream_command(make_meta(prompt=prompt, negative_prompt=prompt or "x")))
    assert tokens[0] == prompt
    assert tokens[tokens.index("--negative") + 1] == (prompt or "x")


def test_metadata_functions_tolerate_missing_and_extra_keys():
    meta = {"prompt": "just a prompt", "seed": 4, "unknown_key": object()}
    assert a1111_parameters(meta).split("\n") == ["just a prompt", "Seed: 4"]
    assert shlex.split(dream_command(meta)) == ["just a prompt", "-S4"]


# ---- listing ---------------------------------------------------------------------------

def test_list_newest_first_with_metadata(store, tmp_path):
    metas = [make_meta(seed=s, prompt=f"prompt {s}") for s in (11, 22, 33)]
    for meta in metas:
        store.save(tiny(), meta)
    tiny().save(tmp_path / "000010.77.png")  # a file without metadata
    (tmp_path / "uploads").mkdir()
    tiny().save(tmp_path / "uploads" / "000099.1.png")
    (tmp_path / "notes.txt").write_text("ignored")

    items = store.list()
    assert [i["name"] for i in items] == ["000010.77.png", "000003.33.png", "000002.22.png",
                                          "000001.11.png"]
    plain, newest_saved = items[0], items[1]
    assert plain["seed"] == 77 and plain["prompt"] is None and plain["metadata"] == {}
    assert (plain["width"], plain["height"]) == tiny().size

    assert newest_saved["url"] == "/outputs/000003.33.png"
    assert newest_saved["seed"] == 33 and newest_saved["prompt"] == "prompt 33"
    assert newest_saved["strength"] == metas[2]["strength"]
    assert (newest_saved["width"], newest_saved["height"]) == tiny().size
    assert newest_saved["metadata"] == dict(metas[2], command=dream_command(metas[2]))
    assert isinstance(newest_saved["created"], float)
    assert newest_saved["created"] == (tmp_path / "000003.33.png").stat().st_mtime


# ---- path_for --------------------------------------------------------------------------

def test_path_for_existing_output(store):
    saved = store.save(tiny(), make_meta())
    assert store.path_for(saved.name) == saved.path.resolve()


@pytest.mark.parametrize("name", [
    "../x", "../000001.1.png", "/etc/passwd", "..%2F000001.1.png", "%2e%2e/000001.1.png",
    "uploads/000001.1.png", "000001.1.png/../000001.1.png", "000001.1.png\n", "000001.1.PNG",
    "\u0660\u0660\u0660\u0660\u0660\u0661.1.png",  # Arabic-Indic digits match a naive \d
    "000002.1.png",  # well-formed but does not exist
    "", None,
])
def test_path_for_refuses(store, name):
    store.save(tiny(), make_meta(seed=1))
    with pytest.raises(KeyError):
        store.path_for(name)


def test_path_for_refuses_symlinks_out_of_root(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    tiny().save(outside / "secret.png")
    root = tmp_path / "outputs"
    store = OutputStore(root)
    (root / "000050.1.png").symlink_to(outside / "secret.png")
    with pytest.raises(KeyError):
        store.path_for("000050.1.png")
    assert "000050.1.png" not in [i["name"] for i in store.list()]
