import { test, mock } from "node:test";
import assert from "node:assert/strict";
import { SliderIntent, debounce, throttle } from "../timing.js";

// Fake timers: a clock we move by hand.
function fakeTimers() {
  let now = 0;
  let nextId = 1;
  const pending = new Map();
  return {
    now: () => now,
    setTimeout(fn, ms) {
      const id = nextId++;
      pending.set(id, { fn, at: now + ms });
      return id;
    },
    clearTimeout(id) {
      pending.delete(id);
    },
    advance(ms) {
      const end = now + ms;
      for (;;) {
        const due = [...pending.entries()].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
        if (!due) break;
        pending.delete(due[0]);
        now = due[1].at;
        due[1].fn();
      }
      now = end;
    },
  };
}

test("debounce calls once, with the last arguments, after calls stop", () => {
  const timers = fakeTimers();
  const fn = mock.fn();
  const d = debounce(fn, 300, timers);
  d(1);
  timers.advance(200);
  d(2);
  timers.advance(299);
  assert.equal(fn.mock.callCount(), 0);
  timers.advance(1);
  assert.deepEqual(fn.mock.calls.map((c) => c.arguments), [[2]]);
});

test("debounce cancel and flush", () => {
  const timers = fakeTimers();
  const fn = mock.fn();
  const d = debounce(fn, 100, timers);
  d("a");
  d.cancel();
  timers.advance(500);
  assert.equal(fn.mock.callCount(), 0);
  d("b");
  d.flush();
  assert.deepEqual(fn.mock.calls[0].arguments, ["b"]);
  d.flush();
  assert.equal(fn.mock.callCount(), 1, "flush with nothing pending does nothing");
});

test("throttle: first call at once, then one trailing call with the latest value", () => {
  const timers = fakeTimers();
  const fn = mock.fn();
  const t = throttle(fn, 50, timers);
  t(1);
  t(2);
  t(3);
  assert.deepEqual(fn.mock.calls.map((c) => c.arguments[0]), [1]);
  timers.advance(50);
  assert.deepEqual(fn.mock.calls.map((c) => c.arguments[0]), [1, 3]);
  timers.advance(500);
  assert.equal(fn.mock.callCount(), 2);
});

test("slider: counts follow the thumb while dragging, commit only after a 300 ms pause", () => {
  const timers = fakeTimers();
  const previews = [];
  const commits = [];
  const slider = new SliderIntent({ onPreview: (v) => previews.push(v), onCommit: (v) => commits.push(v), timers });
  for (const v of ["0.70", "0.65", "0.60", "0.55", "0.50"]) {
    slider.input(v);
    timers.advance(40);
  }
  assert.ok(previews.length >= 3, `previews while dragging: ${previews}`);
  assert.deepEqual(commits, [], "no regenerate while the thumb keeps moving");
  timers.advance(300);
  assert.deepEqual(commits, ["0.50"], "pausing commits the value once");
  assert.equal(previews.at(-1), "0.50", "the last preview is the resting value");
});

test("slider: releasing commits at once, and not again for the same value", () => {
  const timers = fakeTimers();
  const commits = [];
  const slider = new SliderIntent({ onPreview: () => {}, onCommit: (v) => commits.push(v), timers });
  slider.input("0.40");
  slider.release("0.40");
  assert.deepEqual(commits, ["0.40"]);
  timers.advance(1000);
  assert.deepEqual(commits, ["0.40"], "the pause timer was cancelled by the release");
  slider.input("0.40");
  timers.advance(400);
  slider.release("0.40");
  assert.deepEqual(commits, ["0.40"], "same value, no new run");
  slider.reset();
  slider.release("0.40");
  assert.deepEqual(commits, ["0.40", "0.40"], "after reset (other settings changed) it runs again");
});

test("slider: a pause then a release on the same value commits once", () => {
  const timers = fakeTimers();
  const commits = [];
  const slider = new SliderIntent({ onPreview: () => {}, onCommit: (v) => commits.push(v), timers });
  slider.input("0.3");
  timers.advance(350);
  slider.release("0.3");
  assert.deepEqual(commits, ["0.3"]);
});
