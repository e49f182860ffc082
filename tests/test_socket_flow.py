"""The Socket.IO contract, driven by Flask-SocketIO's test client against the real worker."""
import io
import json

from PIL import Image

from server.channel import MessageChannel
from server.runtime import Runtime
from tests.helpers import collect_events, job_ended, sketch, upload, wait_until

TERMINAL = {"job_done", "job_cancelled", "job_error"}


def of_job(events, job_id, name=None):
    return [(n, p) for n, p in events if isinstance(p, dict) and p.get("job_id") == job_id
            and (name is None or n == name)]


def test_img2img_job_streams_plan_init_steps_then_done(ready_app, socket_client, client):
    sio = socket_client()
    init = upload(client, sketch(seed=1))
    # preview "latent": the map at 1x draws every picture ("auto" picks by measured cost, so sizes vary).
    ack = sio.emit("generate", {"prompt": "tree on a hill with a river", "init_image": init["id"], "steps": 10,
                                "strength": 0.7, "seed": 1592514025, "cfg_scale": 7.5, "preview": "latent"},
                   callback=True)
    job_id = ack["job_id"]
    events = of_job(collect_events(sio, job_ended(job_id)), job_id)
    names = [n for n, _ in events]
    assert names == ["job_plan"] + ["job_step"] * 8 + ["job_output", "job_done"]

    plan = events[0][1]
    assert (plan["mode"], plan["steps_total"], plan["skipped"], plan["taken"], plan["seed"]) == (
        "img2img", 10, 3, 7, 1592514025)
    steps = [p for n, p in events if n == "job_step"]
    assert [s["index"] for s in steps] == [-1, 0, 1, 2, 3, 4, 5, 6]
    assert [s["kind"] for s in steps] == ["init"] + ["x_t"] * 7
    assert [s["step"] for s in steps[1:]] == list(range(3, 10))
    assert [s["timestep"] for s in steps[1:]] == plan["timesteps"][3:]
    frame = Image.open(io.BytesIO(steps[3]["image"]))  # binary bytes, not base64
    assert frame.format == "JPEG" and frame.size == (steps[3]["width"], steps[3]["height"]) == (16, 16)

    done = events[-1][1]
    assert done["name"] == "000001.1592514025.png" and done["seed"] == 1592514025
    saved = ready_app.extensions["studio"].studio.outputs_dir / done["name"]
    with Image.open(saved) as png:
        assert png.size == (128, 128)
        parameters, stored = png.text["parameters"], json.loads(png.text["img2img-studio"])
    assert parameters.startswith("tree on a hill with a river\n")
    assert "Steps: 10" in parameters and "Denoising strength: 0.7" in parameters and "Seed: 1592514025" in parameters
    assert stored["taken"] == 7 and stored["skipped"] == 3 and stored["init_image"]["id"] == init["id"]
    assert "-s10" in stored["command"] and "-f 0.7" in stored["command"]
    listed = client.get("/api/outputs").json
    assert [o["name"] for o in listed] == [done["name"]]
    assert client.get(done["url"]).data == saved.read_bytes()


def test_txt2img_without_init_image(ready_app, socket_client):
    sio = socket_client()
    job_id = sio.emit("generate", {"prompt": "fire", "steps": 4, "seed": 5}, callback=True)["job_id"]
    events = of_job(collect_events(sio, job_ended(job_id)), job_id)
    assert events[0][1]["mode"] == "txt2img" and events[0][1]["taken"] == 4
    assert events[-1][0] == "job_done"


def test_previews_off_sends_no_step_frames(ready_app, socket_client):
    sio = socket_client()
    job_id = sio.emit("generate", {"prompt": "sun", "steps": 3, "seed": 5, "preview": "off"}, callback=True)["job_id"]
    names = [n for n, _ in of_job(collect_events(sio, job_ended(job_id)), job_id)]
    assert names == ["job_plan", "job_output", "job_done"]


def test_supersede_cancels_the_clients_running_and_queued_jobs(ready_app, socket_client):
    sio = socket_client()
    long = {"prompt": "hill", "steps": 200, "seed": 1}
    first = sio.emit("generate", long, callback=True)["job_id"]
    second = sio.emit("generate", long, callback=True)["job_id"]
    collect_events(sio, lambda ev: any(n == "job_step" for n, _ in of_job(ev, first)))
    third = sio.emit("generate", {"prompt": "hill", "steps": 3, "seed": 1, "supersede": True}, callback=True)["job_id"]
    events = collect_events(sio, job_ended(third))
    ends = {p["job_id"]: n for n, p in events if n in TERMINAL}
    assert ends == {first: "job_cancelled", second: "job_cancelled", third: "job_done"}


def test_per_client_cap_gives_a_clear_error(ready_app, socket_client):
    sio = socket_client()
    cap = ready_app.config["MAX_JOBS_PER_CLIENT"]
    ids = [sio.emit("generate", {"prompt": "x", "steps": 200, "seed": i}, callback=True)["job_id"] for i in range(cap)]
    refused = sio.emit("generate", {"prompt": "x", "steps": 5}, callback=True)
    assert "limit is 4" in refused["error"]
    # Another tab is not affected by this one's queue.
    other = socket_client()
    assert "job_id" in other.emit("generate", {"prompt": "x", "steps": 2, "seed": 1}, callback=True)
    for job_id in ids:
        assert sio.emit("cancel", {"job_id": job_id}, callback=True) == {"ok": True}
    events = collect_events(sio, lambda ev: all(job_ended(j)(ev) for j in ids))
    assert sorted(p["job_id"] for n, p in events if n == "job_cancelled") == sorted(ids)


def test_disconnect_cancels_the_clients_jobs(ready_app, socket_client):
    jobs = ready_app.extensions["studio"].jobs
    sio = socket_client()
    job_id = sio.emit("generate", {"prompt": "x", "steps": 200, "seed": 1}, callback=True)["job_id"]
    collect_events(sio, lambda ev: any(n == "job_step" for n, _ in ev))
    sio.disconnect()
    wait_until(lambda: jobs.job_state(job_id) is None, timeout=30)
    outputs = ready_app.extensions["studio"].studio.outputs
    assert outputs.list() == [], "a cancelled job saves nothing"


def test_a_client_cannot_cancel_another_clients_job(ready_app, socket_client):
    owner, stranger = socket_client(), socket_client()
    job_id = owner.emit("generate", {"prompt": "x", "steps": 6, "seed": 1}, callback=True)["job_id"]
    assert "error" in stranger.emit("cancel", {"job_id": job_id}, callback=True)
    events = collect_events(owner, job_ended(job_id))
    assert [n for n, p in events if n in TERMINAL] == ["job_done"]


def test_every_job_ends_exactly_once(ready_app, socket_client):
    sio = socket_client()
    ids = [sio.emit("generate", {"prompt": "x", "steps": s, "seed": 1}, callback=True)["job_id"] for s in (3, 40, 3)]
    sio.emit("cancel", {"job_id": ids[1]}, callback=True)
    events = collect_events(sio, lambda ev: all(job_ended(j)(ev) for j in ids))
    wait_until(lambda: ready_app.extensions["studio"].jobs.queue_length() == 0)
    events += collect_events(sio, lambda ev: True, timeout=1)
    ends = [(p["job_id"], n) for n, p in events if n in TERMINAL]
    assert sorted(ends) == sorted([(ids[0], "job_done"), (ids[1], "job_cancelled"), (ids[2], "job_done")])


def test_bad_requests_are_refused_in_the_ack(ready_app, socket_client):
    sio = socket_client()
    assert "upload it again" in sio.emit("generate", {"prompt": "x", "init_image": "0123456789abcdef"},
                                         callback=True)["error"].lower()
    assert "steps" in sio.emit("generate", {"prompt": "x", "steps": 0}, callback=True)["error"]
    assert "JSON object" in sio.emit("generate", "make art", callback=True)["error"]
    assert ready_app.extensions["studio"].jobs.queue_length() == 0


def test_model_status_is_sent_on_connect(ready_app, socket_client):
    sio = socket_client()
    events = collect_events(sio, lambda ev: any(n == "model_status" for n, _ in ev))
    status = next(p for n, p in events if n == "model_status")
    assert status["status"] == "ready" and status["progress"] == 1.0


def test_channel_drops_stale_frames_but_never_plans_or_results():
    channel = MessageChannel(Runtime("threading"))
    channel.put("job_plan", {"n": 0}, to="a")
    for i in range(5):
        channel.put("job_step", {"index": i}, to="a", latest_key="job-1")
    channel.put("job_step", {"index": 0}, to="b", latest_key="job-2")
    channel.put("job_done", {"n": 1}, to="a")
    taken = [(m.event, m.payload) for m in channel.take(timeout=0)]
    assert taken == [("job_plan", {"n": 0}), ("job_step", {"index": 4}), ("job_step", {"index": 0}),
                     ("job_done", {"n": 1})]
    assert channel.dropped == 4
    assert channel.take(timeout=0) == []


def test_min_taken_steps_raises_the_run_and_its_output_replays_it(ready_app, socket_client, client):
    """10 steps at strength 0.3 take int(10 * 0.3) = 3; at least 5 taken runs 17 (int(17 * 0.3) = 5)."""
    import numpy as np

    from server.cli import dream, recorded_settings
    from server.engine import GenerationRequest, generate

    sio = socket_client()
    init = upload(client, sketch(seed=4))
    ack = sio.emit("generate", {"prompt": "a barn", "init_image": init["id"], "steps": 10, "strength": 0.3,
                                "min_taken_steps": 5, "seed": 321, "cfg_scale": 2}, callback=True)
    events = of_job(collect_events(sio, job_ended(ack["job_id"])), ack["job_id"])
    plan = events[0][1]
    assert (plan["steps_total"], plan["skipped"], plan["taken"]) == (17, 12, 5)
    assert [p["index"] for n, p in events if n == "job_step"] == [-1, 0, 1, 2, 3, 4]

    studio = ready_app.extensions["studio"].studio
    saved = studio.outputs_dir / events[-1][1]["name"]
    with Image.open(saved) as png:
        parameters, stored = png.text["parameters"], json.loads(png.text["img2img-studio"])
        saved_pixels = np.asarray(png.convert("RGB"))
    assert (stored["steps"], stored["min_taken_steps"], stored["steps_total"], stored["taken"]) == (10, 5, 17, 5)
    assert "Steps: 17" in parameters  # A1111 takes int(17 x 0.3) = 5 of them too
    assert "--min-taken-steps 5" in stored["command"]
    assert dream.parse_line(stored["command"])["min_taken_steps"] == 5
    # Replaying the output's metadata (generate --from) plans and runs the same 17-step schedule.
    settings = recorded_settings.settings_from_metadata(stored)
    assert settings["min_taken_steps"] == 5
    request = GenerationRequest.from_payload(dream.request_payload(settings, init["id"]))
    replay = generate(studio.model, request, studio.uploads.load(init["id"]))
    assert replay.plan.steps_total == 17 and np.array_equal(np.asarray(replay.image), saved_pixels)
