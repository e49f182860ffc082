"""The page object: every selector the browser tests use lives here (TodoMVC style)."""
from __future__ import annotations

import io
import re
from pathlib import Path

from PIL import Image, ImageDraw
from playwright.sync_api import Locator, Page, expect

RUN_TIMEOUT_MS = 120_000


def sketch_png(size: int) -> bytes:
    """A child's-drawing init image: sky, sun, hill and a house, opaque RGB."""
    img = Image.new("RGB", (size, size), (120, 180, 235))
    draw = ImageDraw.Draw(img)
    s = size / 128
    draw.ellipse([90 * s, 12 * s, 114 * s, 36 * s], fill=(250, 210, 60))
    draw.ellipse([-40 * s, 80 * s, 170 * s, 200 * s], fill=(70, 150, 70))
    draw.rectangle([34 * s, 62 * s, 74 * s, 96 * s], fill=(200, 90, 60))
    draw.polygon([(28 * s, 64 * s), (54 * s, 40 * s), (80 * s, 64 * s)], fill=(120, 50, 40))
    draw.rectangle([48 * s, 76 * s, 58 * s, 96 * s], fill=(60, 40, 30))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


class StudioPage:
    def __init__(self, page: Page, server):
        self.page = page
        self.server = server
        self.native_size = int(server.health.get("native_size") or 128)

    # --- locators ---------------------------------------------------------------
    def by_testid(self, testid: str) -> Locator:
        return self.page.get_by_test_id(testid)

    @property
    def upload_input(self): return self.by_testid("upload")
    @property
    def canvas(self): return self.by_testid("canvas")
    @property
    def prompt(self): return self.by_testid("prompt")
    @property
    def strength(self): return self.by_testid("strength")
    @property
    def strength_value(self): return self.by_testid("strength-value")
    @property
    def steps(self): return self.by_testid("steps")
    @property
    def seed(self): return self.by_testid("seed")
    @property
    def live(self): return self.by_testid("live")
    @property
    def generate_button(self): return self.by_testid("generate")
    @property
    def cancel_button(self): return self.by_testid("cancel")
    @property
    def output(self): return self.by_testid("output")
    @property
    def progress(self): return self.by_testid("progress")
    @property
    def gallery(self): return self.by_testid("gallery")
    @property
    def plan_summary(self): return self.by_testid("plan-summary")
    @property
    def cells(self): return self.by_testid("strip-cell")
    @property
    def upload_error(self): return self.by_testid("upload-error")
    @property
    def use_drawing(self): return self.by_testid("use-drawing")
    @property
    def connection(self): return self.by_testid("connection")
    @property
    def init_thumb(self): return self.page.locator("#init-thumb")
    @property
    def init_size(self): return self.page.locator("#init-size")

    def cells_in(self, state: str) -> Locator:
        return self.page.locator(f'[data-testid="strip-cell"][data-state="{state}"]')

    # --- actions ------------------------------------------------------------------
    def open(self):
        self.page.goto(self.server.base_url + "/")
        expect(self.connection).to_have_attribute("data-state", "connected", timeout=20_000)
        expect(self.by_testid("model-status")).to_have_attribute("data-status", "ready", timeout=20_000)
        expect(self.plan_summary).to_contain_text("taken", timeout=10_000)

    def upload_sketch(self, size: int | None = None):
        size = size or self.native_size
        self.upload_input.set_input_files(
            {"name": "sketch.png", "mimeType": "image/png", "buffer": sketch_png(size)}
        )
        expect(self.init_thumb).to_be_visible(timeout=15_000)
        expect(self.init_size).to_contain_text(f"{size}×{size}")

    def set_steps(self, n: int):
        self.steps.fill(str(n))
        self.steps.blur()

    def set_strength(self, value: float):
        self.strength.fill(f"{value}")  # fill() on a range input fires input and change
        expect(self.strength_value).to_have_text(f"{value:.2f}")

    def strength_keys(self, key: str, times: int):
        self.strength.focus()
        for _ in range(times):
            self.page.keyboard.press(key)

    def generate(self):
        self.generate_button.click()

    def wait_for_state(self, state: str, timeout: int = RUN_TIMEOUT_MS):
        expect(self.progress).to_have_attribute("data-state", state, timeout=timeout)

    def draw_scribble(self):
        self.page.get_by_role("tab", name="Draw").click()
        box = self.canvas.bounding_box()
        assert box, "the drawing pad is not visible"
        mouse = self.page.mouse
        # A sun in the corner, then a zig-zag of hills.
        for stroke in (
            [(0.75, 0.2), (0.85, 0.15), (0.9, 0.25), (0.8, 0.32), (0.72, 0.25), (0.75, 0.2)],
            [(0.05, 0.8), (0.25, 0.55), (0.45, 0.75), (0.65, 0.5), (0.95, 0.78)],
        ):
            x, y = stroke[0]
            mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"])
            mouse.down()
            for x, y in stroke[1:]:
                mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"], steps=8)
            mouse.up()

    def output_name(self) -> str:
        src = self.output.get_attribute("src") or ""
        match = re.search(r"/outputs/([^/?#]+)$", src)
        assert match, f"the output image has no /outputs/ URL: {src!r}"
        return match.group(1)

    def screenshot(self, path: Path, full_page: bool = False):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path), full_page=full_page)
