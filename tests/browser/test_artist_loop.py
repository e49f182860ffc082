"""The artist's loop on the page: the pad is the init, jobs queue, batches, Live on every edit, keys."""
from __future__ import annotations

import json
import time

import numpy as np
from PIL import Image
from playwright.sync_api import expect

from studio_page import RUN_TIMEOUT_MS


def test_what_the_pad_shows_is_what_the_job_uses(studio, server):
    # Draw, erase a corner, and press Generate: no separate "use" step.
    studio.draw_scribble()
    studio.erase_rect(0.05, 0.05, 0.3, 0.3)
    expect(studio.inpaint_notice).to_be_visible()
    expect(studio.plan_summary).to_contain_text("inpaint")
    studio.set_steps(6)
    _run(studio, server)

    shown = np.asarray(studio.pad_as_sent())
    used = np.asarray(studio.job_init_of_last_output().convert("RGBA"))
    assert shown.shape == used.shape, (shown.shape, used.shape)
    assert (shown[..., 3] == 0).any(), "the eraser left nothing transparent on the pad"
    assert np.array_equal(shown[..., 3], used[..., 3]), "the job's transparency differs from the pad's checkerboard"
    assert np.array_equal(shown[..., :3], used[..., :3]), "the job's colours differ from the pad's (the RGB under alpha 0 included)"

    # Another stroke after the run: the next job uses the pad as it is now.
    studio.tool_brush.click()
    studio.draw_scribble()
    _run(studio, server)
    assert np.array_equal(np.asarray(studio.pad_as_sent()), np.asarray(studio.job_init_of_last_output().convert("RGBA")))


def test_an_upload_goes_on_the_pad_and_clearing_the_pad_means_no_init(studio):
    studio.upload_sketch()
    studio.page.get_by_role("tab", name="Draw").click()
    pad = np.asarray(studio.pad_as_sent())
    assert (pad[..., 3] == 255).all() and pad[..., :3].std() > 20, "the upload is not on the pad"
    studio.page.get_by_role("button", name="Clear", exact=True).click()
    expect(studio.plan_summary).to_contain_text("txt2img")
    studio.page.get_by_role("tab", name="Upload").click()
    expect(studio.init_thumb).to_be_hidden()


def test_generate_during_a_run_queues_and_the_queue_cancels_each_job(studio, server):
    studio.upload_sketch()
    studio.set_steps(150)
    studio.iterations.fill("16")  # a long first job, so the second waits behind it
    studio.iterations.blur()
    before = set(server.saved_files())
    studio.generate()
    studio.wait_for_state("running")
    studio.iterations.fill("1")
    studio.iterations.blur()
    studio.generate()
    expect(studio.queue_items).to_have_count(2)
    expect(studio.queue_items.nth(0)).to_have_attribute("data-state", "running")
    expect(studio.queue_items.nth(1)).to_have_attribute("data-state", "queued")
    expect(studio.queue_items.nth(1)).to_contain_text("strength 0.7")

    studio.queue_cancel(1).click()
    expect(studio.queue_items).to_have_count(1)
    expect(studio.progress).to_have_attribute("data-state", "running")  # the first job keeps running
    studio.page.keyboard.press("Escape")  # Escape cancels the run shown
    studio.wait_for_state("cancelled")
    expect(studio.queue).to_be_hidden()
    saved = set(server.saved_files()) - before
    assert len(saved) < 16, "the cancelled first job ran to its end"
    # The queued job never ran: every file saved belongs to the first job's iterations.
    listed = studio.page.request.get(server.base_url + "/api/outputs").json()
    assert all(item["metadata"]["job"]["iterations"] == 16 for item in listed if item["name"] in saved)


def test_enter_in_a_field_does_not_run_and_ctrl_enter_does(studio):
    studio.upload_sketch()
    studio.seed.fill("1234")
    studio.seed.press("Enter")
    studio.steps.fill("7")
    studio.steps.press("Enter")
    expect(studio.steps).to_have_value("7")
    studio.page.wait_for_timeout(300)  # give a wrongly started run the time to show
    expect(studio.progress).to_have_attribute("data-state", "idle")
    studio.seed.press("Control+Enter")
    studio.wait_for_state("done")


def test_live_reruns_after_prompt_seed_cfg_and_stroke_edits(studio, server):
    studio.upload_sketch()
    studio.set_steps(6)
    studio.page.locator("label.live").click()  # switching Live on shows the current settings at once
    studio.wait_for_state("done")
    runs = _count_job_ends(studio)

    for edit in (
        lambda: studio.prompt.fill("a red house by the sea"),
        lambda: studio.seed.fill("777"),
        lambda: studio.cfg_scale.fill("4"),
        lambda: (studio.page.get_by_role("tab", name="Draw").click(), studio.draw_scribble()),
    ):
        before = runs
        edit()
        studio.page.wait_for_function(f"() => window.__jobEnds > {before}", timeout=RUN_TIMEOUT_MS)
        studio.wait_for_state("done")
        runs = _count_job_ends(studio)
    # The output shown is the last Live run's: its PNG's own metadata carries every edit.
    shown = studio.fetch_png(studio.viewer_img.get_attribute("src"))
    meta = json.loads(shown.text["img2img-studio"])
    assert (meta["prompt"], meta["seed"], meta["cfg_scale"]) == ("a red house by the sea", 777, 4)


def _run(studio, server):
    """Generate and wait until its output is saved (the progress may still say "done" from the last run)."""
    before = set(server.saved_files())
    studio.generate()
    deadline = time.monotonic() + RUN_TIMEOUT_MS / 1000
    while not set(server.saved_files()) - before:
        assert time.monotonic() < deadline, "no output was saved"
        time.sleep(0.05)
    studio.wait_for_state("done")


def _count_job_ends(studio) -> int:
    """Counts job_done messages from now on (installed on first use)."""
    return studio.page.evaluate(
        """() => {
          if (window.__jobEnds === undefined) {
            window.__jobEnds = 0;
            const el = document.querySelector('[data-testid="progress"]');
            new MutationObserver(() => {
              if (el.dataset.state === 'done' && window.__lastState !== 'done') window.__jobEnds += 1;
              window.__lastState = el.dataset.state;
            }).observe(el, { attributes: true, attributeFilter: ['data-state'] });
          }
          return window.__jobEnds;
        }""")


def test_a_batch_gives_independent_takes_in_a_row(studio, server, screenshots_dir):
    studio.upload_sketch()
    studio.prompt.fill("a cozy house on a green hill, watercolor")
    studio.set_steps(8)
    studio.seed.fill("500")
    studio.set_field(studio.batch_size, "4")
    before = set(server.saved_files())
    studio.generate()
    studio.wait_for_state("done")
    expect(studio.output_items).to_have_count(4)
    for n, seed in enumerate(range(500, 504)):
        expect(studio.output_item_label(n)).to_contain_text(f"seed {seed}")
    saved = sorted(set(server.saved_files()) - before)
    assert [int(p.name.split(".")[1]) for p in saved] == [500, 501, 502, 503]
    # Independent takes: every one starts from the same init (iterations would chain them).
    listed = studio.page.request.get(server.base_url + "/api/outputs").json()
    inits = {item["metadata"]["init_image"]["id"] for item in listed if item["name"] in {p.name for p in saved}}
    assert len(inits) == 1, inits
    expect(studio.progress).to_contain_text("total")
    studio.page.mouse.move(0, 0)
    studio.screenshot(screenshots_dir / "batch-row-1280x800.png")


def test_at_400px_the_viewer_strip_and_slider_share_one_screen(studio, server, screenshots_dir):
    studio.page.set_viewport_size({"width": 400, "height": 800})
    studio.upload_sketch()
    studio.set_steps(10)
    studio.generate()
    studio.wait_for_state("done")
    studio.viewer.scroll_into_view_if_needed()
    studio.page.evaluate("() => window.scrollTo(0, document.getElementById('viewer').getBoundingClientRect().top + window.scrollY - 8)")
    actions = studio.page.locator(".actions").bounding_box()
    boxes = {name: loc.bounding_box() for name, loc in {
        "viewer": studio.viewer, "strip output": studio.by_testid("strip-output"),
        "first strip cell": studio.cells.first, "strength slider": studio.strength,
    }.items()}
    for name, box in boxes.items():
        assert box is not None, f"{name} is not shown"
        assert box["y"] >= 0 and box["y"] + box["height"] <= actions["y"], f"{name} is off the screen above the action bar: {box}"
        assert box["x"] >= 0 and box["x"] + box["width"] <= 400, f"{name} is wider than the screen: {box}"
    studio.screenshot(screenshots_dir / "narrow-400x800.png")
    # The action bar stays in reach wherever the page is scrolled.
    for where in ("0", "document.body.scrollHeight"):
        studio.page.evaluate(f"() => window.scrollTo(0, {where})")
        box = studio.generate_button.bounding_box()
        assert box and 0 <= box["y"] and box["y"] + box["height"] <= 800, box
    assert studio.page.evaluate("() => document.documentElement.scrollWidth") <= 400, "the page scrolls sideways"


def test_the_viewer_keeps_its_size_from_run_to_run(studio, server, screenshots_dir):
    """Nothing that appears after a run (the outputs row, a message, the job's badge) moves the viewer."""
    studio.upload_sketch()
    studio.set_steps(10)
    boxes = {"before any run": studio.viewer.bounding_box()}
    studio.generate()
    studio.wait_for_state("done")
    boxes["after one take"] = studio.viewer.bounding_box()
    studio.set_field(studio.batch_size, "3")
    studio.generate()
    studio.wait_for_state("done")
    expect(studio.output_items).to_have_count(3)
    boxes["after a batch"] = studio.viewer.bounding_box()
    studio.set_field(studio.batch_size, "1")
    studio.sweep_strengths.fill("0.3, oops")
    studio.sweep_button.click()
    expect(studio.job_message).to_be_visible()
    boxes["with a message"] = studio.viewer.bounding_box()
    studio.screenshot(screenshots_dir / "stable-viewer-message-1280x800.png")
    first = boxes["before any run"]
    for when, box in boxes.items():
        assert box == first, f"the viewer moved {when}: {box} vs {first}"
    studio.job_message.click()
    expect(studio.job_message).to_be_hidden()


def test_the_whole_loop_sketch_batch_pick_send_to_init_live_keep(studio, server, screenshots_dir):
    """The issue's "done when": sketch → batch → pick → send to init → live-tweak → keep, on one page."""
    studio.draw_scribble()
    studio.prompt.fill("a cozy house on a green hill")
    studio.set_steps(8)
    studio.set_field(studio.batch_size, "3")
    studio.generate()
    studio.wait_for_state("done")
    expect(studio.output_items).to_have_count(3)

    studio.output_item_show(1).click()  # pick the second take
    expect(studio.viewer_caption).to_contain_text("Output 2 of 3")
    picked = studio.output_item_url(1)
    studio.output_send_to_init(1).click()
    expect(studio.job_message).to_contain_text("is now the init image")
    # It is the init now, and on the pad: the next job starts from exactly the picked take.
    expected = np.asarray(studio.fetch_png(picked).convert("RGBA"))
    studio.page.wait_for_function("() => document.getElementById('pad').width > 0")
    studio.page.get_by_role("tab", name="Draw").click()
    studio.page.wait_for_function(
        "([w]) => document.getElementById('pad').width === w", arg=[expected.shape[1]])
    assert np.array_equal(np.asarray(studio.pad_as_sent()), expected), "the pad does not show the picked take"

    gallery_before = len(server.saved_files())
    studio.set_field(studio.batch_size, "1")
    studio.live_switch.click()  # Live on: a run at once
    expect(studio.live_items).to_have_count(1, timeout=RUN_TIMEOUT_MS)
    studio.prompt.fill("a cozy house on a green hill at sunset")  # live-tweak
    expect(studio.live_items).to_have_count(2, timeout=RUN_TIMEOUT_MS)
    assert len(server.saved_files()) == gallery_before, "Live results went into the gallery before being kept"
    studio.live_keep(0).click()  # the newest Live result: the tweaked prompt's
    deadline = time.monotonic() + 30
    while len(server.saved_files()) == gallery_before:
        assert time.monotonic() < deadline, "keep did not save the Live result into the gallery"
        time.sleep(0.05)
    kept = sorted(set(server.saved_files()), key=lambda p: p.stat().st_mtime)[-1]
    meta = json.loads(Image.open(kept).text["img2img-studio"])
    assert meta["prompt"] == "a cozy house on a green hill at sunset"
    studio.page.mouse.move(0, 0)
    studio.screenshot(screenshots_dir / "loop-1280x800.png")


def test_a_sketch_kept_from_before_the_pad_was_the_init_gives_way_to_the_init(studio):
    """A page stored by an older version (init and sketch unrelated) shows the init on the pad after a reload."""
    studio.upload_sketch()
    init_id = studio.page.evaluate("() => JSON.parse(localStorage.getItem('img2img-studio:v1:init')).id")
    init = np.asarray(studio.fetch_png(f"/api/uploads/{init_id}").convert("RGBA"))
    studio.page.evaluate("""() => {
      const c = document.createElement('canvas'); c.width = 64; c.height = 64;
      const ctx = c.getContext('2d'); ctx.fillStyle = '#d9473f'; ctx.fillRect(0, 0, 64, 64);
      localStorage.setItem('img2img-studio:v1:sketch', JSON.stringify(c.toDataURL('image/png')));
      localStorage.removeItem('img2img-studio:v1:pad-init');
    }""")
    studio.page.reload()
    studio.open()
    # The pad starts on the stored red sketch, then the init is put on it.
    studio.page.wait_for_function(
        "() => localStorage.getItem('img2img-studio:v1:pad-init') !== null", timeout=15_000)
    assert np.array_equal(np.asarray(studio.pad_as_sent()), init)
