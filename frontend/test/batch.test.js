// Multi-output jobs as data: entries filled from job_plan / job_output / job_done, and their labels.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  batchCounts, batchDone, batchHeader, batchKind, batchOutput, batchPlan, batchSize, entryCaption, entryLabel, entryParts, formatStrength, isMulti,
  lastVariation, newBatch,
} from "../batch.js";

const sweepMeta = (strength, taken, skipped) => ({ strength, taken, skipped, seed: 7, with_variations: [] });

test("what a payload asks for: sweep, variations, iterations or one image", () => {
  assert.equal(batchKind({ strengths: [0.2, 0.4] }), "sweep");
  assert.equal(batchSize({ strengths: [0.2, 0.4], iterations: 1 }), 2);
  assert.equal(batchKind({ variation_amount: 0.3, iterations: 3 }), "variations");
  assert.equal(batchSize({ variation_amount: 0.3, iterations: 3 }), 3);
  assert.equal(batchKind({ iterations: 4 }), "iterations");
  assert.equal(batchKind({ iterations: 1, variation_amount: 0 }), "single");
  assert.equal(isMulti(newBatch({ items: 1 })), false);
  assert.equal(isMulti(newBatch({ items: 3 })), true);
});

test("a sweep: pending entries say their strength; each fills from its plan and output", () => {
  let batch = newBatch({ items: 4, kind: "sweep", strengths: [0.2, 0.4, 0.6, 0.8] });
  assert.equal(entryLabel(batch.entries[1], "sweep"), "strength 0.4 · waiting");
  batch = batchPlan(batch, { item: 1, items: 4, strength: 0.4, seed: 7, steps_total: 10, taken: 4, skipped: 6 });
  assert.equal(batch.current, 1);
  assert.equal(entryLabel(batch.entries[1], "sweep"), "strength 0.4 · running…");
  batch = batchOutput(batch, { item: 1, items: 4, name: "000002.7.png", url: "/outputs/000002.7.png", seed: 7, metadata: sweepMeta(0.4, 4, 6) });
  assert.equal(batch.entries[1].state, "done");
  assert.equal(batch.entries[1].url, "/outputs/000002.7.png");
  assert.equal(entryLabel(batch.entries[1], "sweep"), "strength 0.4 · 4 taken / 6 skipped");
  assert.deepEqual(batchCounts(batch), { done: 1, items: 4, current: 1 });
});

test("job_done's outputs list is the whole truth, and it carries the contact sheet", () => {
  let batch = newBatch({ items: 2, kind: "sweep", strengths: [0.2, 0.8] });
  const outputs = [
    { name: "a.png", url: "/outputs/a.png", seed: 7, metadata: sweepMeta(0.2, 2, 8) },
    { name: "b.png", url: "/outputs/b.png", seed: 7, metadata: sweepMeta(0.8, 8, 2) },
  ];
  batch = batchDone(batch, { ...outputs[1], outputs, contact_sheet: { name: "sheet.png", url: "/outputs/sheet.png" } });
  assert.deepEqual(batch.entries.map((e) => entryLabel(e, "sweep")), ["strength 0.2 · 2 taken / 8 skipped", "strength 0.8 · 8 taken / 2 skipped"]);
  assert.deepEqual(batch.contactSheet, { name: "sheet.png", url: "/outputs/sheet.png" });
  assert.equal(entryCaption(batch.entries[0], batch), "Output 1 of 2 · strength 0.2 · seed 7 · 2 taken / 8 skipped");
  assert.equal(batchHeader(batch), "strength sweep of seed 7 · 2 of 2 done");
  assert.equal(batch.current, -1);
});

test("variations and iterations are labelled with their number, seed and variation", () => {
  let batch = newBatch({ items: 3, kind: "variations" });
  const meta = { seed: 42, with_variations: [[1234, 0.3]], taken: 7, skipped: 3, strength: 0.7 };
  batch = batchOutput(batch, { item: 2, url: "/outputs/c.png", seed: 42, metadata: meta });
  assert.deepEqual(entryParts(batch.entries[2], "variations"), { what: "#3 · +1234 @ 0.3", counts: "7 taken / 3 skipped" });
  assert.equal(entryLabel(batch.entries[2], "variations"), "#3 · +1234 @ 0.3 · 7 taken / 3 skipped");
  assert.equal(entryCaption(batch.entries[2], batch), "Output 3 of 3 · seed 42 + 1234 @ 0.30 · 7 taken / 3 skipped");
  assert.equal(batchHeader(batch), "variations of seed 42 · 1 of 3 done");
  const it = batchOutput(newBatch({ items: 2, kind: "iterations" }), { item: 0, url: "/o.png", seed: 9, metadata: { seed: 9, taken: 5, skipped: 5 } });
  assert.equal(entryLabel(it.entries[0], "iterations"), "#1 · seed 9 · 5 taken / 5 skipped");
  assert.equal(entryLabel(it.entries[1], "iterations"), "#2 · waiting");
  assert.equal(batchHeader(it), "iterations · 1 of 2 done");
});

test("the server's count resizes the row; late or odd events do not break it", () => {
  let batch = newBatch({ items: 1 });
  batch = batchPlan(batch, { item: 0, items: 3, seed: 1, taken: 2, skipped: 0, steps_total: 2 });
  assert.equal(batch.items, 3);
  batch = batchOutput(batch, { item: 4, url: "/x.png" });
  assert.equal(batch.items, 5);
  assert.equal(batch.entries[4].state, "done");
  assert.equal(batchPlan(newBatch({ items: 4, kind: "sweep" }), { item: 0, items: 2 }).entries.length, 2);
  const single = batchDone(newBatch({ items: 1 }), { name: "s.png", url: "/outputs/s.png", seed: 3, metadata: { seed: 3 } });
  assert.equal(single.entries[0].url, "/outputs/s.png");
  assert.equal(single.contactSheet, null);
});

test("helpers: strengths as typed, the last variation from either metadata shape", () => {
  assert.equal(formatStrength(0.4), "0.4");
  assert.equal(formatStrength(0.25), "0.25");
  assert.deepEqual(lastVariation({ with_variations: [[1, 0.1], [2, 0.2]] }), [2, 0.2]);
  assert.deepEqual(lastVariation({ with_variations: [], variation_seed: 5, variation_amount: 0.5 }), [5, 0.5]);
  assert.equal(lastVariation({ with_variations: [] }), null);
});
