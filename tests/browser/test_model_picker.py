"""The model picker and the LoRA list in Chromium: switch models and watch the load, generate with
a LoRA at two weights, see the weights in the gallery, restore them with "use these settings".

The models folder holds two small SD 1.x checkpoints (random weights, different seeds), a file
the studio refuses, and a Kohya-format LoRA built for the same small architecture."""
from __future__ import annotations

import shutil

import pytest
import torch
from playwright.sync_api import expect

from conftest import launch_server, stop_server, wait_until_ready
from studio_page import RUN_TIMEOUT_MS, StudioPage

FIRST, SECOND, REFUSED, LORA = "sd1-a.safetensors", "sd1-b.safetensors", "weights.bin", "ink.safetensors"
FAMILY = "Stable Diffusion 1.x"


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    from tests import checkpoint_families as families
    from tests.lora_files import random_lora, write_kohya_lora

    root = tmp_path_factory.mktemp("models")
    shutil.copy(families.cached_checkpoint("sd1", "small", torch.float32, seed=0), root / FIRST)
    shutil.copy(families.cached_checkpoint("sd1", "small", torch.float32, seed=1), root / SECOND)
    (root / REFUSED).write_bytes(b"\0" * 64)
    write_kohya_lora(random_lora(families.build_components("sd1", "small"), seed=3), root / "loras" / LORA)
    return root


@pytest.fixture(scope="module")
def library_server(tmp_path_factory, models_dir):
    srv = wait_until_ready(launch_server(tmp_path_factory, "--models-dir", str(models_dir), "--model", FIRST))
    yield srv
    stop_server(srv)


@pytest.fixture
def page_at(browser, library_server):
    """page_at(width, height): a fresh page on the studio with the models folder."""
    contexts = []

    def open_page(width: int = 1280, height: int = 800) -> StudioPage:
        context = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
        studio = StudioPage(page, library_server)
        studio.errors = errors
        studio.open()
        return studio

    yield open_page
    for context in contexts:
        context.close()


def test_switch_models_generate_with_a_lora_at_two_weights_and_restore_it(page_at, library_server, screenshots_dir):
    studio = page_at()
    # The picker lists the folder: families shown, the refused file disabled with its reason.
    expect(studio.model_picker).to_be_visible()
    expect(studio.model_picker).to_have_value(FIRST)
    expect(studio.model_option(SECOND)).to_have_text(f"{SECOND} — {FAMILY}")
    expect(studio.model_option(REFUSED)).to_be_disabled()
    expect(studio.model_option(REFUSED)).to_contain_text("refused:")
    expect(studio.lora_rows).to_have_count(1)
    expect(studio.lora_row(LORA)).to_contain_text("SD 1.x")
    expect(studio.lora_enable(LORA)).to_be_enabled()
    expect(studio.lora_weight(LORA)).to_have_value("1")

    # Switch: the status shows the load of the new model, then ready with its name.
    studio.record_model_statuses()
    studio.choose_model(SECOND)
    expect(studio.model_status).to_have_attribute("data-model", SECOND, timeout=60_000)
    expect(studio.model_status).to_have_attribute("data-status", "ready", timeout=60_000)
    expect(studio.model_picker).to_have_value(SECOND)
    statuses = studio.model_statuses()
    assert ["loading", SECOND] in statuses, statuses
    assert statuses[-1] == ["ready", SECOND], statuses
    listing = studio.page.request.get(library_server.base_url + "/api/models").json()
    assert listing["current"] == SECOND

    # A refused entry cannot be chosen: the option is disabled, so the selection stays.
    with pytest.raises(Exception):
        studio.model_picker.select_option(REFUSED, timeout=1_000)
    expect(studio.model_picker).to_have_value(SECOND)

    # Two jobs with the LoRA, at 0.5 and then 1.5; small and few steps to stay quick.
    studio.set_field(studio.width, "64")
    studio.set_field(studio.height, "64")
    studio.set_steps(2)
    studio.prompt.fill("an ink drawing of a lighthouse")
    studio.set_lora(LORA, enabled=True, weight=0.5)
    expect(studio.lora_weight_slider(LORA)).to_have_value("0.5")
    studio.lora_list.scroll_into_view_if_needed()
    studio.screenshot(screenshots_dir / "model-picker-lora-1280x800.png")
    for weight in (0.5, 1.5):
        studio.set_lora(LORA, weight=weight)
        studio.generate()
        studio.wait_for_state("done", timeout=RUN_TIMEOUT_MS)
        expect(studio.gallery_model(0)).to_contain_text(f"<lora:ink:{weight}>", timeout=15_000)

    # Each output's metadata names the model and the LoRA at its weight, newest first.
    expect(studio.gallery_model(0)).to_have_text(f"{SECOND} · <lora:ink:1.5>")
    expect(studio.gallery_model(1)).to_have_text(f"{SECOND} · <lora:ink:0.5>")
    outputs = studio.page.request.get(library_server.base_url + "/api/outputs").json()
    recorded = [(o["metadata"]["model"]["name"], [(l["name"], l["weight"]) for l in o["metadata"]["loras"]])
                for o in outputs[:2]]
    assert recorded == [(SECOND, [(LORA, 1.5)]), (SECOND, [(LORA, 0.5)])]
    assert all(len(o["metadata"]["loras"][0]["sha256"]) == 64 for o in outputs[:2])
    studio.screenshot(screenshots_dir / "model-picker-gallery-1280x800.png")

    # Back on the first model with the LoRA off; "use these settings" on the first job brings
    # back its LoRA at 0.5 and its model.
    studio.set_lora(LORA, enabled=False, weight=1)
    studio.choose_model(FIRST)
    expect(studio.model_status).to_have_attribute("data-model", FIRST, timeout=60_000)
    expect(studio.model_status).to_have_attribute("data-status", "ready", timeout=60_000)
    studio.gallery_use(1).click()
    expect(studio.lora_enable(LORA)).to_be_checked()
    expect(studio.lora_weight(LORA)).to_have_value("0.5")
    expect(studio.lora_weight_slider(LORA)).to_have_value("0.5")
    expect(studio.model_picker).to_have_value(SECOND, timeout=15_000)
    expect(studio.model_status).to_have_attribute("data-model", SECOND, timeout=60_000)
    expect(studio.model_status).to_have_attribute("data-status", "ready", timeout=60_000)
    studio.lora_list.scroll_into_view_if_needed()
    studio.screenshot(screenshots_dir / "model-picker-restored-1280x800.png")
    assert not [e for e in studio.errors if e.startswith("pageerror")], studio.errors


def test_narrow_page_keeps_the_picker_and_lora_rows_inside(page_at, screenshots_dir):
    studio = page_at(420, 860)
    expect(studio.model_picker).to_be_visible()
    expect(studio.lora_rows).to_have_count(1)
    studio.lora_list.scroll_into_view_if_needed()
    # Nothing wider than the viewport: the picker shrinks, long names are cut with an ellipsis.
    overflow = studio.page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than the viewport"
    for locator in (studio.model_picker, studio.lora_row(LORA)):
        box = locator.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 420, box
    studio.page.screenshot(path=str(screenshots_dir / "model-picker-narrow-420.png"))
    studio.scroll_controls_to_top()
    studio.page.evaluate("() => window.scrollTo(0, 0)")
    studio.page.screenshot(path=str(screenshots_dir / "model-picker-narrow-420-top.png"))
