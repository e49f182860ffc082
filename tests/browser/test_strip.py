"""The step strip at 1280×800 against the real server and the demo model: the seed document's table
read off the page (skipped block, what SD sees, each step, the output), a 50-step schedule all in view
with its noise bars over the cells they describe, the skipped block opening and closing, and the keys."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

EPS = 0.5  # px: boxes are fractional; a cell counts as inside when it is within half a pixel


def inside(inner: dict, outer: dict) -> bool:
    return (inner["x"] >= outer["x"] - EPS and inner["y"] >= outer["y"] - EPS
            and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + EPS
            and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + EPS)


def assert_all_in_view(geo: dict):
    """Every piece's picture lies inside the strip's area and the viewport, and the area has nothing to scroll."""
    viewport = {"x": 0, "y": 0, **geo["viewport"]}
    pieces = [*geo["cells"], geo["output"]] + ([geo["init"]] if geo["init"] else [])
    for piece in pieces:
        what = f"{piece['state']} cell {piece['index']}"
        assert inside(piece["picture"], geo["area"]), f"{what} at {piece['picture']} is outside the strip {geo['area']}"
        assert inside(piece["picture"], viewport), f"{what} at {piece['picture']} is outside the window"
        assert piece["picture"]["width"] >= 1 and piece["picture"]["height"] >= 1, f"{what} has no size"
    scroll = geo["scroll"]
    assert scroll["scrollWidth"] <= scroll["clientWidth"], scroll
    assert scroll["scrollHeight"] <= scroll["clientHeight"], scroll


def run(studio, *, steps: int, strength: float):
    studio.upload_sketch()
    studio.prompt.fill("a cozy house on a green hill")
    studio.set_steps(steps)
    studio.set_strength(strength)
    studio.generate()
    studio.wait_for_state("done")
    studio.page.mouse.move(0, 0)


@pytest.mark.parametrize(("strength", "skipped", "taken", "shot"), [
    (0.7, 3, 7, "strip-1280-s07-10.png"),
    (0.4, 6, 4, "strip-1280-s04-10.png"),
])
def test_the_seed_documents_table_reads_off_the_strip(studio, screenshots_dir, strength, skipped, taken, shot):
    run(studio, steps=10, strength=strength)

    # N skipped as one block, then what SD sees, then one picture per taken step, then the output.
    expect(studio.cells).to_have_count(10)
    expect(studio.cells_in("skipped")).to_have_count(skipped)
    expect(studio.cells_in("done")).to_have_count(taken)
    expect(studio.strip_skipped_toggle).to_have_text(f"{skipped} skipped")
    expect(studio.strip_init).to_contain_text("what SD sees")
    expect(studio.strip_init_image).to_have_attribute("src", re.compile(r"^blob:"))
    expect(studio.strip_output.locator("img")).to_have_attribute("src", re.compile(r"^/outputs/"))
    for n in range(1, taken + 1):
        expect(studio.strip_step_picture(n).locator("img")).to_have_attribute("src", re.compile(r"^blob:"))
        expect(studio.strip_step_picture(n)).to_contain_text(str(n))

    geo = studio.strip_geometry()
    assert_all_in_view(geo)
    steps = [c for c in geo["cells"] if c["state"] == "done"]
    # One row, in the table's order.
    rows = {round(c["picture"]["y"]) for c in steps}
    assert len(rows) == 1, rows
    xs = [c["picture"]["x"] for c in steps]
    assert xs == sorted(xs)
    assert geo["group"]["box"]["x"] < geo["init"]["picture"]["x"] < xs[0]
    assert xs[-1] < geo["output"]["picture"]["x"]
    # The skipped steps are slivers inside their block.
    for cell in (c for c in geo["cells"] if c["state"] == "skipped"):
        assert cell["picture"]["width"] < steps[0]["picture"]["width"] / 2, cell
    # What SD sees is a picture at least as large as a step's.
    init, step = geo["init"]["picture"], steps[0]["picture"]
    assert init["width"] >= step["width"] - EPS and init["height"] >= step["height"] - EPS, (init, step)
    assert step["width"] >= 40, f"step pictures are {step['width']} px wide"

    studio.screenshot(screenshots_dir / shot)


@pytest.mark.parametrize(("strength", "generate"), [(0.7, True), (1.0, False)])
def test_a_50_step_schedule_is_all_in_view_with_its_noise_bars(studio, screenshots_dir, strength, generate):
    """Strength 0.7 after a run (every picture in place); 1.0 as the plan shows it before one (the same
    cells, placed the same way: frames never move them)."""
    if generate:
        run(studio, steps=50, strength=strength)
    else:
        studio.upload_sketch()
        studio.set_steps(50)
        studio.set_strength(strength)
    state = "done" if generate else "pending"
    skipped = 15 if strength == 0.7 else 0
    expect(studio.plan_summary).to_contain_text(f"{50 - skipped} taken / {skipped} skipped")
    expect(studio.cells).to_have_count(50)
    expect(studio.cells_in(state)).to_have_count(50 - skipped)
    expect(studio.cells_in("skipped")).to_have_count(skipped)

    geo = studio.strip_geometry()
    assert_all_in_view(geo)
    steps = [c for c in geo["cells"] if c["state"] == state]
    assert min(c["picture"]["width"] for c in steps) >= 24, "50 steps squeezed below 24 px"
    assert geo["init"]["picture"]["width"] >= steps[0]["picture"]["width"]

    # The noise bars sit right over the pictures they describe, and fall as the steps denoise.
    for piece in [*steps, geo["init"]]:
        bar, picture = piece["bar"], piece["picture"]
        assert abs(bar["x"] - picture["x"]) <= 1 and abs(bar["width"] - picture["width"]) <= 1, piece
        assert bar["y"] + bar["height"] <= picture["y"] + EPS, piece
    fills = [c["barFill"] for c in steps]
    assert fills == sorted(fills, reverse=True), fills
    assert fills[0] > fills[-1]
    # The init enters at the first taken step's noise level.
    assert abs(geo["init"]["barFill"] - fills[0]) <= 0.5, (geo["init"]["barFill"], fills[0])

    if strength == 0.7:
        studio.screenshot(screenshots_dir / "strip-1280-s07-50.png")


def test_the_skipped_block_opens_into_cells_and_folds_again(studio, screenshots_dir):
    studio.upload_sketch()
    studio.set_steps(10)
    studio.set_strength(0.7)
    expect(studio.cells_in("pending")).to_have_count(7)
    toggle = studio.strip_skipped_toggle
    expect(toggle).to_have_attribute("aria-expanded", "false")

    def skipped_and_step_widths():
        geo = studio.strip_geometry()
        assert_all_in_view(geo)
        skipped = [c["picture"]["width"] for c in geo["cells"] if c["state"] == "skipped"]
        step = next(c for c in geo["cells"] if c["state"] == "pending")["picture"]["width"]
        return skipped, step

    skipped, step = skipped_and_step_widths()
    assert len(skipped) == 3 and max(skipped) < step / 2, (skipped, step)

    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    skipped, step = skipped_and_step_widths()
    assert all(abs(w - step) <= 1 for w in skipped), (skipped, step)
    for cell in studio.cells_in("skipped").all():
        expect(cell).to_contain_text("skipped")
    studio.page.mouse.move(0, 0)
    studio.screenshot(screenshots_dir / "strip-1280-skipped-open.png")

    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    skipped, step = skipped_and_step_widths()
    assert max(skipped) < step / 2

    # From the keyboard: Enter and Space on the block.
    toggle.focus()
    studio.page.keyboard.press("Enter")
    expect(toggle).to_have_attribute("aria-expanded", "true")
    studio.page.keyboard.press("Space")
    expect(toggle).to_have_attribute("aria-expanded", "false")


def test_the_strip_is_one_tab_stop_and_the_arrow_keys_walk_it(studio):
    run(studio, steps=10, strength=0.7)
    keyboard = studio.page.keyboard
    expect(studio.strip_tab_stops).to_have_count(1)
    studio.strip_tab_stops.first.focus()

    keyboard.press("Home")
    assert studio.strip_focused() == "group"
    keyboard.press("ArrowRight")
    assert studio.strip_focused() == "init"
    expect(studio.viewer).to_have_attribute("data-showing", "init")
    expect(studio.viewer_caption).to_contain_text("What SD sees")
    expect(studio.viewer_img).to_have_attribute("src", studio.strip_init_image.get_attribute("src"))
    keyboard.press("ArrowRight")
    assert studio.strip_focused() == "cell:3"
    expect(studio.viewer).to_have_attribute("data-showing", "preview")
    expect(studio.viewer_caption).to_contain_text("Step 1 of 7")
    keyboard.press("End")
    assert studio.strip_focused() == "output"
    expect(studio.viewer).to_have_attribute("data-showing", "output")
    keyboard.press("ArrowLeft")
    assert studio.strip_focused() == "cell:9"
    expect(studio.viewer_caption).to_contain_text("Step 7 of 7")
    keyboard.press("ArrowRight")
    keyboard.press("ArrowRight")  # already at the end: stays on the output
    assert studio.strip_focused() == "output"
    expect(studio.strip_tab_stops).to_have_count(1)

    # Tab leaves the strip; Shift+Tab comes back to where it was.
    keyboard.press("Tab")
    assert studio.strip_focused() is None
    keyboard.press("Shift+Tab")
    assert studio.strip_focused() == "output"


def test_the_strip_shows_xt_and_the_viewer_the_predicted_result_x0_of_the_same_step(studio, screenshots_dir):
    run(studio, steps=10, strength=0.7)
    picture = studio.strip_step_picture(3)
    picture.click()
    expect(studio.viewer).to_have_attribute("data-showing", "preview")
    expect(studio.viewer_caption).to_contain_text("Step 3 of 7 · large: predicted result x0 · strip: noisy latent xt")
    studio.page.wait_for_function(
        "() => { const img = document.getElementById('viewer-img'); return img.complete && img.naturalWidth > 0; }")
    small = studio.image_facts(picture.locator("img"))
    large = studio.image_facts(studio.viewer_img)
    assert large["src"] != small["src"], "the viewer shows the strip's own picture"
    assert large["width"] >= small["width"] and large["height"] >= small["height"], (large, small)
    # Drawn smooth at every size, never as a mosaic of pixels.
    assert small["rendering"] == large["rendering"] == "auto", (small, large)
    studio.page.mouse.move(0, 0)
    studio.screenshot(screenshots_dir / "strip-1280-x0-large.png")


def test_txt2img_has_no_skipped_block_and_no_init_cell(studio):
    studio.set_steps(10)
    expect(studio.plan_summary).to_contain_text("all taken")
    expect(studio.cells).to_have_count(10)
    expect(studio.cells_in("pending")).to_have_count(10)
    expect(studio.strip_skipped).to_have_count(0)
    expect(studio.strip_init).to_have_count(0)
    expect(studio.strip_output).to_be_visible()
    assert_all_in_view(studio.strip_geometry())
