"""`img2img-studio generate`: InvokeAI's dream syntax on the command line, saving exactly what the
web studio saves. The end-to-end tests run the embedded demo model (small: a step at 128 px
takes milliseconds) with few steps."""
from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from server.cli import dream, recorded_settings
from server.cli import main
from server.storage.metadata import dream_command
from tests.helpers import collect_events, job_ended, sketch, wait_until

ROOT = Path(__file__).resolve().parent.parent


# ---- helpers -----------------------------------------------------------------------------------

def run_cli(*args):
    """`img2img-studio generate ARGS` in-process; stdout holds only the saved files and commands."""
    return CliRunner().invoke(main, ["generate", *map(str, args)])


def saved(result) -> list[tuple[Path, str]]:
    """(file, reproduce command) for each output the CLI printed."""
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    outputs = []
    for path_line, command_line in zip(lines[::2], lines[1::2]):
        prefix = "  img2img-studio generate "
        assert command_line.startswith(prefix), lines
        outputs.append((Path(path_line), command_line[len(prefix):]))
    return outputs


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def stored(path: Path) -> dict:
    with Image.open(path) as img:
        return json.loads(img.text["img2img-studio"])


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Run in an empty folder with a sketch in it, as a person would: `-I fire.png`."""
    monkeypatch.chdir(tmp_path)
    sketch(seed=1).save(tmp_path / "fire.png")
    return tmp_path


@pytest.fixture
def shared_model(demo_model, monkeypatch):
    """The CLI's Studio gets the already loaded demo model instead of reading it again: the
    same weights, a second less per run. The first end-to-end test loads it for real."""
    import server.worker.studio as studio_module

    real = studio_module.load_model

    def load(model_path, *args, **kwargs):
        return demo_model if model_path is None else real(model_path, *args, **kwargs)

    monkeypatch.setattr(studio_module, "load_model", load)


# ---- the command's surface -----------------------------------------------------------------

def test_help_lists_generate_and_its_switches():
    top = CliRunner().invoke(main, ["--help"])
    assert top.exit_code == 0 and "generate" in top.output and "serve" in top.output
    result = CliRunner().invoke(main, ["generate", "--help"])
    assert result.exit_code == 0
    for switch in ("-s,", "-S,", "-W,", "-H,", "-C,", "-A,", "-I,", "-f,", "--fit", "-v,", "-V,", "-n,",
                   "--exact-steps", "--min-taken-steps", "--negative", "--save-intermediates", "--from", "--model", "--outputs",
                   "--device"):
        assert switch in result.output, switch


def test_the_cli_module_imports_no_torch():
    """`serve` must monkey-patch for eventlet before torch and friends import threading, and
    `--help` should not wait seconds for them: generate's engine imports happen on use."""
    code = "import sys, server.cli; sys.exit('torch' in sys.modules or 'server.engine' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


@pytest.mark.parametrize("args, names", [
    (["fire", "-s", "abc"], ["'-s'", "abc"]),
    (["fire", "--bogus"], ["--bogus"]),
    (["fire", "-f", "2"], ["'-f'", "2"]),
    (["fire", "-f2"], ["'-f'", "2"]),
    (["fire", "-W100"], ["'-W'", "multiple of 8"]),
    (["fire", "-A", "k_nope"], ["'-A'", "k_nope"]),
    (["fire", "-V", "12"], ["'-V'", "seed:weight"]),
    (["fire", "-n", "0"], ["'-n'", "0"]),
    (['"fire" -s abc -S42'], ["'-s'", "abc"]),  # the one-line form gets the same errors
])
def test_bad_switches_are_usage_errors(args, names, workdir):
    result = run_cli(*args)
    assert result.exit_code == 2, result.output
    assert "Usage:" in result.output and "Traceback" not in result.output
    for name in names:
        assert name in result.output
    assert not (workdir / "outputs").exists(), "nothing is written before the settings are valid"


def test_missing_init_image_is_a_clear_error(workdir):
    result = run_cli("fire", "-s4", "-I", "nope.png")
    assert result.exit_code == 2 and "nope.png does not exist" in result.output
    assert "Traceback" not in result.output


def test_init_file_that_is_not_an_image_is_a_clear_error(workdir):
    (workdir / "notes.png").write_text("not an image")
    result = run_cli("fire", "-s4", "-I", "notes.png")
    assert result.exit_code != 0 and "notes.png cannot be used" in result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)


def test_from_a_file_without_studio_metadata_is_a_clear_error(workdir):
    result = run_cli("--from", "fire.png")
    assert result.exit_code == 1 and "holds no img2img studio settings" in result.output


def test_a_model_folder_that_does_not_load_is_a_clear_error(workdir):
    missing = run_cli("fire", "-s4", "--model", "no-such-model")
    assert missing.exit_code == 2 and "no-such-model" in missing.output and "does not exist" in missing.output
    (workdir / "empty-model").mkdir()
    result = run_cli("fire", "-s4", "--model", "empty-model", "--device", "cpu")
    assert result.exit_code == 1 and "Model failed to load" in result.output
    assert "Traceback" not in result.output


# ---- the dream parser ----------------------------------------------------------------------

def test_split_form():
    settings, cli = dream.parse_argv(
        ["fire", "-s10", "-W384", "-H384", "-S1592514025", "-I", "fire.png", "-f", "0.7"])
    assert settings == {"prompt": "fire", "steps": 10, "width": 384, "height": 384, "seed": 1592514025,
                        "init_path": "fire.png", "strength": 0.7}
    assert cli == {"model": None, "models_dir": "models", "prediction_type": "auto", "model_variant": "auto", "outputs": "outputs",
                   "device": "auto", "from_output": None}


def test_one_line_form_equals_split_form():
    line = '"fire on a hill" -s10 -S42 -C7 -A ddim -I "my sketch.png" -f 0.7 --fit --negative "smoke, haze"'
    split = ["fire on a hill", "-s10", "-S42", "-C7", "-A", "ddim", "-I", "my sketch.png", "-f", "0.7", "--fit",
             "--negative", "smoke, haze"]
    assert dream.parse_argv([line]) == dream.parse_argv(split)
    assert dream.parse_line(line) == dream.parse_argv(split)[0]


def test_switches_outside_the_line_override_it():
    settings, cli = dream.parse_argv(["--outputs", "elsewhere", '"fire" -s10 -S42', "-s20"])
    assert settings == {"prompt": "fire", "steps": 20, "seed": 42} and cli["outputs"] == "elsewhere"


@pytest.mark.parametrize("argv, prompt", [
    (["a red-green tree"], "a red-green tree"),  # one argument with no switches in it: a prompt
    (["it's a dog's life"], "it's a dog's life"),  # unbalanced quotes: a prompt
    (["fire", "on", "a", "hill", "-s4"], "fire on a hill"),  # unquoted words join, as in InvokeAI
    (["-s4", "--", "-dash prompt"], "-dash prompt"),
])
def test_prompts(argv, prompt):
    assert dream.parse_argv(argv)[0]["prompt"] == prompt


def test_with_variations_syntax():
    assert dream.parse_variations("12:0.1,34:0.25") == ((12, 0.1), (34, 0.25))
    assert dream.parse_argv(["x", "-V", "7:1"])[0]["with_variations"] == ((7, 1.0),)
    assert dream.parse_variations(" 12:0.1, ") == ((12, 0.1),)
    for bad in ("12", "a:0.1", "12:2", "-1:0.1", "12:0.1:3", ""):
        with pytest.raises(ValueError):
            dream.parse_variations(bad)


def make_meta(**overrides) -> dict:
    """An output's metadata as Studio.run_job records it."""
    meta = {
        "prompt": "a lighthouse at dusk, oil painting", "negative_prompt": "blurry", "init_image": {
            "id": "0123456789abcdef", "sha256": "0123456789abcdef" + "0" * 48,
            "path": "outputs/uploads/0123456789abcdef.png", "width": 384, "height": 384},
        "strength": 0.7, "steps": 10, "exact_steps": False, "cfg_scale": 7.5, "seed": 1592514025,
        "sampler": "k_lms", "width": 384, "height": 384, "fit": False, "preview": "latent", "preview_kind": "x_t",
        "variation_amount": 0.0, "variation_seed": None, "with_variations": [], "iterations": 1, "strengths": [],
        "save_intermediates": "off", "mode": "img2img", "steps_total": 10, "skipped": 3, "taken": 7,
        "model": "tiny", "warnings": [], "elapsed_s": 1.0,
    }
    meta.update(overrides)
    return meta


@pytest.mark.parametrize("meta", [
    make_meta(),
    make_meta(fit=True, exact_steps=True, sampler="euler_a", cfg_scale=3.25),
    make_meta(strength=0.3, min_taken_steps=6, steps_total=20, skipped=14, taken=6, sampler="lcm"),
    make_meta(with_variations=[[12, 0.1], [4294967295, 0.333333333333]], seed=0),
    make_meta(mode="inpaint"),
    make_meta(mode="txt2img", strength=None, init_image=None, negative_prompt=""),
    make_meta(prompt='a "quoted" -s10 word', negative_prompt="it's $HOME\nand `ls`"),
    make_meta(prompt="", init_image={"id": "0123456789abcdef", "path": "/abs/path with spaces/x.png"}),
])
def test_dream_command_round_trips_through_the_parser(meta):
    line = dream_command(meta)
    assert dream.with_defaults(dream.parse_line(line)) == dream.with_defaults(recorded_settings.settings_from_metadata(meta))
    # ...and the CLI reads the stored line the same way, as one argument or pasted into a shell.
    assert dream.parse_argv([line])[0] == dream.parse_line(line)
    assert dream.parse_argv(shlex.split(line))[0] == dream.parse_line(line)


def test_stored_line_reproduces_one_output():
    """-V carries the variations that made this output; -v and -n would make new ones."""
    meta = make_meta(variation_amount=0.2, variation_seed=99, iterations=4, with_variations=[[99, 0.2]],
                     save_intermediates="vae")
    tokens = shlex.split(dream_command(meta))
    assert tokens[tokens.index("-V") + 1] == "99:0.2"
    assert not {"-v", "-n", "--save-intermediates"} & set(tokens)
    settings = recorded_settings.settings_from_metadata(meta)
    assert settings["with_variations"] == ((99, 0.2),) and "variation_amount" not in settings
    assert settings["init_path"] == meta["init_image"]["path"] and settings["strength"] == 0.7
    assert "strength" not in recorded_settings.settings_from_metadata(make_meta(mode="txt2img", strength=0.7))


# ---- end to end --------------------------------------------------------------------------------

def test_cli_pixels_equal_the_web_studios(workdir, demo_model):
    """Same settings, same model: the CLI (loading the demo model itself) and a Socket.IO job
    save the same pixels and the same reproducing settings."""
    from server.web.app import create_app
    from server.web.realtime import socketio

    result = run_cli("tree on a hill", "-s4", "-S1592514025", "-I", "fire.png", "-f", "0.6", "-C", "6")
    [(cli_file, command)] = saved(result)
    assert cli_file.parent == Path("outputs") and cli_file.exists()
    assert "Loading" in result.stderr and "Generating" in result.stderr

    app = create_app({"OUTPUTS_DIR": str(workdir / "web"), "ASYNC_MODE": "threading", "DEVICE": "cpu",
                      "TESTING": True}, model=demo_model)
    try:
        wait_until(lambda: app.extensions["studio"].studio.status.status == "ready", timeout=120)
        client = app.test_client()
        upload = client.post("/api/uploads", data={"image": (open("fire.png", "rb"), "fire.png")},
                             content_type="multipart/form-data").json
        sio = socketio.test_client(app, flask_test_client=client)
        job_id = sio.emit("generate", {"prompt": "tree on a hill", "steps": 4, "seed": 1592514025,
                                       "init_image": upload["id"], "strength": 0.6, "cfg_scale": 6},
                          callback=True)["job_id"]
        events = collect_events(sio, job_ended(job_id), timeout=120)
        done = [p for n, p in events if n == "job_done" and p["job_id"] == job_id][0]
        sio.disconnect()
    finally:
        app.extensions["studio"].shutdown()
    web_file = workdir / "web" / done["name"]
    assert np.array_equal(pixels(cli_file), pixels(web_file))
    cli_meta, web_meta = stored(cli_file), stored(web_file)
    assert cli_meta["init_image"]["sha256"] == web_meta["init_image"]["sha256"]
    assert recorded_settings.settings_from_metadata(cli_meta) == dict(recorded_settings.settings_from_metadata(web_meta),
                                                          init_path=cli_meta["init_image"]["path"])
    assert command == dream_command(cli_meta)


def test_from_reproduces_an_output_bit_for_bit(workdir, shared_model):
    [(first, _)] = saved(run_cli("fire", "-s4", "-I", "fire.png", "-f", "0.7", "-A", "euler_a"))  # random seed
    [(again, _)] = saved(run_cli("--from", first))
    assert again != first and np.array_equal(pixels(again), pixels(first))
    assert stored(again)["seed"] == stored(first)["seed"]

    # Switches given with --from override the stored ones.
    [(changed, command)] = saved(run_cli("--from", first, "-s5", "--negative", "smoke"))
    meta = stored(changed)
    assert (meta["steps"], meta["negative_prompt"], meta["seed"]) == (5, "smoke", stored(first)["seed"])
    assert "-s5" in command and not np.array_equal(pixels(changed), pixels(first))


def test_from_reproduces_a_fitted_output(workdir, shared_model):
    """With --fit the stored -W/-H are the box the init was shrunk into: re-fitting into the
    output's own (rounded-down) size would shrink it again and change every pixel."""
    sketch(width=200, height=150, seed=2).save(workdir / "wide.png")
    [(first, command)] = saved(run_cli("fire", "-s4", "-S8", "-I", "wide.png", "-f", "0.6", "--fit", "-W128", "-H128"))
    assert Image.open(first).size == (128, 96) and "-W128 -H128" in command
    [(again, _)] = saved(run_cli("--from", first))
    assert np.array_equal(pixels(again), pixels(first))


def test_stored_line_as_one_argument_reproduces_the_output(workdir, shared_model):
    """The line printed after each output (and kept in its PNG) re-runs it, here txt2img."""
    [(first, command)] = saved(run_cli("the sun and a cloud", "-s4", "-S5", "-W", "64", "-H", "96"))
    assert command == stored(first)["command"]
    assert Image.open(first).size == (64, 96)
    [(again, _)] = saved(run_cli(command))
    assert np.array_equal(pixels(again), pixels(first))


def test_from_finds_the_init_image_in_the_outputs_folder(workdir, shared_model, tmp_path_factory, monkeypatch):
    """The stored init path is relative to where the output was made; run elsewhere, --from
    still finds the upload beside the output, by its id."""
    [(first, _)] = saved(run_cli("fire", "-s4", "-S3", "-I", "fire.png", "-f", "0.5"))
    assert not Path(stored(first)["init_image"]["path"]).is_absolute()
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    [(again, _)] = saved(run_cli("--from", workdir / first, "--outputs", "out"))
    assert again.parent == Path("out") and np.array_equal(pixels(again), pixels(workdir / first))


def test_variation_is_reproduced_by_its_stored_line(workdir, shared_model):
    [(base, _)] = saved(run_cli("fire", "-s4", "-S42", "-I", "fire.png", "-f", "0.8"))
    [(variant, command)] = saved(run_cli("fire", "-s4", "-S42", "-I", "fire.png", "-f", "0.8", "-v", "0.3"))
    meta = stored(variant)
    assert meta["seed"] == 42 and len(meta["with_variations"]) == 1 and meta["with_variations"][0][1] == 0.3
    assert "-V" in shlex.split(command) and "-v" not in shlex.split(command)
    assert not np.array_equal(pixels(variant), pixels(base))
    [(again, _)] = saved(run_cli(command))
    assert np.array_equal(pixels(again), pixels(variant))
    [(again_from, _)] = saved(run_cli("--from", variant))
    assert np.array_equal(pixels(again_from), pixels(variant))


def test_iterations_save_each_output_with_its_own_command(workdir, shared_model):
    result = run_cli("fire", "-s4", "-S9", "-I", "fire.png", "-f", "0.5", "-n", "2")
    outputs = saved(result)
    assert len(outputs) == 2 and len({path for path, _ in outputs}) == 2
    assert result.stderr.count("Generating 1/2") == 1 and result.stderr.count("Generating 2/2") == 1
    assert not any("-n" in shlex.split(command) for _, command in outputs)
    # The second one started from the first: its stored settings name that as the init image.
    second = outputs[1][0]
    assert stored(second)["init_image"]["id"] != stored(outputs[0][0])["init_image"]["id"]
    [(again, _)] = saved(run_cli("--from", second))
    assert np.array_equal(pixels(again), pixels(second))


def test_save_intermediates(workdir, shared_model):
    result = run_cli("fire", "-s4", "-S1", "-I", "fire.png", "-f", "0.5", "--save-intermediates", "vae")
    [(path, command)] = saved(result)
    assert "--save-intermediates" not in command  # a reproduction need not save them again
    assert "Intermediates saved in" in result.stderr
    folder = Path(result.stderr.split("Intermediates saved in ", 1)[1].splitlines()[0])
    assert folder.is_dir() and any(folder.iterdir())


def test_progress_follows_the_engines_steps_without_previews(tmp_path):
    """With previews off no job_step frames come; the engine's cancel check before each step
    (and once before decoding) moves the bar instead."""
    from server.cli.terminal import StepProgress

    progress = StepProgress(tmp_path)
    progress.poll()  # before any plan: ignored
    progress.emit("job_plan", {"taken": 3, "steps_total": 5, "item": 0, "items": 1})
    steps = []
    for _ in range(4):
        progress.poll()
        steps.append(progress.done)
    assert steps == [0, 1, 2, 3]
    progress.emit("job_step", {"index": 2, "steps_total": 5})  # frames, when drawn, agree
    assert progress.done == 3
    progress.close()


def test_the_models_recommended_settings_fill_what_no_switch_sets(workdir, tiny_model):
    folder = workdir / "recommends"
    tiny_model.pipe.save_pretrained(folder)
    (folder / "studio_defaults.json").write_text(json.dumps({"cfg_scale": 3.0, "steps": 3}))
    [(recommended, command)] = saved(run_cli("fire", "--model", folder, "-S", "4"))
    assert (stored(recommended)["cfg_scale"], stored(recommended)["steps"]) == (3.0, 3)
    assert "-s3 " in command and "-C3 " in command  # the stored line reproduces it without the file
    [(chosen, _)] = saved(run_cli("fire", "--model", folder, "-S", "4", "-C", "6"))
    assert (stored(chosen)["cfg_scale"], stored(chosen)["steps"]) == (6, 3)
