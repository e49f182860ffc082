import { test } from "node:test";
import assert from "node:assert/strict";
import { LAYOUT_DEFAULTS, barHeight, stripLayout } from "../strip-layout.js";

// The strip's inner width in the studio's middle column at 1280×800, and the most height it may take there.
const ROOM_1280 = { width: 624, maxHeight: 176 };
const GAP = LAYOUT_DEFAULTS.gap;

/** Every area of a layout as [name, {row, col, rowSpan, colSpan}], in reading order of the strip. */
function areas(at) {
  const list = [];
  if (at.group && !at.toggle) list.push(["group", at.group]);
  if (at.toggle) list.push(["toggle", at.toggle]);
  at.skipped.forEach((p, i) => list.push([`skipped ${i}`, { rowSpan: 1, colSpan: 1, ...p }]));
  if (at.init) list.push(["init", at.init]);
  at.steps.forEach((p, i) => list.push([`step ${i}`, { rowSpan: 1, colSpan: 1, ...p }]));
  list.push(["output", at.output]);
  return list;
}

/** No two areas share a grid slot, and all lie inside the grid. */
function assertNoOverlap(at) {
  const taken = new Map();
  for (const [name, a] of areas(at)) {
    for (let r = a.row; r < a.row + a.rowSpan; r++) {
      for (let c = a.col; c < a.col + a.colSpan; c++) {
        assert.ok(r >= 1 && r <= at.rows && c >= 1 && c <= at.columns, `${name} is outside the grid`);
        assert.ok(!taken.has(`${r},${c}`), `${name} overlaps ${taken.get(`${r},${c}`)}`);
        taken.set(`${r},${c}`, name);
      }
    }
  }
}

test("strength 0.7 at 10 steps: the seed document's row, skipped block, init, 7 steps, output, in one row", () => {
  const at = stripLayout({ skipped: 3, taken: 7, init: true }, ROOM_1280);
  assert.equal(at.rows, 1);
  assert.equal(at.columns, 10);
  // 10 cells and 9 gaps in 624 px: 10 * 58 + 36 = 616.
  assert.equal(at.cell, 58);
  assert.deepEqual(at.group, { row: 1, col: 1, rowSpan: 1, colSpan: 1 });
  assert.deepEqual(at.init, { row: 1, col: 2, rowSpan: 1, colSpan: 1 });
  assert.deepEqual(at.steps.map((p) => p.col), [3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual(at.output, { row: 1, col: 10, rowSpan: 1, colSpan: 1 });
  assert.deepEqual(at.skipped, [], "closed: the skipped cells are slivers inside the block");
  assert.equal(at.width, 616);
  assert.equal(at.height, 58 + barHeight(58));
});

test("strength 0.4 at 10 steps: 6 skipped in one block, init, 4 steps, output; larger cells", () => {
  const at = stripLayout({ skipped: 6, taken: 4, init: true }, ROOM_1280);
  assert.equal(at.rows, 1);
  assert.equal(at.columns, 7);
  assert.equal(at.cell, 85); // 7 * 85 + 6 * 4 = 619
  assert.deepEqual(at.steps.map((p) => p.col), [3, 4, 5, 6]);
});

test("opening the skipped block gives each skipped step a cell of its own, and it all still fits", () => {
  const at = stripLayout({ skipped: 3, taken: 7, init: true, expanded: true }, ROOM_1280);
  assert.equal(at.rows, 1);
  assert.equal(at.columns, 13); // the block's button, 3 skipped, init, 7 steps, output
  assert.equal(at.cell, 44); // 13 * 44 + 12 * 4 = 620
  assert.deepEqual(at.toggle, { row: 1, col: 1, rowSpan: 1, colSpan: 1 });
  assert.deepEqual(at.skipped.map((p) => p.col), [2, 3, 4]);
  assert.equal(at.init.col, 5);
  assertNoOverlap(at);
});

test("50 steps wrap into rows: every cell placed once, inside the width and the height, in reading order", () => {
  for (const counts of [
    { skipped: 15, taken: 35, init: true },
    { skipped: 15, taken: 35, init: true, expanded: true },
    { skipped: 0, taken: 50, init: true }, // strength 1.0 with an init image
    { skipped: 0, taken: 50, init: false }, // txt2img
  ]) {
    const at = stripLayout(counts, ROOM_1280);
    const what = JSON.stringify(counts);
    assert.ok(at.rows > 1, `${what}: one row would make ${Math.floor(624 / 52)} px cells`);
    assert.equal(at.overflow, false, what);
    assert.ok(at.width <= ROOM_1280.width, `${what}: ${at.width} px wide`);
    assert.ok(at.height <= ROOM_1280.maxHeight, `${what}: ${at.height} px tall`);
    assert.ok(at.cell >= 24, `${what}: ${at.cell} px cells`);
    assert.equal(at.steps.length, counts.taken);
    assert.equal(at.skipped.length, counts.expanded ? counts.skipped : 0);
    assert.equal(at.init != null, counts.init);
    assert.equal(at.group != null, counts.skipped > 0);
    assertNoOverlap(at);
    // Steps read left to right, then on the next row; the output closes the grid.
    const order = at.steps.map((p) => (p.row - 1) * 1000 + p.col);
    assert.deepEqual(order, [...order].sort((a, b) => a - b), what);
    assert.equal(at.output.col + at.output.colSpan - 1, at.columns);
    // The init and the output stay pictures of their own, larger than a step.
    if (at.init) assert.equal(at.init.colSpan, 2);
    assert.equal(at.output.rowSpan, at.rows);
  }
});

test("the init cell and the skipped block come before every step, the output after", () => {
  const at = stripLayout({ skipped: 15, taken: 35, init: true }, ROOM_1280);
  const firstStep = Math.min(...at.steps.map((p) => p.col));
  const lastStep = Math.max(...at.steps.map((p) => p.col));
  assert.ok(at.group.col + at.group.colSpan <= at.init.col);
  assert.ok(at.init.col + at.init.colSpan <= firstStep);
  assert.ok(lastStep < at.output.col);
});

test("txt2img has neither a skipped block nor an init cell", () => {
  const at = stripLayout({ skipped: 0, taken: 10, init: false }, ROOM_1280);
  assert.equal(at.group, null);
  assert.equal(at.init, null);
  assert.equal(at.columns, 11);
  assert.deepEqual(at.steps[0], { row: 1, col: 1 });
});

test("a schedule too long for the height keeps the width and says it overflows (the strip scrolls down)", () => {
  const at = stripLayout({ skipped: 0, taken: 200, init: true }, { width: 300, maxHeight: 60 });
  assert.equal(at.overflow, true);
  assert.ok(at.width <= 300);
  assert.ok(at.cell >= LAYOUT_DEFAULTS.minCell);
  assertNoOverlap(at);
});

test("a narrow window: more rows, still inside the width", () => {
  const at = stripLayout({ skipped: 15, taken: 35, init: true }, { width: 360, maxHeight: 176 });
  assert.ok(at.width <= 360);
  assert.ok(at.height <= 176);
  assertNoOverlap(at);
});

test("no room measured yet (a hidden strip) still gives a whole layout", () => {
  const at = stripLayout({ skipped: 3, taken: 7, init: true }, { width: 0, maxHeight: 0 });
  assert.equal(at.steps.length, 7);
  assert.ok(at.cell >= LAYOUT_DEFAULTS.minCell);
});

test("the noise bar grows with the cell, within 6 to 14 px", () => {
  assert.deepEqual([12, 32, 58, 88].map(barHeight), [6, 8, 14, 14]);
  assert.equal(GAP, 4);
});
