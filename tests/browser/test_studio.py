"""The page against the real server: upload, plan counts, live steps, cancel, drawing, screenshots."""
from __future__ import annotations

import re
import time

from playwright.sync_api import expect

from studio_page import RUN_TIMEOUT_MS, sketch_png, transparent_png


def test_upload_sketch_and_watch_the_steps(studio, server):
    studio.upload_sketch()
    studio.prompt.fill("a cozy house on a green hill, watercolor")
    studio.set_steps(10)
    studio.set_strength(0.7)
    expect(studio.plan_summary).to_contain_text("7 taken / 3 skipped")
    before = set(server.saved_files())

    studio.generate()
    studio.wait_for_state("done")

    expect(studio.cells).to_have_count(10)
    expect(studio.cells_in("skipped")).to_have_count(3)
    for cell in studio.cells_in("skipped").all():
        expect(cell).to_contain_text("skipped")
    # The init frame has its own cell before the first taken one; step 0 filled that first taken cell.
    entry = studio.cells.nth(3)
    expect(entry).to_have_attribute("data-state", "done")
    expect(studio.strip_init_image).to_have_attribute("src", re.compile(r"^blob:"))
    expect(studio.cells_in("done")).to_have_count(7)
    for cell in studio.cells_in("done").all():
        expect(cell.locator("img").first).to_have_attribute("src", re.compile(r"^blob:"))

    expect(studio.output).to_be_visible()
    name = studio.output_name()
    assert (server.outputs / name).is_file(), f"{name} is not in {server.outputs}"
    assert set(server.saved_files()) - before == {server.outputs / name}
    expect(studio.progress).to_contain_text("Done")
    # The gallery refreshes with the new image first.
    expect(studio.gallery_output_thumb(0)).to_have_attribute("src", f"/outputs/{name}")
    expect(studio.gallery_init_thumb(0)).to_have_attribute("src", re.compile(r"^/api/uploads/[0-9a-f]{16}$"))


def test_slider_updates_the_plan_before_anything_runs(studio, server):
    studio.upload_sketch()
    studio.set_steps(10)
    studio.set_strength(0.7)
    expect(studio.plan_summary).to_contain_text("7 taken / 3 skipped")
    before = set(server.saved_files())

    studio.strength_keys("ArrowLeft", 30)  # 0.70 -> 0.40, one keyboard step at a time
    expect(studio.strength_value).to_have_text("0.40")
    expect(studio.plan_summary).to_contain_text("4 taken / 6 skipped")
    expect(studio.cells_in("skipped")).to_have_count(6)
    expect(studio.cells_in("pending")).to_have_count(4)

    # Nothing ran: Live is off, no job state, no new file.
    expect(studio.live).not_to_be_checked()
    expect(studio.progress).to_have_attribute("data-state", "idle")
    expect(studio.cells_in("done")).to_have_count(0)
    assert set(server.saved_files()) == before


def test_cancel_mid_run_stops_the_strip(studio, server, screenshots_dir):
    studio.upload_sketch()
    studio.set_steps(200)  # the tiny model is quick: give cancel room to land mid-run
    studio.set_strength(1.0)
    before = set(server.saved_files())

    studio.generate()
    expect(studio.cells_in("done").nth(2)).to_be_attached(timeout=RUN_TIMEOUT_MS)
    studio.screenshot(screenshots_dir / "studio-running-1280x800.png")
    studio.cancel_button.click()
    studio.wait_for_state("cancelled", timeout=30_000)
    expect(studio.progress).to_contain_text("Cancelled")

    done = studio.cells_in("done").count()
    time.sleep(1.5)
    assert studio.cells_in("done").count() == done, "frames kept arriving after the cancel"
    assert done < 200
    expect(studio.cells_in("pending").first).to_be_attached()
    expect(studio.output).to_be_hidden()
    expect(studio.cancel_button).to_be_disabled()
    assert set(server.saved_files()) == before, "a cancelled run saved an image"


def test_draw_on_the_canvas_and_generate(studio, server):
    studio.draw_scribble()  # no separate "use" step: what the pad shows is the init
    expect(studio.init_thumb).to_be_attached(timeout=15_000)
    expect(studio.upload_error).to_be_hidden()
    size = studio.native_size
    expect(studio.init_size).to_contain_text(f"{size}×{size}")
    studio.set_steps(8)
    studio.set_strength(0.6)

    studio.prompt.focus()
    studio.page.keyboard.press("Control+Enter")  # the keyboard shortcut for Generate
    studio.wait_for_state("done")
    expect(studio.output).to_be_visible()
    assert (server.outputs / studio.output_name()).is_file()


def test_upload_error_is_shown_inline(studio):
    studio.upload_input.set_input_files({"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not an image"})
    expect(studio.upload_error).to_be_visible(timeout=10_000)
    expect(studio.upload_error).to_contain_text("not an image")


def test_settings_survive_a_reload(studio):
    studio.prompt.fill("a lighthouse at dusk")
    studio.set_steps(12)
    studio.set_strength(0.55)
    studio.page.reload()
    studio.open()
    expect(studio.prompt).to_have_value("a lighthouse at dusk")
    expect(studio.steps).to_have_value("12")
    expect(studio.strength_value).to_have_text("0.55")


def test_a_fresh_page_starts_at_the_models_recommended_settings(studio, screenshots_dir):
    from server.engine.loading import DEMO_MODEL_DIR
    from server.engine.model_defaults import read_model_defaults

    cfg = read_model_defaults(DEMO_MODEL_DIR)["cfg_scale"]  # the server runs the demo model
    expect(studio.cfg_scale).to_have_value(f"{cfg:g}")
    expect(studio.recommended).to_be_hidden()
    studio.cfg_scale.fill("7.5")
    studio.cfg_scale.blur()
    expect(studio.recommended).to_be_visible()
    expect(studio.recommended).to_contain_text(f"This model recommends CFG scale {cfg:g}.")
    studio.recommended.scroll_into_view_if_needed()
    studio.screenshot(screenshots_dir / "studio-recommended-cfg.png")
    studio.recommended.get_by_role("button", name="Apply").click()
    expect(studio.cfg_scale).to_have_value(f"{cfg:g}")
    expect(studio.recommended).to_be_hidden()
    studio.page.reload()  # the person's choice is stored like any other setting
    studio.open()
    expect(studio.cfg_scale).to_have_value(f"{cfg:g}")


def test_screenshots(studio, server, screenshots_dir):
    studio.upload_sketch()
    studio.prompt.fill("a cozy house on a green hill, watercolor")
    studio.set_steps(10)
    studio.set_strength(0.7)
    studio.generate()
    studio.wait_for_state("done")
    studio.cells.nth(5).locator("button").first.click()  # a step shown large
    studio.page.mouse.move(0, 0)
    studio.screenshot(screenshots_dir / "studio-1280x800.png")

    studio.page.set_viewport_size({"width": 800, "height": 1000})
    studio.page.wait_for_timeout(300)
    studio.screenshot(screenshots_dir / "studio-800-wide.png", full_page=True)

    studio.page.set_viewport_size({"width": 1280, "height": 800})
    studio.draw_scribble()
    studio.screenshot(screenshots_dir / "studio-drawing-1280x800.png")


def test_gallery_restores_settings(studio, server, screenshots_dir):
    studio.upload_sketch()
    studio.prompt.fill("a red barn under snow")
    studio.set_steps(6)
    studio.set_strength(0.5)
    studio.generate()
    studio.wait_for_state("done")
    name = studio.output_name()
    seed = name.split(".")[1]  # outputs are NNNNNN.SEED.png
    listed = studio.page.request.get(server.base_url + "/api/outputs").json()
    init = next(item for item in listed if item["name"] == name)["metadata"]["init_image"]
    upload_url = f"/api/uploads/{init['id']}"
    assert init["url"] == upload_url

    # Another session: other settings, no init image.
    studio.prompt.fill("something else")
    studio.set_strength(0.9)
    studio.set_steps(20)
    studio.init_clear.click()
    expect(studio.init_thumb).to_be_hidden()
    expect(studio.init_size).to_contain_text("No init image")

    item = studio.gallery_item(0)
    expect(item).to_contain_text("a red barn under snow")
    expect(item).to_contain_text(f"seed {seed}")
    expect(item.locator("a[download]")).to_have_attribute("href", f"/outputs/{name}")
    expect(studio.gallery_init_thumb(0)).to_have_attribute("src", upload_url)
    item.get_by_role("button", name="Use these settings").click()

    expect(studio.prompt).to_have_value("a red barn under snow")
    expect(studio.strength_value).to_have_text("0.50")
    expect(studio.steps).to_have_value("6")
    expect(studio.seed).to_have_value(seed)
    expect(studio.page.locator("#random-seed")).not_to_be_checked()
    # The init image is back exactly as after its upload: thumbnail, size line, img2img plan.
    studio.expect_init_loaded(upload_url)
    size = studio.native_size
    expect(studio.init_size).to_contain_text(f"{size}×{size}")
    expect(studio.page.locator("#init-note")).to_be_hidden()
    expect(studio.upload_error).to_be_hidden()
    expect(studio.plan_summary).to_contain_text("3 taken / 3 skipped")
    studio.page.mouse.move(0, 0)
    studio.scroll_controls_to_top()
    studio.screenshot(screenshots_dir / "studio-gallery-restored-1280x800.png")

    # The upload was deleted meanwhile: say so inline and fall back to text-to-image.
    studio.page.route(f"**{upload_url}", lambda route: route.fulfill(
        status=404, json={"error": f"No upload with id {init['id']}. Upload the image again."}))
    studio.init_clear.click()
    item.get_by_role("button", name="Use these settings").click()
    expect(studio.upload_error).to_be_visible(timeout=10_000)
    expect(studio.upload_error).to_contain_text(f"No upload with id {init['id']}")
    expect(studio.init_thumb).to_be_hidden()
    expect(studio.init_size).to_contain_text("No init image")
    expect(studio.plan_summary).to_contain_text("txt2img")
    expect(studio.prompt).to_have_value("a red barn under snow")
    studio.scroll_controls_to_top()
    studio.screenshot(screenshots_dir / "studio-gallery-init-missing-1280x800.png")


def test_drop_a_png_on_the_drop_zone(studio):
    studio.drop_file("dropped.png", "image/png", sketch_png(160))
    expect(studio.upload_error).to_be_hidden()
    studio.expect_init_loaded(re.compile(r"^data:image/png"))
    expect(studio.init_size).to_contain_text("160×160")
    expect(studio.init_clear).to_be_visible()


def test_paste_an_image(studio):
    studio.prompt.fill("a red ball")
    # A text paste is left to the prompt; an image paste becomes the init image.
    assert studio.paste_file("note.txt", "text/plain", b"just words") is False
    assert studio.paste_file("clip.png", "image/png", transparent_png(96, 64)) is True
    studio.expect_init_loaded(re.compile(r"^data:image/png"))
    expect(studio.init_size).to_contain_text("96×64")
    # Transparency means inpainting, and the page says so beside the init image.
    expect(studio.inpaint_notice).to_be_visible()
    expect(studio.inpaint_notice).to_have_text("The transparent area will be repainted; the rest stays as it is.")
    expect(studio.prompt).to_have_value("a red ball")


def test_reconnect_keeps_the_page(studio):
    studio.upload_sketch()
    studio.prompt.fill("a lighthouse in fog")
    studio.record_connection_states()

    studio.page.context.set_offline(True)  # Chromium closes the live websocket
    expect(studio.connection).not_to_have_attribute("data-state", "connected", timeout=10_000)
    expect(studio.connection).to_have_attribute("data-state", re.compile("disconnected|reconnecting"))
    studio.page.context.set_offline(False)
    expect(studio.connection).to_have_attribute("data-state", "connected", timeout=20_000)
    expect(studio.connection).to_contain_text("connected")

    states = studio.connection_states()
    assert states[0] == "connected" and states[-1] == "connected", states
    assert "disconnected" in states, states
    assert states.index("disconnected") < len(states) - 1, states
    expect(studio.prompt).to_have_value("a lighthouse in fog")
    studio.expect_init_loaded()
    expect(studio.by_testid("model-status")).to_have_attribute("data-status", "ready")
    expect(studio.plan_summary).to_contain_text("taken")
