"""The artist's loop around the viewer (issue 17, items 2-4): send an output to init, the lightbox
with its before/after compare against the init, and a dropped PNG's settings restored, against the
real server and the demo model."""
from __future__ import annotations

import io
import json
import re

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from playwright.sync_api import expect

from studio_page import sketch_png

CELLS = 8  # the compare is read as an 8×8 grid of cells


def _rgb(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=np.int16)


def _pixels_equal(a: Image.Image, b: Image.Image) -> bool:
    return a.size == b.size and np.array_equal(_rgb(a), _rgb(b))


def _cells(img: Image.Image) -> np.ndarray:
    """Mean RGB of each cell of an 8×8 grid: shape (rows, cols, 3)."""
    a = _rgb(img).astype(np.float64)
    h, w = a.shape[:2]
    return np.array([[a[r * h // CELLS:(r + 1) * h // CELLS, c * w // CELLS:(c + 1) * w // CELLS].mean(axis=(0, 1))
                      for c in range(CELLS)] for r in range(CELLS)])


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


class CompareReader:
    """Which picture each cell of the lightbox shows, judged against the init and the output
    scaled to the size shown. Only cells where the two differ clearly are read; the top row
    (the "init"/"output" tags) is left out."""

    def __init__(self, studio, init: Image.Image, output: Image.Image):
        self.studio = studio
        shown = studio.frame_pixels()
        self.init = _cells(init.convert("RGB").resize(shown.size, Image.BILINEAR))
        self.output = _cells(output.convert("RGB").resize(shown.size, Image.BILINEAR))
        self.telling = [(r, c) for r in range(1, CELLS) for c in range(CELLS)
                        if _distance(self.init[r, c], self.output[r, c]) > 30]

    def cells_between(self, lo: float, hi: float) -> list[tuple[int, int]]:
        """Telling cells lying wholly between fractions lo and hi of the width."""
        return [(r, c) for r, c in self.telling if c / CELLS >= lo and (c + 1) / CELLS <= hi]

    def shows(self, cells) -> list[str]:
        """For each cell: "init" or "output", whichever the screen is clearly nearer to, else "unclear"."""
        now = _cells(self.studio.frame_pixels())
        verdicts = []
        for r, c in cells:
            to_init, to_output = _distance(now[r, c], self.init[r, c]), _distance(now[r, c], self.output[r, c])
            verdicts.append("init" if to_init < 12 and to_output > 2 * to_init
                            else "output" if to_output < 12 and to_init > 2 * to_output else "unclear")
        return verdicts


def _run_with_sketch(studio, *, steps: int, strength: float, iterations: int = 1):
    studio.upload_sketch()
    studio.prompt.fill("a red house on a green hill at sunset")
    studio.set_steps(steps)
    studio.set_strength(strength)
    if iterations > 1:
        studio.set_field(studio.iterations, str(iterations))
    studio.generate()
    studio.wait_for_state("done")


def _metadata(studio, name: str) -> dict:
    listed = studio.page.request.get(studio.server.base_url + "/api/outputs").json()
    return next(item for item in listed if item["name"] == name)["metadata"]


def test_send_to_init_from_the_viewer_and_the_outputs_row(studio, screenshots_dir):
    _run_with_sketch(studio, steps=6, strength=0.8, iterations=2)
    expect(studio.output_items).to_have_count(2)
    expect(studio.output_send_to_init(1)).to_be_visible()
    studio.screenshot(screenshots_dir / "send-to-init-row.png")

    # A strip preview is not offered (it is a preview); its full decode is.
    studio.cells_in("done").first.click()
    expect(studio.viewer).to_have_attribute("data-showing", "preview")
    expect(studio.viewer_send_to_init).to_be_hidden()
    expect(studio.viewer_enlarge).to_be_visible()
    studio.full_decode.click()
    expect(studio.viewer).to_have_attribute("data-showing", "decoded", timeout=30_000)
    with studio.expect_upload() as answer:
        studio.viewer_send_to_init.click()
    assert answer.value.ok
    expect(studio.job_message).to_contain_text("The full decode shown large is now the init image.")

    # The second output shown large: send it. The upload the page makes holds its very pixels.
    studio.output_item_show(1).click()
    expect(studio.viewer).to_have_attribute("data-showing", "output")
    shown = studio.viewer_img.get_attribute("src")
    assert shown == studio.output_item_url(1), shown
    with studio.expect_upload() as answer:
        studio.viewer_send_to_init.click()
    upload = answer.value.json()
    expect(studio.job_message).to_contain_text(f"Output {shown.rsplit('/', 1)[-1]} is now the init image.")
    studio.expect_init_loaded()
    assert _pixels_equal(studio.fetch_png(f"/api/uploads/{upload['id']}"), studio.fetch_png(shown))

    # Each finished output of the row has its own button: the first output becomes the init.
    first = studio.output_item_url(0)
    with studio.expect_upload() as answer:
        studio.output_send_to_init(0).click()
    upload = answer.value.json()
    expect(studio.job_message).to_contain_text(f"Output {first.rsplit('/', 1)[-1]} is now the init image.")
    sent = studio.fetch_png(f"/api/uploads/{upload['id']}")
    assert _pixels_equal(sent, studio.fetch_png(first))
    assert not _pixels_equal(sent, studio.fetch_png(shown)), "the two outputs should differ"


def test_lightbox_compare_reveals_the_init_by_pointer_and_keys(studio, screenshots_dir):
    _run_with_sketch(studio, steps=8, strength=0.9)
    output_url = studio.viewer_img.get_attribute("src")
    init_url = _metadata(studio, output_url.rsplit("/", 1)[-1])["init_image"]["url"]

    studio.viewer_img.click()
    expect(studio.lightbox).to_be_visible()
    expect(studio.compare).to_be_visible()
    expect(studio.compare_divider).to_be_focused()
    expect(studio.compare_divider).to_have_attribute("aria-valuenow", "50")
    studio.page.wait_for_function(
        "() => [...document.querySelectorAll('#lightbox img')].every((i) => i.complete && i.naturalWidth > 0)")
    # As large as the window allows: the picture's height is the window's less the caption bar.
    frame = studio.lightbox_frame.bounding_box()
    assert frame["height"] > 0.8 * 800, frame

    reader = CompareReader(studio, studio.fetch_png(init_url), studio.fetch_png(output_url))
    left, right = reader.cells_between(0.0, 0.45), reader.cells_between(0.55, 1.0)
    assert left and right, "the output should differ from the sketch on both sides at strength 0.9"
    # The divider in the middle: the init to its left, the output to its right.
    assert set(reader.shows(left)) == {"init"}, reader.shows(left)
    assert set(reader.shows(right)) == {"output"}, reader.shows(right)

    # Keys: End reveals the init everywhere, Home the output everywhere, arrows step by 5.
    studio.page.keyboard.press("End")
    expect(studio.compare_divider).to_have_attribute("aria-valuenow", "100")
    assert set(reader.shows(left + right)) == {"init"}
    studio.page.keyboard.press("Home")
    expect(studio.compare_divider).to_have_attribute("aria-valuenow", "0")
    assert set(reader.shows(left + right)) == {"output"}
    for _ in range(4):
        studio.page.keyboard.press("ArrowRight")
    expect(studio.compare_divider).to_have_attribute("aria-valuenow", "20")

    # The pointer: a drag to 80 % of the width reveals the init up to there.
    studio.set_divider_by_drag(0.8)
    assert 78 <= studio.divider_percent() <= 82, studio.divider_percent()
    assert set(reader.shows(reader.cells_between(0.0, 0.75))) == {"init"}
    assert set(reader.shows(reader.cells_between(0.875, 1.0))) <= {"output"}
    studio.set_divider_by_drag(0.62)
    studio.screenshot(screenshots_dir / "lightbox-compare.png")

    # Escape closes it and gives the focus back to the picture that opened it.
    studio.page.keyboard.press("Escape")
    expect(studio.lightbox).to_be_hidden()
    expect(studio.viewer_img).to_be_focused()

    # The enlarge button opens it too; a click on the backdrop closes it.
    studio.viewer_enlarge.click()
    expect(studio.compare).to_be_visible()
    studio.page.mouse.click(6, 6)
    expect(studio.lightbox).to_be_hidden()
    expect(studio.viewer_enlarge).to_be_focused()


def test_lightbox_during_a_txt2img_run_says_why_there_is_no_compare_and_escape_keeps_the_run(studio, screenshots_dir):
    studio.prompt.fill("a tree on a hill")
    studio.set_steps(60)
    studio.generate()
    studio.wait_for_state("running")
    expect(studio.viewer_enlarge).to_be_visible(timeout=60_000)

    studio.viewer_enlarge.click()
    expect(studio.lightbox).to_be_visible()
    expect(studio.lightbox_note).to_contain_text("txt2img")
    expect(studio.compare).to_be_hidden()
    studio.screenshot(screenshots_dir / "lightbox-txt2img.png")
    studio.page.keyboard.press("Escape")
    expect(studio.lightbox).to_be_hidden()
    expect(studio.viewer_enlarge).to_be_focused()
    # Escape closed the lightbox only: the run goes on to its output.
    expect(studio.progress).to_have_attribute("data-state", "running")
    studio.wait_for_state("done")


def test_drop_a_studio_png_and_restore_its_settings_without_touching_the_init(studio, screenshots_dir):
    studio.negative_prompt.fill("blurry")
    studio.set_field(studio.cfg_scale, "3")
    studio.sampler.select_option("euler")
    studio.random_seed.set_checked(False)
    studio.set_field(studio.seed, "4242")
    _run_with_sketch(studio, steps=7, strength=0.55)
    name = studio.output_name()
    png = studio.page.request.get(f"{studio.server.base_url}/outputs/{name}").body()
    meta = json.loads(Image.open(io.BytesIO(png)).info["img2img-studio"])

    # Change everything the PNG will restore.
    studio.prompt.fill("something else entirely")
    studio.negative_prompt.fill("")
    studio.set_steps(20)
    studio.set_field(studio.cfg_scale, "7")
    studio.sampler.select_option("ddim")
    studio.set_field(studio.seed, "1")
    studio.set_strength(0.3)
    thumb = studio.init_thumb.get_attribute("src")
    uploads = []
    studio.page.on("request", lambda r: uploads.append(r.url) if r.url.endswith("/api/uploads") else None)

    studio.drop_file(name, "image/png", png)
    expect(studio.png_info).to_be_visible()
    expect(studio.png_info_summary).to_contain_text(f"studio PNG: seed {meta['seed']}, strength {meta['strength']}")
    studio.screenshot(screenshots_dir / "png-info-studio.png")
    studio.png_restore.click()
    expect(studio.png_info).to_be_hidden()

    expect(studio.job_message).to_contain_text("Settings restored from the studio PNG.")
    expect(studio.prompt).to_have_value(meta["prompt"])
    expect(studio.negative_prompt).to_have_value(meta["negative_prompt"])
    expect(studio.steps).to_have_value(str(meta["steps"]))
    expect(studio.cfg_scale).to_have_value(f"{meta['cfg_scale']:g}")
    expect(studio.sampler).to_have_value(meta["sampler"])
    expect(studio.seed).to_have_value(str(meta["seed"]))
    expect(studio.random_seed).not_to_be_checked()
    expect(studio.strength_value).to_have_text(f"{meta['strength']:.2f}")
    expect(studio.width).to_have_value(str(meta["width"]))
    expect(studio.height).to_have_value(str(meta["height"]))
    # The init image is as it was: nothing uploaded, the same thumbnail.
    assert uploads == []
    expect(studio.init_thumb).to_have_attribute("src", thumb)


A1111_PARAMETERS = (
    "a tree on a hill, <lora:inkwash:0.6>\n"
    "Negative prompt: blurry, night\n"
    "Steps: 12, Sampler: Euler a, Schedule type: Automatic, CFG scale: 3.5, Seed: 987654, Size: 128x128, "
    "Model hash: 0123456789, Model: nosuchmodel, Denoising strength: 0.45, Clip skip: 2, "
    'Lora hashes: "inkwash: 0123456789ab", Version: v1.10.1'
)


def test_drop_an_a1111_png_and_take_both_its_settings_and_its_pixels(studio, screenshots_dir):
    info = PngInfo()
    info.add_text("parameters", A1111_PARAMETERS)
    buf = io.BytesIO()
    dropped = Image.open(io.BytesIO(sketch_png(studio.native_size)))
    dropped.save(buf, "PNG", pnginfo=info)

    studio.drop_file("a1111.png", "image/png", buf.getvalue())
    expect(studio.png_info).to_be_visible()
    expect(studio.png_info_summary).to_contain_text(
        "A1111 parameters: seed 987654, strength 0.45, 12 steps, Euler a → euler_a, CFG 3.5, 128×128, model nosuchmodel")
    expect(studio.png_info).to_contain_text("Not used: Clip skip, Version.")
    studio.screenshot(screenshots_dir / "png-info-a1111.png")
    with studio.expect_upload() as answer:
        studio.png_both.click()
    upload = answer.value.json()
    expect(studio.png_info).to_be_hidden()

    expect(studio.prompt).to_have_value("a tree on a hill")
    expect(studio.negative_prompt).to_have_value("blurry, night")
    expect(studio.steps).to_have_value("12")
    expect(studio.sampler).to_have_value("euler_a")
    expect(studio.cfg_scale).to_have_value("3.5")
    expect(studio.seed).to_have_value("987654")
    expect(studio.random_seed).not_to_be_checked()
    expect(studio.strength_value).to_have_text("0.45")
    message = studio.job_message
    expect(message).to_contain_text("Settings restored from the A1111 PNG.")
    expect(message).to_contain_text("Not used: Clip skip, Version.")
    expect(message).to_contain_text("inkwash")  # no such LoRA in the folder: said, left out
    expect(message).to_contain_text(re.compile(r"model nosuchmodel .*not in the models folder"))
    studio.expect_init_loaded()
    assert _pixels_equal(studio.fetch_png(f"/api/uploads/{upload['id']}"), dropped)


def test_a_png_without_settings_is_just_the_init_image(studio):
    with studio.expect_upload() as answer:
        assert studio.paste_file("plain.png", "image/png", sketch_png(studio.native_size)), "the page took the paste"
    assert answer.value.ok
    studio.expect_init_loaded()
    expect(studio.png_info).to_be_hidden()
