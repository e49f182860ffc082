"""The HTTP half of the contract: health, uploads, plan, outputs."""
import io

import numpy as np
import pytest
from PIL import Image

from tests.helpers import png_bytes, sketch, upload


def files_under(folder):
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def post_image(client, data: bytes, name="x.png"):
    return client.post("/api/uploads", data={"image": (io.BytesIO(data), name)}, content_type="multipart/form-data")


def test_health_reports_model_device_and_queue(ready_app, client):
    health = client.get("/api/health").json
    assert health["status"] == "ready" and health["device"] == "cpu" and health["queue_length"] == 0
    # The tests' tiny model is not the demo model, though no --model was given.
    assert health["native_size"] == 128 and health["is_demo"] is False and health["model"].startswith("tiny")


def test_plan_endpoint_is_the_engines_plan(client):
    plan = client.get("/api/plan?steps=10&strength=0.7").json
    assert (plan["steps_total"], plan["skipped"], plan["taken"]) == (10, 3, 7)
    assert len(plan["timesteps"]) == len(plan["sigmas"]) == 10
    assert client.get("/api/plan?steps=10&strength=0.4").json["taken"] == 4
    exact = client.get("/api/plan?steps=10&strength=0.4&exact_steps=1").json
    assert exact["taken"] == 10 and exact["steps_total"] == 25


def test_plan_endpoint_raises_the_total_for_a_minimum_of_taken_steps(client):
    # 20 steps at strength 0.3 take int(20 * 0.3) = 6; at least 10 needs 34 (int(34 * 0.3) = 10).
    plain = client.get("/api/plan?steps=20&strength=0.3").json
    assert (plain["steps_total"], plain["taken"], plain["raised_for_min_taken"]) == (20, 6, False)
    raised = client.get("/api/plan?steps=20&strength=0.3&min_taken_steps=10").json
    assert (raised["steps_total"], raised["skipped"], raised["taken"]) == (34, 24, 10)
    assert (raised["steps_requested"], raised["min_taken_steps"], raised["raised_for_min_taken"]) == (20, 10, True)
    assert len(raised["timesteps"]) == len(raised["sigmas"]) == 34
    lcm = client.get("/api/plan?steps=4&strength=0.3&min_taken_steps=2&sampler=lcm").json
    assert (lcm["steps_total"], lcm["taken"]) == (7, 2)  # int(6 * 0.3) = 1, int(7 * 0.3) = 2


@pytest.mark.parametrize("query", ["steps=ten&strength=0.5", "steps=10&strength=2", "steps=10&strength=0.5&sampler=x",
                                   "steps=10&strength=0.5&min_taken_steps=many",
                                   "steps=10&strength=0.5&min_taken_steps=-1",
                                   "steps=4&strength=0.05&min_taken_steps=4&sampler=lcm"])
def test_plan_endpoint_rejects_bad_numbers(client, query):
    response = client.get(f"/api/plan?{query}")
    assert response.status_code == 400 and response.json["error"]


def test_upload_returns_id_size_and_alpha(client, app):
    rgba = sketch(width=96, height=64, seed=1).convert("RGBA")
    arr = np.asarray(rgba).copy()
    arr[:10, :10] = [12, 200, 34, 0]  # fully transparent, with a colour underneath that must survive
    info = upload(client, Image.fromarray(arr, "RGBA"))
    assert (info["width"], info["height"], info["has_alpha"]) == (96, 64, True)
    stored = app.extensions["studio"].studio.uploads.load(info["id"])
    assert np.array_equal(np.asarray(stored), arr)


def test_upload_applies_exif_orientation(client, app):
    wide = sketch(width=80, height=40, seed=2)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    response = post_image(client, png_bytes(wide, "JPEG", exif=exif.tobytes(), quality=95), "photo.jpg")
    assert response.status_code == 201
    assert (response.json["width"], response.json["height"]) == (40, 80)


def test_bad_uploads_get_4xx_and_write_nothing(client, app):
    outputs_dir = app.extensions["studio"].studio.outputs_dir
    uploads_dir = outputs_dir / "uploads"
    before = files_under(outputs_dir)
    good_png = png_bytes(sketch(seed=3))
    bomb = Image.new("1", (20000, 20000))  # compresses to a few KB, 400 megapixels decoded
    cases = {
        "text": (b"this is not an image", 400, "not an image"),
        "truncated": (good_png[: len(good_png) // 2], 400, "truncated"),
        "svg": (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', 415, "SVG"),
        "bomb": (png_bytes(bomb, optimize=True), 413, "megapixels"),
        "empty": (b"", 400, "empty"),
    }
    for label, (data, status, fragment) in cases.items():
        response = post_image(client, data)
        assert response.status_code == status, (label, response.json)
        assert fragment.lower() in response.json["error"].lower(), (label, response.json)
    missing = client.post("/api/uploads", data={}, content_type="multipart/form-data")
    assert missing.status_code == 400 and "'image'" in missing.json["error"]
    assert files_under(outputs_dir) == before
    assert not uploads_dir.exists() or files_under(uploads_dir) == []


def test_oversized_request_is_413_with_the_limit(tmp_path, tiny_model):
    from server.web.app import create_app

    app = create_app({"OUTPUTS_DIR": str(tmp_path / "o"), "ASYNC_MODE": "threading", "MAX_UPLOAD_MB": 1},
                     model=tiny_model)
    try:
        response = post_image(app.test_client(), b"\0" * (2 * 1024 * 1024))
        assert response.status_code == 413 and "1 MB" in response.json["error"]
        assert files_under(tmp_path / "o" / "uploads") == []
    finally:
        app.extensions["studio"].shutdown()


@pytest.mark.parametrize("name", ["../pyproject.toml", "..%2Fpyproject.toml", "uploads/x.png", "/etc/passwd",
                                  "000001.1.png", ".cache"])
def test_outputs_route_cannot_escape_or_guess(client, name):
    assert client.get(f"/outputs/{name}", follow_redirects=True).status_code == 404


def test_uploaded_image_can_be_fetched_back(client):
    image = sketch(width=64, height=48, seed=9)
    info = upload(client, image)
    response = client.get(f"/api/uploads/{info['id']}")
    assert response.status_code == 200 and response.mimetype == "image/png"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(response.data))), np.asarray(image))
    assert client.get("/api/uploads/../../pyproject.toml", follow_redirects=True).status_code == 404
    assert client.get("/api/uploads/0123456789abcdef").status_code == 404
