import { test } from "node:test";
import assert from "node:assert/strict";
import { CELL, cellIndexForStep, initCaption, placeFrame, planSummary, stepCaption, stripFromPlan, stripProgress } from "../strip.js";

// The seed document's table: N=10, strength 0.7 -> 3 skipped, 7 taken.
const plan = {
  steps_total: 10,
  skipped: 3,
  taken: 7,
  timesteps: [999, 899, 799, 699, 599, 499, 399, 299, 199, 99],
  sigmas: [14.6, 8.1, 4.9, 3.1, 2.0, 1.3, 0.8, 0.5, 0.3, 0.1],
};

test("one cell per scheduled step, the skipped ones first", () => {
  const strip = stripFromPlan(plan);
  assert.equal(strip.cells.length, 10);
  assert.deepEqual(strip.cells.map((c) => c.state), [
    "skipped", "skipped", "skipped", "pending", "pending", "pending", "pending", "pending", "pending", "pending",
  ]);
  assert.deepEqual(strip.cells.map((c) => c.takenStep), [null, null, null, 1, 2, 3, 4, 5, 6, 7]);
  assert.equal(strip.cells[3].timestep, 699);
  assert.equal(strip.cells[3].sigma, 3.1);
});

test("strength 0.4 at 10 steps: 6 skipped, 4 taken", () => {
  const strip = stripFromPlan({ steps_total: 10, skipped: 6, taken: 4, timesteps: [] });
  assert.equal(strip.cells.filter((c) => c.state === CELL.SKIPPED).length, 6);
  assert.equal(strip.taken, 4);
  assert.equal(strip.cells[0].timestep, null);
});

test("an empty or broken plan gives an empty strip", () => {
  assert.equal(stripFromPlan(null).cells.length, 0);
  assert.equal(stripFromPlan({ steps_total: "ten" }).cells.length, 0);
  assert.equal(stripFromPlan({ steps_total: 4, skipped: 9 }).skipped, 4);
});

test("step i goes to cell skipped + i; the init frame has no step cell", () => {
  const strip = stripFromPlan(plan);
  assert.equal(cellIndexForStep(strip, { kind: "init", index: -1 }), -1);
  assert.equal(cellIndexForStep(strip, { kind: "x_t", index: 0 }), 3);
  assert.equal(cellIndexForStep(strip, { kind: "x0", index: 6 }), 9);
  assert.equal(cellIndexForStep(strip, { kind: "x_t", index: 7 }), -1, "past the end");
  assert.equal(cellIndexForStep(strip, { kind: "x_t", index: -1 }), -1, "a step frame needs index >= 0");
  assert.equal(cellIndexForStep(strip, { kind: "x_t" }), -1);
});

test("the init frame has a place of its own, except in txt2img and at strength 0", () => {
  let strip = stripFromPlan(plan);
  assert.equal(strip.hasInit, true);
  const before = strip;
  strip = placeFrame(strip, { kind: "init", index: -1 }, "blob:init");
  assert.equal(strip.initFrame, "blob:init");
  assert.equal(before.initFrame, null, "the old strip is not changed");
  assert.deepEqual(strip.cells.map((c) => c.state), before.cells.map((c) => c.state), "no step cell changes for it");

  const txt2img = stripFromPlan({ steps_total: 10, skipped: 0, taken: 10 }, { txt2img: true });
  assert.equal(txt2img.hasInit, false);
  assert.equal(placeFrame(txt2img, { kind: "init", index: -1 }, "u"), txt2img);
  // Strength 0 takes nothing: the init comes back unchanged, SD sees nothing.
  const none = stripFromPlan({ steps_total: 10, skipped: 10, taken: 0 });
  assert.equal(none.hasInit, false);
  assert.equal(placeFrame(none, { kind: "init", index: -1 }, "u"), none);
});

test("a step's frame: the strip's picture, and the viewer's x0 when the step carried one", () => {
  let strip = placeFrame(stripFromPlan(plan), { kind: "x_t", index: 2 }, "blob:xt", "blob:x0");
  assert.deepEqual([strip.cells[5].state, strip.cells[5].frame, strip.cells[5].large, strip.cells[5].kind], ["done", "blob:xt", "blob:x0", "x_t"]);
  strip = placeFrame(strip, { kind: "x_t", index: 3 }, "blob:xt3");
  assert.equal(strip.cells[6].large, null);
});

test("the viewer's caption says which picture is which", () => {
  let strip = placeFrame(stripFromPlan(plan), { kind: "x_t", index: 2 }, "s", "l");
  assert.equal(stepCaption(strip.cells[5], strip), "Step 3 of 7 · large: predicted result x0 · strip: noisy latent xt · t 499");
  strip = placeFrame(strip, { kind: "x_t", index: 3 }, "s");
  assert.equal(stepCaption(strip.cells[6], strip), "Step 4 of 7 · noisy latent xt · t 399");
  strip = placeFrame(strip, { kind: "x0", index: 4 }, "s");
  assert.equal(stepCaption(strip.cells[7], strip), "Step 5 of 7 · predicted result x0 · t 299");
});

test("the init frame's caption says how noisy it is and where it enters", () => {
  assert.equal(initCaption(stripFromPlan(plan)), "What SD sees: the init image noised to σ 3.10 (t 699), where step 1 of 7 starts");
  assert.equal(initCaption(stripFromPlan({ steps_total: 10, skipped: 6, taken: 4 })), "What SD sees: the init image noised, where step 1 of 4 starts");
});

test("filling every taken step: 3 skipped, 7 done", () => {
  let strip = placeFrame(stripFromPlan(plan), { kind: "init", index: -1 }, "i");
  for (let i = 0; i < 7; i++) strip = placeFrame(strip, { kind: "x_t", index: i }, `f${i}`);
  const states = strip.cells.map((c) => c.state);
  assert.equal(states.filter((s) => s === "skipped").length, 3);
  assert.equal(states.filter((s) => s === "done").length, 7);
  assert.deepEqual(stripProgress(strip), { done: 7, taken: 7, skipped: 3, stepsTotal: 10 });
});

test("the plan summary", () => {
  assert.equal(planSummary(plan), "10 steps · 7 taken / 3 skipped");
  assert.equal(planSummary({ steps_total: 10, skipped: 6, taken: 4 }), "10 steps · 4 taken / 6 skipped");
  assert.match(planSummary({ steps_total: 20, skipped: 0, taken: 20 }, { txt2img: true }), /all taken/);
  assert.match(planSummary({ steps_total: 10, skipped: 10, taken: 0 }), /unchanged/);
});

test("a total raised for a minimum of taken steps says so in the summary", () => {
  // /api/plan?steps=20&strength=0.3&min_taken_steps=10: int(34 * 0.3) = 10.
  const raised = { steps_total: 34, skipped: 24, taken: 10, steps_requested: 20, num_inference_steps: 34,
    min_taken_steps: 10, raised_for_min_taken: true };
  assert.equal(planSummary(raised), "34 steps · 10 taken / 24 skipped · raised from 20 to take at least 10");
  assert.equal(stripFromPlan(raised).cells.length, 34);
  // Enough taken already: nothing to say.
  assert.equal(planSummary({ ...raised, steps_total: 20, skipped: 10, taken: 10, num_inference_steps: 20,
    raised_for_min_taken: false }), "20 steps · 10 taken / 10 skipped");
});

test("inpainting shows in the plan summary; the job badge names mode, output and sweep strength", async () => {
  const { jobModeText } = await import("../strip.js");
  assert.equal(planSummary({ steps_total: 10, skipped: 3, taken: 7 }, { inpaint: true }), "inpaint · 10 steps · 7 taken / 3 skipped");
  assert.equal(planSummary({ steps_total: 10, skipped: 0, taken: 10 }, { txt2img: true, inpaint: true }), "10 steps · all taken (txt2img)");
  assert.equal(jobModeText({ mode: "inpaint" }), "inpaint");
  assert.equal(jobModeText({ mode: "img2img", item: 1, items: 4, strength: 0.4 }, { sweep: true }), "img2img · output 2 of 4 · strength 0.4");
  assert.equal(jobModeText({ mode: "img2img", item: 3, items: 4, strength: 0.8, steps_total: 10, skipped: 2, taken: 8 }, { sweep: true }),
    "img2img · output 4 of 4 · strength 0.8 · 8 taken / 2 skipped");
  assert.equal(jobModeText({ mode: "img2img", item: 0, items: 3, strength: 0.7 }), "img2img · output 1 of 3");
  assert.equal(jobModeText(null), "");
});
