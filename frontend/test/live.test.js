// Live mode's timing with a fake clock: a burst of edits ends in one run, after the pause.
import { test } from "node:test";
import assert from "node:assert/strict";
import { LiveTrigger } from "../live.js";
import { jobLabel } from "../queue-view.js";

function fakeClock() {
  let now = 0;
  let timers = [];
  return {
    setTimer: (fn, ms) => {
      const t = { fn, at: now + ms };
      timers.push(t);
      return t;
    },
    clearTimer: (t) => {
      timers = timers.filter((x) => x !== t);
    },
    advance(ms) {
      now += ms;
      const due = timers.filter((t) => t.at <= now);
      timers = timers.filter((t) => t.at > now);
      for (const t of due) t.fn();
    },
  };
}

test("edits run Live once, a pause after the last one", () => {
  const clock = fakeClock();
  let runs = 0;
  const live = new LiveTrigger({ fire: () => runs++, delay: 300, ...clock });
  for (let i = 0; i < 5; i++) {
    live.edit();
    clock.advance(100); // typing: each key comes before the pause is over
  }
  assert.equal(runs, 0);
  assert.equal(live.pending, true);
  clock.advance(200);
  assert.equal(runs, 1);
  assert.equal(live.pending, false);
  clock.advance(1000);
  assert.equal(runs, 1, "nothing more without another edit");
});

test("a slider release runs at once and drops the pending edit; cancel forgets it", () => {
  const clock = fakeClock();
  let runs = 0;
  const live = new LiveTrigger({ fire: () => runs++, delay: 300, ...clock });
  live.edit();
  live.now();
  assert.equal(runs, 1);
  clock.advance(500);
  assert.equal(runs, 1, "the edit before the release does not run again");
  live.edit();
  live.cancel();
  clock.advance(500);
  assert.equal(runs, 1);
});

test("queue labels say what a job makes", () => {
  assert.equal(jobLabel({ init_image: "a", strength: 0.7, batch_size: 4, prompt: "a red house" }), "batch of 4 · strength 0.7 · “a red house”");
  assert.equal(jobLabel({ prompt: "x".repeat(40) }), `txt2img · “${"x".repeat(27)}…”`);
  assert.equal(jobLabel({ init_image: "a", strength: 0.5 }, [0.2, 0.4]), "sweep of 2");
  assert.equal(jobLabel({ init_image: "a", strength: 0.5 }, null, true), "live · strength 0.5");
});
