// The compare divider's keyboard and pointer arithmetic (the slider's behaviour, without a DOM).
import { test } from "node:test";
import assert from "node:assert/strict";
import { dividerAfterKey, dividerAtPointer } from "../lightbox.js";

test("arrows step by 5 (Shift: 1), pages by 25, Home/End go to the ends, and it stays in 0..100", () => {
  assert.equal(dividerAfterKey(50, "ArrowRight"), 55);
  assert.equal(dividerAfterKey(50, "ArrowUp"), 55);
  assert.equal(dividerAfterKey(50, "ArrowLeft"), 45);
  assert.equal(dividerAfterKey(50, "ArrowLeft", { shift: true }), 49);
  assert.equal(dividerAfterKey(50, "PageUp"), 75);
  assert.equal(dividerAfterKey(10, "PageDown"), 0);
  assert.equal(dividerAfterKey(98, "ArrowRight"), 100);
  assert.equal(dividerAfterKey(37, "Home"), 0);
  assert.equal(dividerAfterKey(37, "End"), 100);
  assert.equal(dividerAfterKey(37, "Escape"), null, "keys it does not use are left to others");
  assert.equal(dividerAfterKey(37, "Enter"), null);
});

test("the pointer puts the divider where it is over the picture, clamped to its edges", () => {
  const box = { left: 100, width: 400 };
  assert.equal(dividerAtPointer(300, box), 50);
  assert.equal(dividerAtPointer(130, box), 7.5);
  assert.equal(dividerAtPointer(20, box), 0);
  assert.equal(dividerAtPointer(900, box), 100);
  assert.equal(dividerAtPointer(300, { left: 0, width: 0 }), 50, "a box not laid out yet keeps the start");
});
