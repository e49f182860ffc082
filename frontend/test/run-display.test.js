// The followed job's frames: the strip gets each step's x_t, the viewer its
// predicted result x0 when the step carries one, and the captions say which.
import { test } from "node:test";
import assert from "node:assert/strict";
import { RunDisplay } from "../run-display.js";

const PLAN = { job_id: "J", mode: "img2img", steps_total: 10, skipped: 3, taken: 7, seed: 5,
  timesteps: [999, 899, 799, 699, 599, 499, 399, 299, 199, 99], sigmas: [14.6, 8.1, 4.9, 3.1, 2.0, 1.3, 0.8, 0.5, 0.3, 0.1] };

function recorder(extra = {}) {
  const calls = [];
  return new Proxy({ calls, ...extra }, {
    get(target, name) {
      if (name in target) return target[name];
      return (...args) => calls.push([name, ...args]);
    },
  });
}

function display() {
  const view = recorder();
  const stripView = recorder({ outputCell: { dataset: {} }, outputImg: { src: "" } });
  const shown = new RunDisplay({ view, stripView, outputsView: recorder(), job: { jobId: "J", state: "running" } });
  shown.handle("job_plan", PLAN);
  const large = () => view.calls.filter(([name]) => name === "showLarge").at(-1).slice(1);
  return { shown, view, stripView, large };
}

const bytes = (...b) => new Uint8Array(b);

test("a step with x0: the strip keeps x_t, the viewer shows x0, and the caption says which is which", () => {
  const { shown, stripView, large } = display();
  shown.handle("job_step", { job_id: "J", index: 2, kind: "x_t", timestep: 699, mime: "image/jpeg", image: bytes(1),
    x0_image: bytes(2, 3), x0_width: 128, x0_height: 128 });
  const cell = shown.strip.cells[5];
  assert.match(cell.frame, /^blob:/);
  assert.match(cell.large, /^blob:/);
  assert.notEqual(cell.frame, cell.large);
  assert.deepEqual(stripView.calls.filter(([name]) => name === "update").map(([, , target]) => target), [5]);
  const [url, caption, kind] = large();
  assert.equal(url, cell.large);
  assert.equal(caption, "Step 3 of 7 · large: predicted result x0 · strip: noisy latent xt · t 499");
  assert.equal(kind, "preview");
});

test("a step without x0 shows its one picture in both places", () => {
  const { shown, large } = display();
  shown.handle("job_step", { job_id: "J", index: 0, kind: "x_t", timestep: 699, mime: "image/jpeg", image: bytes(1) });
  const [url, caption] = large();
  assert.equal(url, shown.strip.cells[3].frame);
  assert.equal(caption, "Step 1 of 7 · noisy latent xt · t 699");
});

test("the init frame goes to its own cell and the viewer, captioned with its noise level", () => {
  const { shown, stripView, large } = display();
  shown.handle("job_step", { job_id: "J", index: -1, kind: "init", mime: "image/jpeg", image: bytes(9) });
  assert.match(shown.strip.initFrame, /^blob:/);
  assert.ok(shown.strip.cells.every((c) => c.frame == null), "no step cell holds the init");
  assert.deepEqual(stripView.calls.filter(([name]) => name === "update").map(([, , target]) => target), ["init"]);
  const [url, caption, kind] = large();
  assert.equal(url, shown.strip.initFrame);
  assert.equal(caption, "What SD sees: the init image noised to σ 3.10 (t 699), where step 1 of 7 starts");
  assert.equal(kind, "init");
});

test("selecting a step shows its x0 large; selecting the init shows the init", () => {
  const { shown, large } = display();
  shown.handle("job_step", { job_id: "J", index: -1, kind: "init", mime: "image/jpeg", image: bytes(9) });
  shown.handle("job_step", { job_id: "J", index: 0, kind: "x_t", timestep: 699, mime: "image/jpeg", image: bytes(1), x0_image: bytes(2) });
  shown.handle("job_step", { job_id: "J", index: 1, kind: "x_t", timestep: 599, mime: "image/jpeg", image: bytes(3), x0_image: bytes(4) });
  shown.select({ type: "cell", index: 3 });
  assert.equal(large()[0], shown.strip.cells[3].large);
  assert.match(large()[1], /^Step 1 of 7 · large: predicted result x0/);
  shown.select({ type: "init" });
  assert.equal(large()[0], shown.strip.initFrame);
  shown.select({ type: "init" }); // again: follow the run, the newest step
  assert.equal(large()[0], shown.strip.cells[4].large);
});
