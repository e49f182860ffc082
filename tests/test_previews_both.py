"""Previews that read as pictures: each step's message carries the strip's x_t and the large view's
predicted result x0, and `preview: "auto"` picks both decoders per model from measured cost.

How long things take is never asserted. Where a test needs a model whose UNet or VAE is slow, a
timing double declares extra seconds for its calls on a virtual clock (time.perf_counter plus what
the doubles declared): the calls still run for real, and a shared, busy machine cannot flip the
outcome, because the declared seconds dwarf the real ones.
"""
from __future__ import annotations

import io
import time

import pytest
from PIL import Image

from server.engine import GenerationRequest, generate
from server.worker.job_previews import JobPreviews
from server.engine.preview_budget import PROBE_SIDE, PreviewBudget
from tests.helpers import collect_events, job_ended, sketch, upload

SLOW_UNET_S = 100.0  # declared per UNet call: any real decode is well under 10% of it


class VirtualTime:
    """time.perf_counter, plus the seconds the timing doubles below have declared so far."""

    def __init__(self, monkeypatch):
        self.extra = 0.0
        real = time.perf_counter
        monkeypatch.setattr(time, "perf_counter", lambda: real() + self.extra)
        self._monkeypatch = monkeypatch

    def slow_down(self, obj, method: str, seconds):
        """Each call of obj.method also 'takes' seconds() more (a callable, so a test can change it)."""
        original = getattr(obj, method)

        def slowed(*args, **kwargs):
            out = original(*args, **kwargs)
            self.extra += seconds()
            return out

        self._monkeypatch.setattr(obj, method, slowed)


@pytest.fixture
def demo(demo_model):
    """The demo model with a fresh preview budget (the session's model is shared between tests)."""
    kept = demo_model.previews.budget
    demo_model.previews.budget = PreviewBudget()
    yield demo_model
    demo_model.previews.budget = kept


@pytest.fixture
def demo_app(tmp_path, demo):
    from tests.helpers import preloaded_app

    app = preloaded_app(tmp_path, demo)
    yield app
    app.extensions["studio"].shutdown()


def run_job(app, payload):
    from server.web.realtime import socketio

    sio = socketio.test_client(app, flask_test_client=app.test_client())
    job_id = sio.emit("generate", payload, callback=True)["job_id"]
    events = [(n, p) for n, p in collect_events(sio, job_ended(job_id)) if p.get("job_id") == job_id]
    sio.disconnect()
    assert events[-1][0] == "job_done", events[-1]
    return events


def decoded(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def engine_frames(model, payload, init_image):
    """The job's step frames, from running the engine again with the same settings."""
    frames = []
    request = GenerationRequest.from_payload(payload, defaults=model.defaults)
    generate(model, request, init_image, on_step=frames.append)
    return frames


def test_auto_and_both_by_default_each_step_carries_x_t_and_the_vae_decoded_x0(demo_app, demo, monkeypatch):
    """With the UNet slow enough that the demo VAE fits the budget, "auto" picks the VAE for the large
    view's x0 and the patch decoder for the strip's x_t (it fits beside the VAE): both 8x the latent
    size, one message per step."""
    clock = VirtualTime(monkeypatch)
    clock.slow_down(demo.pipe.unet, "forward", lambda: SLOW_UNET_S)
    client = demo_app.test_client()
    init = upload(client, sketch(seed=4))
    payload = {"prompt": "a red house on green grass", "init_image": init["id"], "steps": 10, "strength": 0.7,
               "seed": 11}
    events = run_job(demo_app, payload)

    plan = events[0][1]
    assert plan["preview"] == {"decoder": "vae", "width": 128, "height": 128,
                               "strip": {"decoder": "patch", "width": 128, "height": 128}}
    steps = [p for n, p in events if n == "job_step"]
    assert [s["index"] for s in steps] == [-1, *range(plan["taken"])]
    init_frame, taken = steps[0], steps[1:]
    assert init_frame["kind"] == "init" and "x0_image" not in init_frame  # one picture

    studio = demo_app.extensions["studio"].studio
    frames = engine_frames(demo, payload, studio.uploads.load(init["id"]))[1:]
    renderer = demo.previews
    for message, frame in zip(taken, frames, strict=True):
        assert message["kind"] == "x_t" and message["mime"] == "image/jpeg"
        x_t, x0 = decoded(message["image"]), decoded(message["x0_image"])
        assert x_t.size == (message["width"], message["height"]) == (128, 128)
        assert x0.size == (message["x0_width"], message["x0_height"]) == (128, 128)  # 8x the 16x16 latents
        assert message["image"] == renderer.encode(renderer.render(frame.latents, "patch"))[0]
        assert message["x0_image"] == renderer.encode(renderer.render(frame.x0, "vae"))[0]


def test_auto_draws_with_the_patch_decoder_when_the_vae_is_slow(demo_app, demo, monkeypatch):
    clock = VirtualTime(monkeypatch)
    clock.slow_down(demo.pipe.unet, "forward", lambda: SLOW_UNET_S)
    clock.slow_down(demo.pipe.vae, "decode", lambda: 0.3 * SLOW_UNET_S)  # 30% of a step
    events = run_job(demo_app, {"prompt": "a blue lake", "steps": 4, "seed": 2})
    plan = events[0][1]
    assert plan["preview"] == {"decoder": "patch", "width": 128, "height": 128,
                               "strip": {"decoder": "patch", "width": 128, "height": 128}}
    taken = [p for n, p in events if n == "job_step" and p["index"] >= 0]
    assert taken and all(decoded(s["x0_image"]).size == decoded(s["image"]).size == (128, 128) for s in taken)


@pytest.mark.parametrize("patch_share, large, strip", [
    (0.06, "patch", "latent"),  # one patch picture fits the 10% budget, two do not: the strip keeps the map
    (0.3, "latent", "latent"),  # nothing but the map fits
])
def test_auto_falls_to_the_map_where_the_patch_decoder_does_not_fit(demo, monkeypatch, patch_share, large, strip):
    clock = VirtualTime(monkeypatch)
    clock.slow_down(demo.pipe.unet, "forward", lambda: SLOW_UNET_S)
    clock.slow_down(demo.pipe.vae, "decode", lambda: 0.3 * SLOW_UNET_S)
    clock.slow_down(demo.previews.patch, "apply", lambda: patch_share * SLOW_UNET_S)
    request = GenerationRequest.from_payload({"prompt": "a blue lake", "steps": 4, "seed": 2}, defaults=demo.defaults)
    # 64 px: 8x8 latents, the probe's own size, so each UNet call is one step (nothing is scaled).
    info = JobPreviews(demo, request, 64, 64).plan_info()
    sizes = {"latent": 8, "patch": 64}
    assert info == {"decoder": large, "width": sizes[large], "height": sizes[large],
                    "strip": {"decoder": strip, "width": sizes[strip], "height": sizes[strip]}}


def test_a_vae_found_over_budget_during_a_job_gives_way_to_the_patch_decoder_for_the_rest_and_the_model(
        demo, monkeypatch):
    clock = VirtualTime(monkeypatch)
    clock.slow_down(demo.pipe.unet, "forward", lambda: SLOW_UNET_S)
    request = GenerationRequest.from_payload({"prompt": "a yellow sun", "steps": 8, "seed": 5},
                                             defaults=demo.defaults)
    budget = demo.previews.budget
    previews = JobPreviews(demo, request, 128, 128)  # probes: the VAE fits
    assert previews.plan_info()["decoder"] == "vae"

    # From the job's third decode on (the init frame's, step 0's, then step 1's), the VAE turns slow.
    decodes = {"n": 0}

    def declared():
        decodes["n"] += 1
        return 0.3 * SLOW_UNET_S if decodes["n"] >= 3 else 0.0

    clock.slow_down(demo.pipe.vae, "decode", declared)
    seen = []

    def on_step(frame):
        drawn_by = previews.large
        payload = previews.step_payload(frame)
        seen.append((payload.get("x0_width"), previews.plan_info()["decoder"]))
        if frame.x0 is not None and drawn_by == "patch":  # the patch decoder's picture, as a decode draws it
            assert payload["x0_image"] == demo.previews.encode(demo.previews.render(frame.x0, "patch"))[0]

    generate(demo, request, None, on_step=on_step)
    # Step 0's decode fits, step 1's does not: the median of the two is over budget, so from step 2
    # on the large view is drawn by the patch decoder, still at the full size.
    assert seen == [(None, "vae"), (128, "vae"), (128, "patch")] + [(128, "patch")] * 6
    assert budget.summary()["rejected"] == ["vae"]
    again = JobPreviews(demo, request, 128, 128)
    assert again.plan_info()["decoder"] == "patch"  # the model remembers


def test_a_strip_that_pushes_the_step_over_budget_falls_back_to_the_map(demo, monkeypatch):
    """The x0 picture alone fits; with the strip's patch picture grown to 15% of a step, the step's
    preview work does not, and the strip (not the large view) steps down."""
    clock = VirtualTime(monkeypatch)
    clock.slow_down(demo.pipe.unet, "forward", lambda: SLOW_UNET_S)
    request = GenerationRequest.from_payload({"prompt": "a yellow sun", "steps": 8, "seed": 5},
                                             defaults=demo.defaults)
    previews = JobPreviews(demo, request, 128, 128)
    assert previews.plan_info()["strip"]["decoder"] == "patch"
    clock.slow_down(demo.previews.patch, "apply", lambda: 0.15 * SLOW_UNET_S)
    seen = []
    generate(demo, request, None, on_step=lambda frame: seen.append(
        (previews.step_payload(frame)["width"], previews.plan_info()["strip"]["decoder"])))
    # Steps 0 and 1 (medians of two: clearly over only from the second sample on) then the strip's map.
    assert seen[0] == (128, "patch")  # the init frame: drawn by the large view's decoder
    assert seen[1:3] == [(128, "patch"), (128, "latent")]
    assert seen[3:] == [(16, "latent")] * 6
    assert previews.plan_info()["decoder"] == "vae"


def test_the_probe_never_decodes_a_large_model_at_full_size(demo, monkeypatch):
    """When the small probe says a probe at the job's size would be costly, its figures are scaled
    (but the patch decoder's, which is cheap at any size)."""
    clock = VirtualTime(monkeypatch)
    clock.slow_down(demo.pipe.unet, "forward", lambda: SLOW_UNET_S)
    shapes = []
    original = demo.pipe.vae.decode
    monkeypatch.setattr(demo.pipe.vae, "decode", lambda z, *a, **k: shapes.append(tuple(z.shape[-2:])) or original(
        z, *a, **k))
    patched = []
    original_apply = demo.previews.patch.apply
    monkeypatch.setattr(demo.previews.patch, "apply",
                        lambda z: patched.append(tuple(z.shape[-2:])) or original_apply(z))
    choice = demo.previews.budget.choose(demo.pipe.unet, demo.previews, (64, 64))
    assert set(shapes) == {(PROBE_SIDE, PROBE_SIDE)} and choice.costs.source == "scaled"
    assert (64, 64) in patched  # the patch decoder costs milliseconds: timed at the job's own size
    assert (choice.large, choice.strip) == ("vae", "patch")


@pytest.mark.parametrize("kind", ["x_t", "x0"])
def test_x_t_and_x0_kinds_still_send_one_picture(ready_app, client, tiny_model, kind):
    init = upload(client, sketch(seed=2))
    payload = {"prompt": "fire", "init_image": init["id"], "steps": 6, "strength": 0.5, "seed": 3,
               "preview": "latent", "preview_kind": kind}
    events = run_job(ready_app, payload)
    assert events[0][1]["preview"] == {"decoder": "latent", "width": 16, "height": 16}
    taken = [p for n, p in events if n == "job_step" and p["index"] >= 0]
    frames = engine_frames(tiny_model, payload, ready_app.extensions["studio"].studio.uploads.load(init["id"]))[1:]
    renderer = tiny_model.previews
    for message, frame in zip(taken, frames, strict=True):
        assert message["kind"] == kind and "x0_image" not in message
        assert message["image"] == renderer.encode(renderer.render(frame.latents, "latent"))[0]


def test_previews_off_plans_no_pictures(ready_app):
    events = run_job(ready_app, {"prompt": "sun", "steps": 3, "seed": 5, "preview": "off"})
    assert events[0][1]["preview"] == {"decoder": "off", "width": None, "height": None}
    assert [n for n, _ in events] == ["job_plan", "job_output", "job_done"]


@pytest.mark.parametrize("decodes, steps, over", [
    ([0.005, 0.006], [0.1, 0.1], False),  # 5-6% of a step
    ([0.02, 0.03], [0.1, 0.1], True),  # 20-30%: over
    ([0.02], [0.1], False),  # one sample at 2x the budget may be noise: wait for a second
    ([0.6], [0.1], True),  # one sample at 60%: clearly over
])
def test_the_over_budget_rule(decodes, steps, over):
    assert PreviewBudget(fraction=0.1).over_budget(decodes, steps) is over


def test_the_probe_calls_an_sdxl_unet_too(tmp_path):
    """SDXL's UNet also takes pooled text embeddings and size ids; a probe that could not call it
    would leave the model unmeasured (and on the latent map) without failing any job."""
    from tests.tiny_model import load_tiny_xl_model

    xl = load_tiny_xl_model("cpu", cache_dir=tmp_path)
    xl.previews.budget.choose(xl.pipe.unet, xl.previews, (16, 16))
    summary = xl.previews.budget.summary()
    assert summary["measured"] != "unmeasured" and set(summary["decode_ms"]) == {"vae", "patch"}
