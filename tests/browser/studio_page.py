"""The page object: every selector the browser tests use lives here (TodoMVC style)."""
from __future__ import annotations

import base64
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


def transparent_png(width: int, height: int) -> bytes:
    """An RGBA PNG: a red disc on a fully transparent background."""
    img = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    ImageDraw.Draw(img).ellipse([width * 0.2, height * 0.2, width * 0.8, height * 0.8], fill=(220, 60, 60, 255))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


# Builds a DataTransfer holding one File from base64 bytes, as a real drag or a clipboard would carry it.
_DATA_TRANSFER_JS = """([name, mime, b64]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name, { type: mime }));
  return transfer;
}"""

# Records every data-state the connection indicator takes, in order.
_RECORD_CONNECTION_JS = """() => {
  const el = document.querySelector('[data-testid="connection"]');
  window.__connectionStates = [el.dataset.state];
  new MutationObserver(() => window.__connectionStates.push(el.dataset.state))
    .observe(el, { attributes: true, attributeFilter: ["data-state"] });
}"""


# Records every (data-status, data-model) of the model status, in order.
_RECORD_MODEL_STATUS_JS = """() => {
  const el = document.querySelector('[data-testid="model-status"]');
  window.__modelStatuses = [[el.dataset.status, el.dataset.model || ""]];
  new MutationObserver(() => window.__modelStatuses.push([el.dataset.status, el.dataset.model || ""]))
    .observe(el, { attributes: true, attributeFilter: ["data-status", "data-model"] });
}"""


# The strip's focused piece, named as the page's own data attributes name it.
_STRIP_FOCUSED_JS = """() => {
  const el = document.activeElement;
  if (!el || !document.getElementById("strip").contains(el) || !el.dataset.nav) return null;
  return el.dataset.nav === "cell" ? `cell:${el.dataset.index}` : el.dataset.nav;
}"""

# Every box of the strip in one round trip.
_STRIP_GEOMETRY_JS = """() => {
  const box = (el) => {
    if (!el) return null;
    const r = el.getBoundingClientRect();
    return { x: r.x, y: r.y, width: r.width, height: r.height };
  };
  const piece = (li) => {
    const bar = li.querySelector(".cell-sigma");
    return {
      state: li.dataset.state, index: li.dataset.index == null ? null : Number(li.dataset.index),
      box: box(li), picture: box(li.querySelector(".cell-main, .tile-main")), bar: box(bar),
      barFill: bar ? parseFloat(getComputedStyle(bar, "::after").height) || 0 : 0,
    };
  };
  const scroll = document.getElementById("strip-scroll");
  const group = document.querySelector('[data-testid="strip-skipped"]');
  const init = document.querySelector('[data-testid="strip-init"]');
  return {
    area: box(scroll),
    scroll: { scrollWidth: scroll.scrollWidth, clientWidth: scroll.clientWidth,
              scrollHeight: scroll.scrollHeight, clientHeight: scroll.clientHeight },
    viewport: { width: innerWidth, height: innerHeight },
    cells: [...document.querySelectorAll('[data-testid="strip-cell"]')].map(piece),
    group: group ? { box: box(group.querySelector(".group-toggle")), expanded: group.dataset.expanded === "true" } : null,
    init: init ? piece(init) : null,
    output: piece(document.querySelector('[data-testid="strip-output"]')),
  };
}"""


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
    def cancel_button(self): return self.page.locator(".actions [data-testid='cancel']")  # queue items have their own
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
    def connection(self): return self.by_testid("connection")
    @property
    def init_thumb(self): return self.page.locator("#init-thumb")
    @property
    def init_size(self): return self.page.locator("#init-size")
    @property
    def init_warnings(self): return self.page.locator("#init-warnings")
    @property
    def init_clear(self): return self.page.get_by_role("button", name="Remove the init image")
    @property
    def dropzone(self): return self.page.locator("#dropzone")

    # inpainting: the eraser, the notices, the job's mode
    @property
    def init_edit(self): return self.by_testid("init-edit")
    @property
    def tool_brush(self): return self.by_testid("tool-brush")
    @property
    def tool_eraser(self): return self.by_testid("tool-eraser")
    @property
    def brush_size(self): return self.page.locator("#brush-size")
    @property
    def pad_notice(self): return self.by_testid("pad-notice")
    @property
    def inpaint_notice(self): return self.by_testid("inpaint-notice")
    @property
    def job_mode(self): return self.by_testid("job-mode")

    # several outputs: variations, iterations, sweeps
    @property
    def variation_amount(self): return self.by_testid("variation-amount")
    @property
    def iterations(self): return self.by_testid("iterations")
    @property
    def sweep_strengths(self): return self.by_testid("sweep-strengths")
    @property
    def sweep_button(self): return self.by_testid("sweep")
    @property
    def save_intermediates(self): return self.by_testid("save-intermediates")
    @property
    def advanced(self): return self.page.locator("details.advanced")
    @property
    def outputs_row(self): return self.by_testid("outputs-row")
    @property
    def output_items(self): return self.by_testid("output-item")
    @property
    def contact_sheet(self): return self.by_testid("contact-sheet")
    @property
    def job_message(self): return self.by_testid("job-message")

    # few-step models: the minimum of taken steps, beside the exact-steps switch
    @property
    def min_taken_steps(self): return self.by_testid("min-taken-steps")
    @property
    def min_taken_hint(self): return self.page.locator("#min-taken-hint")
    @property
    def exact_steps(self): return self.by_testid("exact-steps")
    @property
    def exact_steps_switch(self): return self.page.locator("label.switch-row:has([data-testid='exact-steps'])")
    @property
    def sampler(self): return self.by_testid("sampler")

    @property
    def cfg_scale(self): return self.page.locator("#cfg-scale")
    @property
    def recommended(self): return self.by_testid("recommended")

    # the large viewer and the strip step's full decode
    @property
    def viewer(self): return self.page.locator("#viewer")
    @property
    def viewer_img(self): return self.page.locator("#viewer-img")
    @property
    def viewer_caption(self): return self.by_testid("viewer-caption")
    @property
    def viewer_note(self): return self.by_testid("viewer-note")
    @property
    def full_decode(self): return self.by_testid("full-decode")

    @property
    def width(self): return self.page.locator("#width")
    @property
    def height(self): return self.page.locator("#height")

    # the models folder: the picker in the header, the LoRA list, the gallery's model line
    @property
    def model_picker(self): return self.by_testid("model-picker")
    @property
    def model_status(self): return self.by_testid("model-status")
    # a cluster's workers, in the header (the embedded studio shows none)
    @property
    def workers_panel(self): return self.by_testid("workers-panel")
    @property
    def workers_count(self): return self.by_testid("workers-count")
    @property
    def workers(self): return self.by_testid("workers")
    @property
    def worker_items(self): return self.workers.get_by_test_id("worker")

    def worker(self, name: str) -> Locator:
        return self.page.locator(f'[data-testid="worker"][data-name="{name}"]')

    def workers_in(self, state: str) -> Locator:
        return self.page.locator(f'[data-testid="worker"][data-state="{state}"]')

    @property
    def lora_list(self): return self.by_testid("lora-list")
    @property
    def lora_rows(self): return self.by_testid("lora-row")

    def model_option(self, name: str) -> Locator:
        return self.model_picker.locator(f'option[value="{name}"]')

    def lora_row(self, name: str) -> Locator:
        return self.page.locator(f'[data-testid="lora-row"][data-lora-name="{name}"]')

    def lora_enable(self, name: str) -> Locator:
        return self.lora_row(name).get_by_test_id("lora-enable")

    def lora_weight(self, name: str) -> Locator:
        return self.lora_row(name).get_by_test_id("lora-weight")

    def lora_weight_slider(self, name: str) -> Locator:
        return self.lora_row(name).get_by_test_id("lora-weight-slider")

    def lora_reason(self, name: str) -> Locator:
        return self.lora_row(name).get_by_test_id("lora-reason")

    def gallery_model(self, n: int = 0) -> Locator:
        return self.gallery_item(n).get_by_test_id("gallery-model")

    def gallery_use(self, n: int = 0) -> Locator:
        return self.gallery_item(n).locator(".gallery-use")

    def output_item_label(self, n: int) -> Locator:
        return self.output_items.nth(n).get_by_test_id("output-item-label")

    def gallery_item(self, n: int = 0) -> Locator:
        return self.gallery.locator("li").nth(n)

    def gallery_output_thumb(self, n: int = 0) -> Locator:
        return self.gallery_item(n).locator(".gallery-thumb > img")

    def gallery_init_thumb(self, n: int = 0) -> Locator:
        return self.gallery_item(n).locator(".gallery-init img")

    # --- the gallery to manage (filter, star, delete and undo, paging) and the Live row ---------------
    @property
    def gallery_items(self): return self.by_testid("gallery-item")
    @property
    def gallery_filter(self): return self.by_testid("gallery-filter")
    @property
    def gallery_starred_only(self): return self.by_testid("gallery-starred")
    @property
    def gallery_count(self): return self.by_testid("gallery-count")
    @property
    def gallery_notice(self): return self.by_testid("gallery-notice")
    @property
    def gallery_undo(self): return self.by_testid("gallery-undo")
    @property
    def gallery_more(self): return self.by_testid("gallery-more")
    @property
    def gallery_scroll(self): return self.page.locator("#gallery-scroll")
    @property
    def live_row(self): return self.by_testid("live-row")
    @property
    def live_items(self): return self.live_row.get_by_test_id("live-item")
    @property
    def live_switch(self): return self.page.locator("label.switch-row:has([data-testid='live'])")

    def gallery_item_named(self, name: str) -> Locator:
        return self.page.locator(f'[data-testid="gallery-item"][data-name="{name}"]')

    def gallery_star(self, name: str) -> Locator:
        return self.gallery_item_named(name).get_by_test_id("gallery-star")

    def gallery_delete(self, name: str) -> Locator:
        return self.gallery_item_named(name).get_by_test_id("gallery-delete")

    def gallery_send_to_init(self, name: str) -> Locator:
        return self.gallery_item_named(name).get_by_test_id("send-to-init")

    def gallery_names(self) -> list[str]:
        """The names the gallery shows, top to bottom."""
        return self.gallery_items.evaluate_all("items => items.map((li) => li.dataset.name)")

    def filter_gallery(self, text: str):
        self.gallery_filter.fill(text)

    def live_keep(self, n: int = 0) -> Locator:
        return self.live_items.nth(n).get_by_test_id("keep")

    def live_send_to_init(self, n: int = 0) -> Locator:
        return self.live_items.nth(n).get_by_test_id("send-to-init")

    def live_thumb(self, n: int = 0) -> Locator:
        return self.live_items.nth(n).locator("img")

    def listed_outputs(self, **query) -> tuple[list[dict], int | None]:
        """GET /api/outputs as the server answers it: (items, X-Total-Count)."""
        response = self.page.request.get(self.server.base_url + "/api/outputs", params={k: str(v) for k, v in query.items()})
        assert response.ok, f"GET /api/outputs {query}: {response.status} {response.text()}"
        total = response.headers.get("x-total-count")
        return response.json(), int(total) if total is not None else None

    def cells_in(self, state: str) -> Locator:
        return self.page.locator(f'[data-testid="strip-cell"][data-state="{state}"]')

    # --- the artist's loop: the pad as the init, the queue, batches ------------------
    @property
    def batch_size(self): return self.by_testid("batch-size")
    @property
    def queue(self): return self.by_testid("queue")
    @property
    def queue_items(self): return self.by_testid("queue-item")

    def queue_cancel(self, n: int) -> Locator:
        return self.queue_items.nth(n).get_by_test_id("cancel")

    def pad_as_sent(self) -> Image.Image:
        """What the pad shows, as the image the next job should get: its colours, with alpha 0
        wherever the eraser's checkerboard covers it (the overlay's alpha >= 128)."""
        width, height, data = self.page.evaluate(
            """() => {
              const pad = document.getElementById('pad');
              const color = pad.getContext('2d').getImageData(0, 0, pad.width, pad.height).data;
              const erased = document.getElementById('pad-erased').getContext('2d').getImageData(0, 0, pad.width, pad.height).data;
              const out = new Uint8Array(color.length);
              for (let i = 0; i < color.length; i += 4) {
                out[i] = color[i]; out[i + 1] = color[i + 1]; out[i + 2] = color[i + 2];
                out[i + 3] = erased[i + 3] >= 128 ? 0 : 255;
              }
              let binary = '';
              for (let i = 0; i < out.length; i += 8192) binary += String.fromCharCode(...out.subarray(i, i + 8192));
              return [pad.width, pad.height, btoa(binary)];
            }""")
        return Image.frombytes("RGBA", (width, height), base64.b64decode(data))

    def job_init_of_last_output(self) -> Image.Image:
        """The init image the newest gallery output was made from, as the server stored it."""
        listed = self.page.request.get(self.server.base_url + "/api/outputs").json()
        return self.fetch_png(listed[0]["metadata"]["init_image"]["url"])

    # --- the step strip: skipped block, init ("what SD sees"), taken steps, output ------------
    # One tab stop (roving tabindex); strip_geometry() reads every box at once.
    @property
    def strip(self): return self.page.locator("#strip")
    @property
    def strip_scroll(self): return self.page.locator("#strip-scroll")
    @property
    def strip_init(self): return self.by_testid("strip-init")
    @property
    def strip_init_image(self): return self.strip_init.locator("img")
    @property
    def strip_output(self): return self.by_testid("strip-output")
    @property
    def strip_skipped(self): return self.by_testid("strip-skipped")
    @property
    def strip_skipped_toggle(self): return self.strip_skipped.locator(".group-toggle")
    @property
    def strip_tab_stops(self): return self.strip.locator('[tabindex="0"]')

    def strip_step_picture(self, taken_step: int) -> Locator:
        """The picture (button) of the n-th taken step, 1-based."""
        return self.page.locator(".cell:not([data-state='skipped']) > .cell-main").nth(taken_step - 1)

    def image_facts(self, locator: Locator) -> dict:
        """An <img>'s src, natural size and how the browser scales it (image-rendering)."""
        return locator.evaluate(
            "img => ({ src: img.getAttribute('src'), width: img.naturalWidth, height: img.naturalHeight,"
            " rendering: getComputedStyle(img).imageRendering })")

    def strip_focused(self) -> str | None:
        """What has the keyboard focus in the strip: "group", "init", "cell:<index>", "output", or None."""
        return self.page.evaluate(_STRIP_FOCUSED_JS)

    def strip_geometry(self) -> dict:
        """Boxes (x, y, width, height in viewport px) of the strip's area and of each piece's picture,
        its noise bar (with the bar's filled height) and the area's scroll sizes."""
        return self.page.evaluate(_STRIP_GEOMETRY_JS)

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

    def _data_transfer(self, name: str, mime: str, data: bytes):
        return self.page.evaluate_handle(_DATA_TRANSFER_JS, [name, mime, base64.b64encode(data).decode()])

    def drop_file(self, name: str, mime: str, data: bytes):
        """Drag a file over the drop zone (it lights up) and drop it there, with real DragEvents."""
        transfer = self._data_transfer(name, mime, data)
        self.dropzone.dispatch_event("dragenter", {"dataTransfer": transfer})
        expect(self.dropzone).to_have_class(re.compile(r"\bis-dragover\b"))
        self.dropzone.dispatch_event("dragover", {"dataTransfer": transfer})
        self.dropzone.dispatch_event("drop", {"dataTransfer": transfer})
        expect(self.dropzone).not_to_have_class(re.compile(r"\bis-dragover\b"))

    def paste_file(self, name: str, mime: str, data: bytes, target: Locator | None = None) -> bool:
        """Paste a file (a ClipboardEvent carrying it) into target, the prompt by default.
        Returns whether the page took the paste (defaultPrevented)."""
        transfer = self._data_transfer(name, mime, data)
        target = target or self.prompt
        return target.evaluate(
            """(el, transfer) => {
              el.focus();
              const event = new ClipboardEvent("paste", { clipboardData: transfer, bubbles: true, cancelable: true });
              el.dispatchEvent(event);
              return event.defaultPrevented;
            }""",
            transfer,
        )

    def expect_init_loaded(self, src: str | re.Pattern | None = None):
        """The init thumbnail is shown and its pixels actually arrived (not a broken image)."""
        expect(self.init_thumb).to_be_visible(timeout=15_000)
        if src is not None:
            expect(self.init_thumb).to_have_attribute("src", src)
        self.page.wait_for_function(
            "() => { const img = document.getElementById('init-thumb'); return img.complete && img.naturalWidth > 0; }",
            timeout=10_000,
        )

    def record_model_statuses(self):
        """Record every (data-status, data-model) the model status takes from now on, in order."""
        self.page.evaluate(_RECORD_MODEL_STATUS_JS)

    def model_statuses(self) -> list[list[str]]:
        return self.page.evaluate("() => window.__modelStatuses")

    def choose_model(self, name: str):
        self.model_picker.select_option(name)

    def set_lora(self, name: str, *, enabled: bool | None = None, weight: float | None = None):
        if enabled is not None:
            self.lora_enable(name).set_checked(enabled)
        if weight is not None:
            self.set_field(self.lora_weight(name), f"{weight}")

    def record_connection_states(self):
        self.page.evaluate(_RECORD_CONNECTION_JS)

    def connection_states(self) -> list[str]:
        return self.page.evaluate("() => window.__connectionStates")

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

    def erase_rect(self, x0: float, y0: float, x1: float, y1: float):
        """Rub the eraser over a rectangle given as fractions of the pad: horizontal strokes,
        closer together than the brush is wide, so the whole rectangle is covered."""
        self.tool_eraser.click()
        self.brush_size.fill("24")
        box = self.canvas.bounding_box()
        assert box, "the drawing pad is not visible"
        mouse = self.page.mouse
        rows = 8
        for r in range(rows + 1):
            y = box["y"] + (y0 + (y1 - y0) * r / rows) * box["height"]
            mouse.move(box["x"] + x0 * box["width"], y)
            mouse.down()
            mouse.move(box["x"] + x1 * box["width"], y, steps=6)
            mouse.up()

    def fetch_png(self, url: str) -> Image.Image:
        """GET an image the server serves (an output, an upload) as a PIL image."""
        response = self.page.request.get(self.server.base_url + url)
        assert response.ok, f"GET {url}: {response.status}"
        return Image.open(io.BytesIO(response.body()))

    def set_field(self, locator: Locator, value: str):
        locator.fill(value)
        locator.blur()

    def server_plan(self, **query) -> dict:
        """GET /api/plan with these query parameters, as the server answers it."""
        response = self.page.request.get(self.server.base_url + "/api/plan", params={k: str(v) for k, v in query.items()})
        assert response.ok, f"GET /api/plan {query}: {response.status} {response.text()}"
        return response.json()

    def output_name(self) -> str:
        src = self.output.get_attribute("src") or ""
        match = re.search(r"/outputs/([^/?#]+)$", src)
        assert match, f"the output image has no /outputs/ URL: {src!r}"
        return match.group(1)

    def scroll_controls_to_top(self):
        self.page.locator(".controls-scroll").evaluate("el => { el.scrollTop = 0; }")

    # --- send to init, the lightbox and its before/after compare, PNG drop -> settings -------------
    @property
    def viewer_send_to_init(self): return self.viewer.get_by_test_id("send-to-init")
    @property
    def viewer_enlarge(self): return self.viewer.get_by_test_id("enlarge")
    @property
    def lightbox(self): return self.by_testid("lightbox")
    @property
    def compare(self): return self.lightbox.get_by_test_id("compare")
    @property
    def compare_divider(self): return self.compare.get_by_role("slider")
    @property
    def lightbox_note(self): return self.lightbox.get_by_test_id("lightbox-note")
    @property
    def lightbox_frame(self): return self.page.locator("#lightbox-frame")
    @property
    def lightbox_close(self): return self.lightbox.get_by_role("button", name="Close")
    @property
    def png_info(self): return self.by_testid("png-info")
    @property
    def png_info_summary(self): return self.png_info.get_by_test_id("png-info-summary")
    @property
    def png_restore(self): return self.by_testid("png-restore")
    @property
    def png_use_init(self): return self.by_testid("png-use-init")
    @property
    def png_both(self): return self.by_testid("png-both")
    @property
    def negative_prompt(self): return self.page.locator("#negative-prompt")
    @property
    def random_seed(self): return self.page.locator("#random-seed")

    def output_item_show(self, n: int) -> Locator:
        """The output's own button (its thumbnail and label): shows it large."""
        return self.output_items.nth(n).locator("button[data-item]")

    def output_send_to_init(self, n: int) -> Locator:
        return self.output_items.nth(n).get_by_test_id("send-to-init")

    def output_item_url(self, n: int) -> str:
        src = self.output_items.nth(n).locator("img").get_attribute("src") or ""
        assert src.startswith("/outputs/"), f"output {n} has no /outputs/ URL: {src!r}"
        return src

    def expect_upload(self):
        """A context manager catching the next POST /api/uploads; .value.json() is its answer."""
        return self.page.expect_response(lambda r: r.url.endswith("/api/uploads") and r.request.method == "POST")

    def set_divider_by_drag(self, fraction: float):
        """Press on the compare at `fraction` of its width, then drag a little further along."""
        box = self.compare.bounding_box()
        assert box, "the compare is not visible"
        y = box["y"] + box["height"] * 0.5
        mouse = self.page.mouse
        mouse.move(box["x"] + box["width"] * 0.5, y)
        mouse.down()
        mouse.move(box["x"] + box["width"] * fraction, y, steps=6)
        mouse.up()

    def divider_percent(self) -> float:
        return float(self.compare_divider.get_attribute("aria-valuenow"))

    def frame_pixels(self) -> Image.Image:
        """What the lightbox shows: a screenshot of its picture, RGB."""
        return Image.open(io.BytesIO(self.lightbox_frame.screenshot())).convert("RGB")

    def screenshot(self, path: Path, full_page: bool = False):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path), full_page=full_page)
