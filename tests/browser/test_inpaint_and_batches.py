"""Inpainting with the eraser, several outputs per job (variations, iterations, a strength sweep),
and the full decode of a strip step, against the real server."""
from __future__ import annotations

import io
import re

import numpy as np
from PIL import Image, ImageFilter
from playwright.sync_api import expect

from studio_page import sketch_png, transparent_png

NOTICE = "The transparent area will be repainted; the rest stays as it is."
MARGIN_PX = 8  # the server feathers the repainted area's edge; beyond this the init must come back exactly


def _rgb(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=np.int16)


def test_erase_on_the_canvas_repaints_only_there(studio, server, screenshots_dir):
    size = studio.native_size
    sent = _rgb(Image.open(io.BytesIO(sketch_png(size))))
    studio.upload_sketch()
    expect(studio.inpaint_notice).to_be_hidden()

    # Put the uploaded image on the pad and rub out its lower right quarter (the hill and sky there).
    studio.init_edit.click()
    expect(studio.canvas).to_be_visible()
    expect(studio.tool_eraser).to_have_attribute("aria-checked", "true")
    expect(studio.pad_notice).to_be_hidden()
    studio.erase_rect(0.58, 0.58, 0.86, 0.86)
    # The erased pad is the init at once: the init panel says so (and the pad's copy of the
    # sentence stays hidden, so it is said once).
    expect(studio.inpaint_notice).to_be_visible()
    expect(studio.inpaint_notice).to_have_text(NOTICE)
    expect(studio.pad_notice).to_be_hidden()
    studio.page.mouse.move(0, 0)
    studio.screenshot(screenshots_dir / "studio-eraser-1280x800.png")

    # No separate "use" step: the erased pad is the init at once.
    expect(studio.inpaint_notice).to_be_visible(timeout=15_000)
    expect(studio.inpaint_notice).to_have_text(NOTICE)
    expect(studio.upload_error).to_be_hidden()
    expect(studio.init_size).to_contain_text(f"{size}×{size}")
    studio.prompt.fill("a cozy house on a green hill, watercolor")
    studio.set_steps(8)
    studio.set_strength(0.9)
    expect(studio.plan_summary).to_contain_text("inpaint")

    studio.generate()
    studio.wait_for_state("done")
    expect(studio.job_mode).to_contain_text("inpaint")
    expect(studio.job_mode).to_be_visible()
    name = studio.output_name()
    listed = studio.page.request.get(server.base_url + "/api/outputs").json()
    meta = next(item for item in listed if item["name"] == name)["metadata"]
    assert meta["mode"] == "inpaint"

    # What the server stored: the RGB exactly as sent (also under the erased area), alpha 0 where erased.
    stored = studio.fetch_png(meta["init_image"]["url"])
    assert stored.mode == "RGBA", stored.mode
    alpha = np.asarray(stored.getchannel("A"))
    erased = alpha < 255
    assert erased.any(), "nothing arrived erased"
    assert np.array_equal(_rgb(stored), sent), "the RGB under (or beside) the erased area changed on the way"
    ys, xs = np.nonzero(erased)
    lo, hi = int(0.58 * size) - 2, int(0.86 * size) + 2
    assert xs.min() >= lo - size * 0.1 and ys.min() >= lo - size * 0.1, "erased outside the rubbed rectangle"
    assert erased[lo:hi, lo:hi].mean() > 0.95, "the rubbed rectangle is not fully erased"

    # The output: the init exactly, except in the erased area and a margin around it.
    output = _rgb(studio.fetch_png(f"/outputs/{name}"))
    assert output.shape == sent.shape
    near = np.asarray(Image.fromarray(erased.astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(2 * MARGIN_PX + 1))) > 0
    outside = ~near
    assert outside.mean() > 0.5
    diff = np.abs(output - sent).max(axis=2)
    assert int(diff[outside].max()) == 0, f"pixels away from the erased area changed (max diff {diff[outside].max()})"
    assert float(diff[erased].mean()) > 4, "the erased area was not repainted"

    studio.page.mouse.move(0, 0)
    studio.scroll_controls_to_top()
    studio.screenshot(screenshots_dir / "studio-inpaint-done-1280x800.png")


def _disc_with_hidden_colour(size: int) -> bytes:
    """An RGBA PNG: an opaque red disc on a transparent background whose RGB is a green
    that alpha 0 hides (a premultiplying decoder would turn it black)."""
    img = Image.new("RGBA", (size, size), (30, 200, 90, 0))
    disc = Image.open(io.BytesIO(transparent_png(size, size)))
    img.alpha_composite(disc)
    img.putpixel((0, 0), (30, 200, 90, 0))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def test_uploaded_png_with_alpha_is_inpainted_and_erasable(studio):
    sent = _disc_with_hidden_colour(96)
    studio.upload_input.set_input_files({"name": "disc.png", "mimeType": "image/png", "buffer": sent})
    studio.expect_init_loaded(re.compile(r"^data:image/png"))
    expect(studio.inpaint_notice).to_be_visible()
    expect(studio.inpaint_notice).to_have_text(NOTICE)
    expect(studio.plan_summary).to_contain_text("inpaint")
    # On the pad its transparent pixels come in erased (the checkerboard). The init's notice
    # already says what happens to them, so the pad's own copy of the sentence stays hidden.
    studio.init_edit.click()
    expect(studio.tool_eraser).to_have_attribute("aria-checked", "true")
    expect(studio.inpaint_notice).to_be_visible()
    expect(studio.pad_notice).to_be_hidden()
    corner = studio.page.evaluate(
        "() => Array.from(document.getElementById('pad-erased').getContext('2d').getImageData(1, 1, 1, 1).data)")
    centre = studio.page.evaluate(
        "() => Array.from(document.getElementById('pad-erased').getContext('2d').getImageData(48, 48, 1, 1).data)")
    assert corner[3] == 255 and centre[3] == 0, (corner, centre)

    # Edited on the pad (a stroke of the eraser inside the area already transparent), the pad is
    # sent again and keeps the colour hidden under alpha 0: the image sent with its mask becomes
    # the very same pixels.
    with studio.page.expect_response(lambda r: r.url.endswith("/api/uploads") and r.request.method == "POST") as answer:
        studio.erase_rect(0.0, 0.0, 0.06, 0.06)
    uploaded = answer.value.json()
    assert uploaded["has_alpha"] is True, uploaded
    stored = studio.fetch_png(f"/api/uploads/{uploaded['id']}")
    original = Image.open(io.BytesIO(sent))
    assert np.array_equal(np.asarray(stored.getchannel("A")) < 255, np.asarray(original.getchannel("A")) < 255)
    assert np.array_equal(_rgb(stored), _rgb(original)), "the RGB under the transparent area was lost"
    expect(studio.inpaint_notice).to_be_visible()


def test_sweep_shows_a_labelled_row_and_a_contact_sheet(studio, server, screenshots_dir):
    studio.upload_sketch()
    studio.prompt.fill("a cozy house on a green hill, watercolor")
    studio.set_steps(10)
    expect(studio.sweep_strengths).to_have_value("0.2, 0.4, 0.6, 0.8")
    before = set(server.saved_files())
    studio.sweep_button.click()
    expect(studio.outputs_row).to_be_visible()
    expect(studio.output_items).to_have_count(4)
    studio.wait_for_state("done")
    # The strip shows the last output's plan; the header says whose counts are whose.
    expect(studio.job_mode).to_have_text("img2img · output 4 of 4 · strength 0.8 · 8 taken / 2 skipped")
    expect(studio.plan_summary).to_have_text("next run: 10 steps · 7 taken / 3 skipped")

    expect(studio.output_items).to_have_count(4)
    for n, (strength, taken) in enumerate([(0.2, 2), (0.4, 4), (0.6, 6), (0.8, 8)]):
        item = studio.output_items.nth(n)
        expect(item).to_have_attribute("data-state", "done")
        expect(studio.output_item_label(n)).to_have_text(f"strength {strength:g} · {taken} taken / {10 - taken} skipped")
        expect(item.locator("img")).to_have_attribute("src", re.compile(r"^/outputs/.+\.png$"))
    expect(studio.contact_sheet).to_be_visible()
    expect(studio.contact_sheet).to_have_attribute("href", re.compile(r"^/outputs/.+\.png$"))
    sheet = studio.fetch_png(studio.contact_sheet.get_attribute("href"))
    assert sheet.width > studio.native_size
    expect(studio.progress).to_contain_text("Done · 4 outputs")
    assert len(set(server.saved_files()) - before) == 5, "4 outputs and the contact sheet"

    # Clicking one shows it large.
    studio.output_item_show(1).click()
    expect(studio.viewer).to_have_attribute("data-showing", "output")
    expect(studio.viewer_img).to_have_attribute("src", studio.output_items.nth(1).locator("img").get_attribute("src"))
    expect(studio.viewer_caption).to_contain_text("Output 2 of 4 · strength 0.4")
    expect(studio.output_items.nth(1)).to_have_class(re.compile(r"\bis-selected\b"))
    studio.page.mouse.move(0, 0)
    studio.screenshot(screenshots_dir / "studio-sweep-1280x800.png")


def test_variations_with_iterations_show_a_row_and_restore(studio, server, screenshots_dir):
    studio.upload_sketch()
    studio.prompt.fill("a red barn under snow")
    studio.set_steps(6)
    studio.set_strength(0.6)
    studio.set_field(studio.variation_amount, "0.3")
    studio.set_field(studio.iterations, "3")
    studio.generate()
    expect(studio.outputs_row).to_be_visible()
    expect(studio.progress).to_contain_text(re.compile(r"Output [123] of 3"), timeout=60_000)
    studio.page.mouse.move(0, 0)
    studio.screenshot(screenshots_dir / "studio-variations-running-1280x800.png")
    studio.wait_for_state("done")
    expect(studio.output_items).to_have_count(3)
    for n in range(3):
        expect(studio.output_items.nth(n)).to_have_attribute("data-state", "done")
        expect(studio.output_item_label(n)).to_have_text(re.compile(rf"^#{n + 1} · \+\d+ @ 0\.3 · \d+ taken / \d+ skipped$"))
    expect(studio.outputs_row).to_contain_text(re.compile(r"variations of seed \d+ · 3 of 3 done"))
    expect(studio.contact_sheet).to_be_hidden()
    studio.page.mouse.move(0, 0)
    studio.screenshot(screenshots_dir / "studio-variations-1280x800.png")

    # "Use these settings" on an output brings back its variation list (it reproduces that image).
    expect(studio.gallery_item(0)).to_contain_text("a red barn under snow")
    name = studio.gallery_output_thumb(0).get_attribute("src").split("/")[-1]
    listed = studio.page.request.get(server.base_url + "/api/outputs").json()
    meta = next(item for item in listed if item["name"] == name)["metadata"]
    studio.set_field(studio.variation_amount, "0")
    studio.set_field(studio.iterations, "1")
    studio.gallery_item(0).get_by_role("button", name="Use these settings").click()
    expect(studio.seed).to_have_value(str(meta["seed"]))
    expect(studio.iterations).to_have_value(str(meta.get("iterations", 1)))
    variation = studio.page.locator("#with-variations")
    expect(variation).to_be_visible()
    seed, weight = meta["with_variations"][-1]
    expect(variation).to_contain_text(f"{seed} @ {weight:.2f}")


def test_full_decode_of_a_strip_step(studio, screenshots_dir):
    studio.upload_sketch()
    studio.prompt.fill("a cozy house on a green hill, watercolor")
    studio.set_steps(8)
    studio.set_strength(0.75)
    studio.generate()
    studio.wait_for_state("done")
    expect(studio.full_decode).to_be_hidden()

    cell = studio.cells_in("done").nth(2)  # taken step 3
    cell.locator("button").first.click()
    expect(studio.viewer).to_have_attribute("data-showing", "preview")
    expect(studio.full_decode).to_be_visible()
    preview_src = studio.viewer_img.get_attribute("src")
    studio.full_decode.click()
    expect(studio.viewer).to_have_attribute("data-showing", "decoded", timeout=60_000)
    expect(studio.viewer_caption).to_contain_text("full decode of step 3 of 6")
    expect(studio.viewer_img).not_to_have_attribute("src", preview_src)
    studio.page.wait_for_function(
        "() => { const img = document.getElementById('viewer-img'); return img.complete && img.naturalWidth > 0; }")
    size = studio.page.evaluate("() => document.getElementById('viewer-img').naturalWidth")
    assert size == studio.native_size, size
    studio.page.mouse.move(0, 0)
    studio.screenshot(screenshots_dir / "studio-full-decode-1280x800.png")

    # Clicking the cell again follows the run (the output), and the offer goes away.
    cell.locator("button").first.click()
    expect(studio.viewer).to_have_attribute("data-showing", "output")
    expect(studio.full_decode).to_be_hidden()


def test_saved_intermediates_are_named_in_the_done_message(studio, server, screenshots_dir):
    studio.upload_sketch()
    studio.set_steps(6)
    studio.set_strength(0.5)
    studio.advanced.locator("summary").click()
    studio.save_intermediates.select_option("preview")
    studio.generate()
    studio.wait_for_state("done")
    name = studio.output_name()
    folder = name.removesuffix(".png")
    expect(studio.job_message).to_contain_text("Intermediate steps saved in")
    expect(studio.job_message).to_contain_text(f"intermediates/{folder}/")
    steps = sorted((server.outputs / "intermediates" / folder).glob("step-*.png"))
    assert len(steps) >= 3, steps
    studio.page.mouse.move(0, 0)
    studio.page.locator(".controls-scroll").evaluate("el => { el.scrollTop = el.scrollHeight; }")
    studio.screenshot(screenshots_dir / "studio-intermediates-1280x800.png")
