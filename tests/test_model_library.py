"""The models folder: what is listed (families, kinds, refusals, LoRAs), that listing reads headers
only and is cached, that names never leave the folder, SHA-256s, and GET /api/models."""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
import torch

from server.engine.checkpoint_file import CheckpointFile
from server.engine.loading import DEMO_MODEL_DIR
from server.storage.model_hashes import HashCache
from server.storage.model_entries import DETECTED_AT_LOAD
from server.storage.model_library import ModelLibrary, UnknownModel
from tests import checkpoint_families as families


def header_only_copy(source: Path, target: Path) -> Path:
    """`source`'s safetensors header (every key, dtype, shape and offset) over zeros: a valid file
    of the same size whose data is never written (sparse), so fifty of them cost no disk."""
    with open(source, "rb") as file:
        length = int.from_bytes(file.read(8), "little")
        header = file.read(length)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as file:
        file.write(length.to_bytes(8, "little") + header)
        file.truncate(source.stat().st_size)
    return target


@pytest.fixture(scope="module")
def small_files():
    return {family: families.cached_checkpoint(family, "small", torch.float32) for family in ("sd1", "sd2", "sdxl")}


@pytest.fixture
def models_dir(tmp_path, small_files):
    """A models folder as a person fills it: checkpoints (one in a subfolder), a diffusers folder,
    a .ckpt, files that are not models, a LoRA in the wrong place, loras/, links in and out."""
    root = tmp_path / "models"
    header_only_copy(small_files["sd1"], root / "sd15.safetensors")
    header_only_copy(small_files["sdxl"], root / "xl" / "juggernaut.safetensors")
    shutil.copytree(DEMO_MODEL_DIR, root / "demo-folder")
    (root / "old.ckpt").write_bytes(b"not a pickle at all: a listing that unpickled this would refuse it")
    (root / "weights.bin").write_bytes(b"\0" * 64)
    (root / "half.safetensors.part").write_bytes(b"\0" * 64)
    (root / "notes.txt").write_text("my models")
    (root / "sd15.yaml").write_text("model:\n  params: {}\n")
    (root / "sd15.preview.png").write_bytes(b"\x89PNG")
    (root / "unet-only" / "unet").mkdir(parents=True)
    (root / "broken.safetensors").write_bytes(b"\x10\0\0\0\0\0\0\0{not json}")
    torch_lora = {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 32),
                  "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": torch.zeros(32, 4)}
    from safetensors.torch import save_file

    save_file(torch_lora, str(root / "misplaced-lora.safetensors"))
    (root / "loras" / "styles").mkdir(parents=True)
    save_file(torch_lora, str(root / "loras" / "styles" / "ink.safetensors"))
    (root / "loras" / "readme.txt").write_text("LoRAs")
    outside = tmp_path / "elsewhere.safetensors"
    header_only_copy(small_files["sd1"], outside)
    os.symlink(outside, root / "link-out.safetensors")
    os.symlink(root / "sd15.safetensors", root / "link-in.safetensors")
    return root


def by_name(listing):
    return {entry["name"]: entry for entry in listing}


def test_the_listing_says_what_each_file_is(models_dir, tmp_path):
    listing = ModelLibrary(models_dir, tmp_path / "outputs").listing()
    models = by_name(listing["models"])
    assert set(models) == {"sd15.safetensors", "xl/juggernaut.safetensors", "demo-folder", "old.ckpt", "weights.bin",
                           "half.safetensors.part", "unet-only", "broken.safetensors", "misplaced-lora.safetensors",
                           "link-out.safetensors", "link-in.safetensors"}
    assert models["sd15.safetensors"] == {"name": "sd15.safetensors", "family": "Stable Diffusion 1.x", "kind": "file",
                                          "size": (models_dir / "sd15.safetensors").stat().st_size}
    assert models["xl/juggernaut.safetensors"]["family"] == "Stable Diffusion XL"
    assert models["link-in.safetensors"]["family"] == "Stable Diffusion 1.x"
    folder = models["demo-folder"]
    assert folder["kind"] == "folder" and "refused" not in folder
    assert folder["size"] == sum(p.stat().st_size for p in (models_dir / "demo-folder").rglob("*") if p.is_file())
    # A pickle is only read when it loads: no family yet, and not refused for contents nobody read.
    assert models["old.ckpt"]["family"] is None and models["old.ckpt"]["detail"] == DETECTED_AT_LOAD
    assert "refused" not in models["old.ckpt"]
    refused = {name: entry["refused"] for name, entry in models.items() if "refused" in entry}
    assert set(refused) == {"weights.bin", "half.safetensors.part", "unet-only", "broken.safetensors",
                            "misplaced-lora.safetensors", "link-out.safetensors"}
    assert "LoRA" in refused["misplaced-lora.safetensors"]
    assert "unfinished download" in refused["half.safetensors.part"]
    assert "model_index.json" in refused["unet-only"]
    assert "outside the models folder" in refused["link-out.safetensors"]
    assert "not a readable .safetensors" in refused["broken.safetensors"]
    [lora] = listing["loras"]  # the family is the LoRA engine's to tell (tests/test_loras.py)
    assert lora["name"] == "styles/ink.safetensors" and "family" in lora
    assert lora["size"] == (models_dir / "loras" / "styles" / "ink.safetensors").stat().st_size


def test_a_missing_models_folder_lists_nothing_and_is_not_created(tmp_path):
    library = ModelLibrary(tmp_path / "no-models", tmp_path / "outputs")
    assert library.listing() == {"models": [], "loras": []}
    assert not (tmp_path / "no-models").exists()


@pytest.mark.parametrize("name", ["../elsewhere.safetensors", "/etc/passwd", "xl/../../elsewhere.safetensors",
                                  "link-out.safetensors", "loras/styles/ink.safetensors", "xl", "", ".",
                                  "C:/models/x.safetensors", "xl\\juggernaut.safetensors", "weights.bin", 5, None])
def test_names_never_leave_the_folder(models_dir, tmp_path, name):
    library = ModelLibrary(models_dir, tmp_path / "outputs")
    with pytest.raises(UnknownModel):
        library.entry(name)


def test_a_link_swapped_in_after_listing_is_refused_when_used(models_dir, tmp_path):
    library = ModelLibrary(models_dir, tmp_path / "outputs")
    entry = library.entry("sd15.safetensors")
    os.replace(models_dir / "link-out.safetensors", models_dir / "sd15.safetensors")
    with pytest.raises(UnknownModel, match="outside the models folder"):
        library.check_inside(entry.path)


def test_fifty_checkpoints_list_from_their_headers_without_loading_weights(tmp_path, small_files, monkeypatch):
    """The observable: every tensor read goes through CheckpointFile.tensor (families.py reads at
    most one small norm bias, for SD 2.x), and loading would go through load_model or torch.load."""
    root = tmp_path / "models"
    kinds = ("sd1", "sd2", "sdxl")
    for i in range(50):
        header_only_copy(small_files[kinds[i % 3]], root / f"model-{i:02d}.safetensors")
    reads, opened = [], []
    real_tensor, real_init = CheckpointFile.tensor, CheckpointFile.__init__

    def tensor(self, key):
        value = real_tensor(self, key)
        reads.append(value.numel() * value.element_size())
        return value

    def init(self, path):
        opened.append(Path(path).name)
        real_init(self, path)

    def refuse(*args, **kwargs):
        raise AssertionError("listing loaded weights")

    monkeypatch.setattr(CheckpointFile, "tensor", tensor)
    monkeypatch.setattr(CheckpointFile, "__init__", init)
    monkeypatch.setattr(CheckpointFile, "state_dict", refuse)
    monkeypatch.setattr("server.engine.loading.load_model", refuse)
    monkeypatch.setattr("server.engine.single_file.build_components", refuse)
    monkeypatch.setattr(torch, "load", refuse)

    library = ModelLibrary(root, tmp_path / "outputs")
    listing = library.listing()["models"]
    assert len(listing) == 50 and not any("refused" in e for e in listing)
    assert {e["family"] for e in listing} == {"Stable Diffusion 1.x", "Stable Diffusion 2.x (512, epsilon)",
                                              "Stable Diffusion XL"}
    assert sorted(opened) == sorted(e["name"] for e in listing)
    # At most SD 2.x's one probe bias per file (the small files have no block 11: none at all).
    assert len(reads) <= 17 and all(size <= 64 * 1024 for size in reads)

    # Listing again opens nothing that has not changed; a touched file is opened once more.
    opened.clear()
    assert library.listing()["models"] == listing
    assert opened == []
    os.utime(root / "model-07.safetensors", ns=(1, 1))
    library.listing()
    assert opened == ["model-07.safetensors"]


def test_sha256_is_computed_once_per_file_version(tmp_path, small_files):
    outputs = tmp_path / "outputs"
    model = tmp_path / "model.safetensors"
    shutil.copy(small_files["sd1"], model)
    cache = HashCache(outputs / ".cache" / "model-sha256.json", outputs)
    assert cache.known(model) is None
    expected = hashlib.sha256(model.read_bytes()).hexdigest()
    seen = []
    assert cache.compute(model, seen.append) == expected
    assert seen[-1] == 1.0
    # Another process (the CLI beside the server) finds it in outputs/.cache/.
    assert HashCache(outputs / ".cache" / "model-sha256.json", outputs).known(model) == expected
    with open(model, "ab") as file:  # a new version of the file
        file.write(b"\0")
    assert cache.known(model) is None


def test_api_models_lists_the_folder_with_the_current_model(tmp_path, models_dir, tiny_model):
    from server.web.app import create_app
    from tests.helpers import wait_until

    app = create_app({"OUTPUTS_DIR": str(tmp_path / "outputs"), "MODELS_DIR": str(models_dir),
                      "ASYNC_MODE": "threading", "DEVICE": "cpu", "TESTING": True}, model=tiny_model)
    try:
        wait_until(lambda: app.extensions["studio"].studio.status.status == "ready", timeout=60)
        body = app.test_client().get("/api/models").json
        assert set(body) == {"current", "loaded", "models_dir", "models", "loras"}
        assert body["current"] == tiny_model.name and body["loaded"] == [tiny_model.name]
        assert body["models_dir"] == "models"
        first = body["models"][0]
        assert first["name"] == tiny_model.name and first["source"] == "embedded" and first["kind"] == "folder"
        listed = by_name(body["models"][1:])
        assert listed["sd15.safetensors"]["family"] == "Stable Diffusion 1.x"
        assert listed["weights.bin"]["refused"]
        for entry in body["models"]:
            assert {"name", "family", "kind", "size"} <= set(entry) and entry["kind"] in ("file", "folder")
            assert not Path(entry["name"]).is_absolute()
        assert body["loras"][0]["name"] == "styles/ink.safetensors"
    finally:
        app.extensions["studio"].shutdown()
