"""At least N taken steps, in the page: the strip grows to the raised plan while the strength
slider moves, and the run sends exactly the taken steps the plan promised."""
from __future__ import annotations

from playwright.sync_api import expect

from studio_page import RUN_TIMEOUT_MS


def smallest_total(steps: int, strength: float, minimum: int) -> int:
    """The guide's skip arithmetic: a total N takes int(N * strength) steps; the smallest N >= steps taking enough."""
    return next(n for n in range(steps, 10_000) if int(n * strength) >= minimum)


def test_min_taken_steps_raises_the_strip_and_every_raised_step_arrives(studio, server, screenshots_dir):
    studio.upload_sketch()
    studio.set_steps(10)
    studio.set_strength(0.7)
    expect(studio.plan_summary).to_contain_text("10 steps · 7 taken / 3 skipped")

    # 7 are taken already, so a minimum of 6 changes nothing.
    studio.set_field(studio.min_taken_steps, "6")
    expect(studio.min_taken_steps).to_have_value("6")
    expect(studio.plan_summary).to_have_text("10 steps · 7 taken / 3 skipped")
    expect(studio.cells).to_have_count(10)

    # Down to 0.30 one keyboard step at a time, as a person drags: 10 steps would take int(10 * 0.3) = 3.
    studio.strength_keys("ArrowLeft", 40)
    expect(studio.strength_value).to_have_text("0.30")
    total = smallest_total(10, 0.3, 6)
    assert total == 20  # int(19 * 0.3) = 5, int(20 * 0.3) = 6
    plan = studio.server_plan(steps=10, strength=0.3, min_taken_steps=6, sampler=studio.sampler.input_value())
    assert plan["raised_for_min_taken"] and plan["taken"] == 6 and plan["steps_requested"] == 10
    assert plan["skipped"] + plan["taken"] == plan["steps_total"]
    assert plan["num_inference_steps"] == total
    expect(studio.plan_summary).to_have_text(
        f"{plan['steps_total']} steps · 6 taken / {plan['skipped']} skipped · raised from 10 to take at least 6")
    expect(studio.cells).to_have_count(plan["steps_total"])
    expect(studio.cells_in("skipped")).to_have_count(plan["skipped"])
    expect(studio.cells_in("pending")).to_have_count(6)
    studio.min_taken_steps.scroll_into_view_if_needed()
    studio.screenshot(screenshots_dir / "min-taken-steps-raised-1280x800.png")

    before = set(server.saved_files())
    studio.generate()
    studio.wait_for_state("done", timeout=RUN_TIMEOUT_MS)
    # One frame per taken step, each in its own cell after the skipped ones.
    expect(studio.cells).to_have_count(plan["steps_total"])
    expect(studio.cells_in("done")).to_have_count(6)
    expect(studio.cells_in("pending")).to_have_count(0)
    expect(studio.cells_in("skipped")).to_have_count(plan["skipped"])
    name = studio.output_name()
    assert set(server.saved_files()) - before == {server.outputs / name}
    saved = next(o for o in studio.page.request.get(server.base_url + "/api/outputs").json() if o["name"] == name)
    meta = saved["metadata"]
    assert (meta["steps"], meta["min_taken_steps"], meta["steps_total"], meta["taken"]) == (
        10, 6, plan["steps_total"], 6)
    studio.screenshot(screenshots_dir / "min-taken-steps-done-1280x800.png")


def test_exact_steps_sets_the_minimum_aside(studio, screenshots_dir):
    studio.upload_sketch()
    studio.set_steps(4)
    studio.set_strength(0.5)
    studio.set_field(studio.min_taken_steps, "5")
    # 4 steps at 0.5 take 2; int(10 * 0.5) = 5 is the first total taking 5.
    expect(studio.plan_summary).to_have_text("10 steps · 5 taken / 5 skipped · raised from 4 to take at least 5")
    expect(studio.min_taken_hint).to_have_text("0 = off")

    # Exact steps says how many are taken itself (4 here), so the minimum is greyed out and not applied.
    studio.exact_steps_switch.click()
    expect(studio.exact_steps).to_be_checked()
    expect(studio.min_taken_steps).to_be_disabled()
    expect(studio.min_taken_hint).to_have_text("exact steps decide")
    expect(studio.plan_summary).to_contain_text("4 taken / 4 skipped")
    expect(studio.plan_summary).not_to_contain_text("raised")
    expect(studio.cells_in("pending")).to_have_count(4)
    studio.min_taken_steps.scroll_into_view_if_needed()
    studio.screenshot(screenshots_dir / "min-taken-steps-exact-1280x800.png")
