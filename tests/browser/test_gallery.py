"""The gallery to manage, against the real server and the demo model: pages of 48 with "N of M",
star and "starred only", filter by prompt text, delete with Undo (the file goes to outputs/.trash/ and
back), the list keeping its place when a job ends, thumbnails drawn whole; and the Live row, whose
results reach the gallery only when kept."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

from conftest import launch_server, stop_server, wait_until_ready
from studio_page import RUN_TIMEOUT_MS

SAVED_BEFORE = 50  # more than one page of 48
LAKE = "a blue lake under the moon"
GREEN, GREY, YELLOW = (40, 200, 60), (128, 128, 128), (240, 220, 40)


def wide_picture() -> Image.Image:
    """128×64: a green band at the left edge, a yellow one at the right, grey between. A thumbnail
    cropped to a square (object-fit: cover) loses both bands; one drawn whole keeps them."""
    img = Image.new("RGB", (128, 64), GREY)
    img.paste(GREEN, (0, 0, 24, 64))
    img.paste(YELLOW, (104, 0, 128, 64))
    return img


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A studio whose outputs folder already holds 50 wide pictures, saved by the studio's own store."""
    from server.storage.store import OutputStore

    outputs = tmp_path_factory.mktemp("gallery-outputs")
    store = OutputStore(outputs)
    for i in range(SAVED_BEFORE):
        store.save(wide_picture(), {"prompt": f"{LAKE}, study {i}", "seed": 1000 + i, "steps": 2, "cfg_scale": 2,
                                    "sampler": "k_lms", "width": 128, "height": 64, "mode": "txt2img"})
    srv = wait_until_ready(launch_server(tmp_path_factory, outputs=outputs))
    yield srv
    stop_server(srv)


def _run(studio, prompt: str) -> str:
    """Generate (text-to-image, 2 steps) and wait until the gallery shows the output first."""
    studio.prompt.fill(prompt)
    studio.generate()
    studio.wait_for_state("done")
    name = studio.output_name()
    expect(studio.gallery_items.first).to_have_attribute("data-name", name, timeout=15_000)
    return name


def _band_colours(studio, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The mean colour near the left and the right edge of a gallery thumbnail, as Chromium drew it."""
    shot = studio.gallery_item_named(name).locator(".gallery-thumb > img").screenshot()
    pixels = np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"), dtype=np.float64)
    h, w, _ = pixels.shape
    middle = pixels[h // 2 - 2: h // 2 + 2]
    return middle[:, 1:4].mean(axis=(0, 1)), middle[:, w - 4: w - 1].mean(axis=(0, 1))


def test_gallery_pages_stars_filters_deletes_and_undoes(studio, server, screenshots_dir):
    # A first page of 48, then the rest.
    expect(studio.gallery_items).to_have_count(48, timeout=15_000)
    expect(studio.gallery_count).to_have_text(f"48 of {SAVED_BEFORE}")
    studio.gallery_more.click()
    expect(studio.gallery_items).to_have_count(SAVED_BEFORE)
    expect(studio.gallery_count).to_have_text(f"{SAVED_BEFORE} images")
    expect(studio.gallery_more).to_be_hidden()

    # Wide pictures are drawn whole: both edge bands show in the square thumbnail.
    oldest = studio.gallery_names()[-1]
    left, right = _band_colours(studio, oldest)
    assert np.abs(left - GREEN).max() < 40, f"left edge of the thumbnail is {left}, not the picture's green band"
    assert np.abs(right - YELLOW).max() < 40, f"right edge of the thumbnail is {right}, not the picture's yellow band"

    # Three real jobs; each output comes in at the top, highlighted, and the paged-in items stay.
    studio.set_steps(2)
    fire_hill = _run(studio, "fire on a hill")
    red_house = _run(studio, "a red house")
    expect(studio.gallery_item_named(red_house)).to_have_class("gallery-item is-new")
    expect(studio.gallery_item_named(fire_hill)).not_to_have_class("gallery-item is-new")
    expect(studio.gallery_items).to_have_count(SAVED_BEFORE + 2)

    # The gallery keeps its place when a job ends: an item in view stays where it was on screen.
    watched = studio.gallery_item_named(studio.gallery_names()[20])
    watched.scroll_into_view_if_needed()
    before = watched.bounding_box()
    assert studio.gallery_scroll.evaluate("el => el.scrollTop") > 0
    fire_sun = _run(studio, "fire and sun")
    after = watched.bounding_box()
    assert abs(after["y"] - before["y"]) <= 1, f"the watched item moved from y={before['y']} to y={after['y']}"
    expect(studio.gallery_items).to_have_count(SAVED_BEFORE + 3)
    studio.gallery_scroll.evaluate("el => { el.scrollTop = 0; }")

    # Star one: the page shows it, the server keeps it, and "starred only" finds it alone.
    studio.gallery_star(red_house).click()
    expect(studio.gallery_star(red_house)).to_have_attribute("aria-pressed", "true")
    starred, total = studio.listed_outputs(starred=1)
    assert [item["name"] for item in starred] == [red_house] and total == 1
    studio.gallery_starred_only.click()
    expect(studio.gallery_items).to_have_count(1)
    expect(studio.gallery_items.first).to_have_attribute("data-name", red_house)
    expect(studio.gallery_count).to_have_text("1 starred")
    studio.gallery_starred_only.click()
    expect(studio.gallery_items).to_have_count(48)  # back to the first page of everything
    expect(studio.gallery_count).to_have_text(f"48 of {SAVED_BEFORE + 3}")

    # Filter by a prompt word: only the two fire pictures.
    studio.filter_gallery("fire")
    expect(studio.gallery_items).to_have_count(2)
    assert studio.gallery_names() == [fire_sun, fire_hill]
    expect(studio.gallery_count).to_have_text("2 matching")
    studio.screenshot(screenshots_dir / "gallery-filtered.png")
    studio.gallery_filter.press("Escape")  # clears the filter
    expect(studio.gallery_filter).to_have_value("")
    expect(studio.gallery_items).to_have_count(48)

    # Delete one: out of the list and into outputs/.trash/; Undo brings it back to its place.
    studio.gallery_delete(fire_hill).click()
    expect(studio.gallery_item_named(fire_hill)).to_have_count(0)
    expect(studio.gallery_notice).to_contain_text("Deleted “fire on a hill”")
    expect(studio.gallery_undo).to_be_visible()
    assert not (server.outputs / fire_hill).exists()
    assert (server.outputs / ".trash" / fire_hill).is_file()
    studio.screenshot(screenshots_dir / "gallery-deleted.png")
    studio.gallery_undo.click()
    expect(studio.gallery_item_named(fire_hill)).to_have_count(1)
    assert studio.gallery_names()[:3] == [fire_sun, red_house, fire_hill]
    assert (server.outputs / fire_hill).is_file()
    assert not (server.outputs / ".trash" / fire_hill).exists()

    # Every item offers send to init; a saved output (not a contact sheet) offers its settings.
    expect(studio.gallery_send_to_init(red_house)).to_be_visible()
    expect(studio.gallery_item_named(red_house).get_by_role("button", name="Use these settings")).to_be_visible()
    studio.page.mouse.move(0, 0)
    studio.screenshot(screenshots_dir / "gallery.png")


def test_live_results_stay_in_the_row_until_kept(studio, server, screenshots_dir):
    studio.upload_sketch()
    studio.prompt.fill("a house at sunset")
    studio.set_steps(2)
    expect(studio.gallery_items.first).to_be_visible(timeout=15_000)
    gallery_before = studio.gallery_names()
    listed_before, total_before = studio.listed_outputs()

    studio.live_switch.click()  # Live on: it runs the current settings at once
    expect(studio.live).to_be_checked()
    expect(studio.live_items.first).to_be_visible(timeout=RUN_TIMEOUT_MS)
    studio.wait_for_state("done")
    shown = studio.live_items.count()
    studio.set_strength(0.5)  # and again after each edit
    expect(studio.live_items).to_have_count(shown + 1, timeout=RUN_TIMEOUT_MS)
    studio.wait_for_state("done")
    studio.set_strength(0.6)
    expect(studio.live_items).to_have_count(shown + 2, timeout=RUN_TIMEOUT_MS)
    studio.wait_for_state("done")

    # Newest first; the files are Live results on disk, but neither the gallery nor its listing has them.
    newest = studio.live_thumb(0).get_attribute("src")
    assert newest.startswith("/outputs/live/"), newest
    assert (server.outputs / "live" / newest.rsplit("/", 1)[1]).is_file()
    assert studio.output.get_attribute("src") == newest, "the viewer's output is the newest Live result"
    assert studio.gallery_names() == gallery_before
    listed, total = studio.listed_outputs()
    assert [item["name"] for item in listed] == [item["name"] for item in listed_before] and total == total_before

    # Keep the newest: it is saved into the gallery, comes in at the top highlighted, and the row says kept.
    live_pixels = np.asarray(studio.fetch_png(newest).convert("RGB"))
    studio.live_keep(0).click()
    expect(studio.live_keep(0)).to_have_text("Kept ✓")
    expect(studio.live_keep(0)).to_be_disabled()
    expect(studio.gallery_items.first).not_to_have_attribute("data-name", gallery_before[0], timeout=15_000)
    kept = studio.gallery_names()[0]
    expect(studio.gallery_item_named(kept)).to_have_class("gallery-item is-new")
    assert (server.outputs / kept).is_file()
    assert np.array_equal(np.asarray(studio.fetch_png(f"/outputs/{kept}").convert("RGB")), live_pixels)
    expect(studio.live_keep(1)).to_have_text("Keep")  # the other one is still unsaved
    studio.page.mouse.move(0, 0)
    studio.screenshot(screenshots_dir / "gallery-live-row.png")
