"""Safe to leave running: writes stay inside outputs/ (no symlinks), saved files get the usual
mode, a full disk says so and leaves nothing half-written, the outputs listing reads no image
files on each call, and nothing served names a file by its absolute path.

Real files on disk and real PNGs throughout; the full-disk tests fill a real 512 KiB tmpfs.
"""
from __future__ import annotations

import errno
import io
import json
import os
import stat
import subprocess
import threading
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from server.storage import safe_files
from server.storage import store as store_module
from server.storage.intermediates import save_intermediates
from server.storage.safe_files import DiskFull, UnsafeOutputPath, write_atomic
from server.storage.store import OutputStore
from server.storage.uploads import UploadStore
from tests.helpers import collect_events, job_ended, sketch, upload


def noise(size=(64, 48), seed=0) -> Image.Image:
    """Incompressible pixels, so the PNG is as big as its size says."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), np.uint8), "RGB")


def meta(seed=5, **extra) -> dict:
    return {"prompt": "fire", "seed": seed, "steps": 4, "strength": 0.7, "mode": "img2img", **extra}


def frames(count=3):
    """StepFrame-likes for save_intermediates: an init frame and `count - 1` steps."""
    return [SimpleNamespace(index=k - 1, step=k + 2, latents=noise((16, 16), seed=k)) for k in range(count)]


def everything_under(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def outputs(tmp_path):
    root = tmp_path / "outputs"
    root.mkdir()
    return root


@pytest.fixture
def outside(tmp_path):
    """Where a planted link points: nothing may ever be written here."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


# ---- 1. no writes through symlinks or outside outputs/ -----------------------------------------

def test_an_uploads_folder_that_is_a_link_is_refused(outputs, outside):
    (outputs / "uploads").symlink_to(outside, target_is_directory=True)
    for store in (UploadStore(outputs / "uploads", outputs_root=outputs), UploadStore(outputs / "uploads")):
        with pytest.raises(UnsafeOutputPath) as caught:
            store.save(noise())
        message = str(caught.value)
        assert message.startswith("outputs/uploads is a symbolic link; the studio writes only inside outputs/")
        assert str(outside) not in message and str(outputs) not in message  # no absolute paths
    assert everything_under(outside) == []


@pytest.mark.parametrize("link", ["intermediates", "intermediates/000001.5"])
def test_intermediates_folders_that_are_links_are_refused(outputs, outside, link):
    (outputs / link).parent.mkdir(parents=True, exist_ok=True)
    (outputs / link).symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafeOutputPath, match=f"^outputs/{link} is a symbolic link"):
        save_intermediates(outputs, "000001.5.png", frames(), lambda image: image)
    assert everything_under(outside) == []


def test_intermediates_are_written_inside_outputs(outputs):
    folder = save_intermediates(outputs, "000001.5.png", frames(), lambda image: image)
    assert folder == outputs / "intermediates" / "000001.5"
    assert sorted(p.name for p in folder.iterdir()) == ["init.png", "step-004.png", "step-005.png"]
    assert not any(p.is_symlink() for p in outputs.rglob("*"))


def test_write_atomic_refuses_paths_outside_the_outputs_folder(outputs, outside):
    escapes = (outputs / ".." / "elsewhere" / "x.png", outside / "x.png",
               outputs / "uploads" / ".." / ".." / "x.png")
    for path in escapes:
        with pytest.raises(UnsafeOutputPath, match="outside outputs/"):
            write_atomic(path, b"data", root=outputs)
    assert everything_under(outside) == [] and not (outputs.parent / "x.png").exists()


def test_a_link_deeper_down_is_refused_and_nothing_is_created_through_it(outputs, outside):
    (outputs / "intermediates").mkdir()
    (outputs / "intermediates" / "a").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafeOutputPath, match="^outputs/intermediates/a is a symbolic link"):
        write_atomic(outputs / "intermediates" / "a" / "b" / "c" / "x.png", b"data", root=outputs)
    assert everything_under(outside) == []  # no b/ or b/c/ made through the link


def test_a_file_where_a_folder_belongs_is_a_clear_error(outputs):
    (outputs / "uploads").write_bytes(b"not a folder")
    with pytest.raises(UnsafeOutputPath, match="^outputs/uploads is not a folder"):
        UploadStore(outputs / "uploads", outputs_root=outputs).save(noise())


def test_an_output_name_taken_by_a_link_is_skipped_not_replaced(outputs, outside):
    (outside / "target.png").write_bytes(b"keep me")
    (outputs / "000001.5.png").symlink_to(outside / "target.png")
    saved = OutputStore(outputs).save(noise(), meta())
    assert saved.name == "000002.5.png" and not saved.path.is_symlink()
    assert (outside / "target.png").read_bytes() == b"keep me"


def test_the_outputs_folder_itself_may_be_a_link(tmp_path, outside):
    """outputs/ on another disk is the user's choice; only links below it are refused."""
    (tmp_path / "outputs").symlink_to(outside, target_is_directory=True)
    root = tmp_path / "outputs"
    saved = OutputStore(root).save(noise(), meta())
    record = UploadStore(root / "uploads", outputs_root=root).save(noise(seed=1))
    assert (outside / saved.name).is_file() and (outside / "uploads" / f"{record.id}.png").is_file()


# ---- 2. the usual file mode ------------------------------------------------------------------------

@pytest.fixture
def umask():
    def set_to(value):
        os.umask(value)
    previous = os.umask(0o022)
    yield set_to
    os.umask(previous)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_saved_files_get_0o666_less_the_umask(outputs, umask, mask, mode):
    umask(mask)
    saved = OutputStore(outputs).save(noise(), meta())
    record = UploadStore(outputs / "uploads", outputs_root=outputs).save(noise(seed=1))
    folder = save_intermediates(outputs, saved.name, frames(2), lambda image: image)
    files = [saved.path, record.path, *folder.iterdir()]
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {oct(mode)}
    folders = [outputs / "uploads", outputs / "intermediates", folder]
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in folders} == {oct(0o777 & ~mask)}


# ---- 3. a full disk --------------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """tmp_path/outputs as a real 512 KiB filesystem (a tmpfs), to fill up."""
    mount_point = tmp_path / "outputs"
    mount_point.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k,mode=0755", "tmpfs", str(mount_point)],
                       check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", None) or exc
        pytest.skip(f"filling a real disk needs a small tmpfs, and mounting one was not permitted here "
                    f"(run as root with CAP_SYS_ADMIN): {str(detail).strip()}")
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def fill(folder):
    """Write a filler file until the disk is full; return it (delete it to free the space)."""
    filler = folder / "filler.bin"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\xff" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_is_a_clear_error_and_leaves_nothing_behind(small_disk):
    store = OutputStore(small_disk)
    first = store.save(noise(), meta(seed=41))
    (small_disk / "uploads").mkdir()
    before = everything_under(small_disk)
    filler = fill(small_disk)

    with pytest.raises(DiskFull) as caught:
        store.save(noise(), meta(seed=42))
    assert str(caught.value) == ("The disk holding outputs/ is full: could not save 000002.42.png. "
                                 "Free some space and run it again.")
    assert isinstance(caught.value, OSError) and caught.value.errno == errno.ENOSPC

    with pytest.raises(DiskFull, match=r"^The disk holding outputs/ is full: could not save "
                                        r"uploads/[0-9a-f]{16}\.png\."):
        UploadStore(small_disk / "uploads", outputs_root=small_disk).save(noise(seed=3))
    with pytest.raises(DiskFull, match=r"^The disk holding outputs/ is full: could not save "
                                        r"intermediates/000001\.41/(init|step-\d{3})\.png\."):
        save_intermediates(small_disk, first.name, frames(), lambda image: image)

    # No temp file, no partial file; the listing still shows exactly the one good output.
    left = [name for name in everything_under(small_disk) if name not in before and name != "filler.bin"]
    assert [n for n in left if not n.startswith("intermediates")] == []
    assert not any(p.name.startswith(".tmp-") for p in small_disk.rglob("*"))
    assert not any((small_disk / "intermediates").rglob("*.png"))
    assert [item["name"] for item in store.list()] == [first.name]

    filler.unlink()  # space again: the next save works, under the name the failed one would have had
    assert store.save(noise(), meta(seed=42)).name == "000002.42.png"
    assert [item["name"] for item in store.list()] == ["000002.42.png", first.name]


def test_a_job_on_a_full_disk_ends_with_that_message(small_disk, socket_client, client):
    """Through the real app: the job_error says what to do, with no absolute path in it."""
    init = upload(client, sketch(seed=2))
    fill(small_disk)
    sio = socket_client()
    job_id = sio.emit("generate", {"prompt": "fire", "init_image": init["id"], "steps": 2, "strength": 1.0,
                                   "seed": 9, "preview": "off"}, callback=True)["job_id"]
    events = [(n, p) for n, p in collect_events(sio, job_ended(job_id), timeout=120) if p.get("job_id") == job_id]
    name, payload = events[-1]
    assert name == "job_error"
    assert payload["error"] == ("Generation failed: The disk holding outputs/ is full: could not save "
                                "000001.9.png. Free some space and run it again.")
    assert not any(p.name.startswith(".tmp-") for p in small_disk.rglob("*"))


def test_temp_files_are_never_listed_or_served(outputs, client):
    store = OutputStore(outputs)
    saved = store.save(noise(), meta())
    # What an interrupted write (power cut mid-save) leaves: a complete-looking PNG under a temp name.
    temp_name = f"{safe_files.TEMP_PREFIX}0123456789abcdef{safe_files.TEMP_SUFFIX}"
    (outputs / temp_name).write_bytes(saved.path.read_bytes())
    assert [item["name"] for item in store.list()] == [saved.name]
    with pytest.raises(KeyError):
        store.path_for(temp_name)
    app_outputs = client.application.extensions["studio"].studio.outputs
    (app_outputs.root / temp_name).write_bytes(saved.path.read_bytes())
    assert client.get(f"/outputs/{temp_name}").status_code == 404
    assert temp_name not in client.get("/api/outputs").get_data(as_text=True)


# ---- 4. the listing reads no image files on each call ---------------------------------------------

@pytest.fixture
def opened(monkeypatch):
    """The image files Pillow opens (a spy: it counts, then opens as usual)."""
    paths = []
    real_open = Image.open

    def counting_open(fp, *args, **kwargs):
        if isinstance(fp, (str, os.PathLike)):
            paths.append(os.path.basename(fp))
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", counting_open)
    return paths


def test_listing_reads_each_file_once(outputs, opened):
    store = OutputStore(outputs)
    for seed in (1, 2, 3):
        store.save(noise(seed=seed), meta(seed=seed, prompt=f"prompt {seed}"))
    first = store.list()
    assert opened == []  # saved here: indexed when saved
    assert [item["name"] for item in first] == ["000003.3.png", "000002.2.png", "000001.1.png"]

    # Another process (the CLI, writing into the same folder) saves one: its header is read once.
    OutputStore(outputs).save(noise(seed=4), meta(seed=4, prompt="from the CLI"))
    listed = store.list()
    assert opened == ["000004.4.png"]
    assert listed[0]["name"] == "000004.4.png" and listed[0]["prompt"] == "from the CLI"
    assert store.list() == listed and opened == ["000004.4.png"]

    # Replaced by another process: read again; deleted: drops out, nothing opened.
    other = OutputStore(outputs)
    replacement = io.BytesIO()
    info = PngInfo()
    info.add_itxt(store_module.METADATA_KEY, json.dumps(meta(seed=2, prompt="edited")), zip=True)
    noise((10, 10), seed=9).save(replacement, "PNG", pnginfo=info)
    write_atomic(outputs / "000002.2.png", replacement.getvalue(), root=outputs)
    (outputs / "000001.1.png").unlink()
    opened.clear()
    listed = store.list()
    assert opened == ["000002.2.png"]
    assert [(i["name"], i["prompt"], i["width"]) for i in listed] == [
        ("000004.4.png", "from the CLI", 64), ("000003.3.png", "prompt 3", 64), ("000002.2.png", "edited", 10)]
    # Exactly what a store that reads every file finds.
    assert listed == other.list()


def test_listing_shape_is_unchanged(outputs):
    store = OutputStore(outputs)
    saved = store.save(noise(), meta(seed=7, prompt="a tree", strength=0.4))
    [item] = store.list()
    assert set(item) == {"name", "url", "seed", "prompt", "strength", "width", "height", "created", "metadata"}
    assert (item["name"], item["url"], item["seed"], item["prompt"], item["strength"], item["width"],
            item["height"]) == (saved.name, f"/outputs/{saved.name}", 7, "a tree", 0.4, 64, 48)
    assert item["created"] == saved.path.stat().st_mtime
    assert item["metadata"] == OutputStore.read_metadata(saved.path)


def test_listing_while_saving_from_another_thread(outputs):
    store = OutputStore(outputs)
    errors = []

    def save_many():
        try:
            for k in range(30):
                store.save(noise((8, 8), seed=k), meta(seed=k))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    writer = threading.Thread(target=save_many)
    writer.start()
    seen = []
    while writer.is_alive():
        names = [item["name"] for item in store.list()]
        assert names == sorted(names, reverse=True)
        seen.append(len(names))
    writer.join()
    assert errors == [] and seen == sorted(seen)
    assert len(store.list()) == 30 and store.list() == OutputStore(outputs).list()


# ---- 5. no absolute server paths served ---------------------------------------------------------

def run_job(sio, payload):
    job_id = sio.emit("generate", payload, callback=True)["job_id"]
    events = [(n, p) for n, p in collect_events(sio, job_ended(job_id), timeout=120) if p.get("job_id") == job_id]
    return events


def test_payloads_and_listing_name_no_absolute_path(socket_client, client, tmp_path):
    """outputs/ here lies outside the working directory (tmp_path): payloads still name the init
    image by id, url and a path relative to the outputs folder's parent, which works from there."""
    outputs_dir = client.application.extensions["studio"].studio.outputs_dir
    assert outputs_dir.is_absolute() and not outputs_dir.is_relative_to(os.getcwd())
    init = upload(client, sketch(seed=5))
    events = run_job(socket_client(), {"prompt": "fire", "init_image": init["id"], "steps": 4, "strength": 0.5,
                                       "seed": 3, "save_intermediates": "preview"})
    assert events[-1][0] == "job_done", events[-1]
    sent = [p for n, p in events if n in ("job_output", "job_done")]
    listing = client.get("/api/outputs").get_data(as_text=True)
    for text in [json.dumps(p) for p in sent] + [listing]:
        assert str(tmp_path) not in text and os.path.realpath(tmp_path) not in text

    done = events[-1][1]
    init_image = done["metadata"]["init_image"]
    assert init_image["id"] == init["id"] and init_image["url"] == f"/api/uploads/{init['id']}"
    assert init_image["path"] == f"outputs/uploads/{init['id']}.png"
    assert (outputs_dir.parent / init_image["path"]).is_file()  # usable from outputs/' parent
    assert done["outputs"][0]["intermediates_dir"] == f"outputs/intermediates/{done['name'][:-4]}"
    assert (outputs_dir.parent / done["outputs"][0]["intermediates_dir"]).is_dir()
    stored = OutputStore.read_metadata(outputs_dir / done["name"])
    assert stored["init_image"]["path"] == init_image["path"] and str(tmp_path) not in json.dumps(stored)
    assert f"-I outputs/uploads/{init['id']}.png" in stored["command"]


def test_a_relative_outputs_folder_is_named_as_given(tmp_path, monkeypatch):
    """The usual case, `--outputs outputs` from the repository root: `-I outputs/uploads/<id>.png`."""
    from server.storage.safe_files import shown_path

    monkeypatch.chdir(tmp_path)
    assert shown_path("outputs/uploads/0123456789abcdef.png", "outputs") == "outputs/uploads/0123456789abcdef.png"
    assert shown_path("runs/today/uploads/x.png", "runs/today") == "runs/today/uploads/x.png"
    assert shown_path(tmp_path / "o" / "intermediates" / "000001.5", tmp_path / "o") == "o/intermediates/000001.5"


def test_old_outputs_with_absolute_init_paths_are_listed_without_them(outputs):
    """Outputs saved by earlier versions named the init image by its absolute path."""
    old_path = "/home/some one/studio/outputs/uploads/0123456789abcdef.png"
    old = meta(seed=12, init_image={"id": "0123456789abcdef", "sha256": "ab" * 32, "path": old_path},
               command="\"fire\" -s4 -S12 -I '/home/some one/studio/outputs/uploads/0123456789abcdef.png' -f 0.7")
    info = PngInfo()
    info.add_itxt(store_module.METADATA_KEY, json.dumps(old), zip=True)
    noise((8, 8)).save(outputs / "000012.12.png", "PNG", pnginfo=info)

    [item] = OutputStore(outputs).list()
    assert "/home" not in json.dumps(item)
    assert item["metadata"]["init_image"] == {"id": "0123456789abcdef", "sha256": "ab" * 32,
                                              "path": "outputs/uploads/0123456789abcdef.png"}
    assert item["metadata"]["command"] == '"fire" -s4 -S12 -I outputs/uploads/0123456789abcdef.png -f 0.7'


def test_stale_temp_files_from_a_killed_process_are_swept_on_start_and_fresh_ones_kept(tmp_path):
    """A kill -9 mid-save leaves a `.tmp-*.part` behind; the next start removes old ones, but not
    one a `generate` running beside the server may be writing right now."""
    import os
    import time

    from server.storage.safe_files import sweep_stale_temp_files

    outputs = tmp_path / "outputs"
    (outputs / "intermediates" / "000001.5").mkdir(parents=True)
    stale = [outputs / ".tmp-a.part", outputs / "intermediates" / "000001.5" / ".tmp-b.part"]
    fresh = outputs / ".tmp-c.part"
    kept = outputs / "000001.5.png"
    for path in (*stale, fresh, kept):
        path.write_bytes(b"partial")
    hour_ago = time.time() - 3600
    for path in (*stale, kept):
        os.utime(path, (hour_ago, hour_ago))
    assert sweep_stale_temp_files(outputs) == 2
    assert not any(p.exists() for p in stale) and fresh.exists() and kept.exists()
