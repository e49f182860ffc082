// The controller with stub views, socket and fetch: frames reach the strip only
// for the followed job, in the right cells; stale jobs' frames are dropped.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Studio } from "../studio.js";
import { DEFAULTS } from "../settings.js";

const PLAN = { steps_total: 10, skipped: 3, taken: 7, timesteps: [], sigmas: [] };

function recorder() {
  const calls = [];
  return new Proxy({ calls }, {
    get(target, name) {
      if (name in target) return target[name];
      return (...args) => calls.push([name, ...args]);
    },
  });
}

function makeStudio() {
  globalThis.fetch = async (url) => ({
    ok: true,
    headers: { get: () => "application/json" },
    json: async () => (String(url).startsWith("/api/plan") ? PLAN : String(url).startsWith("/api/outputs") ? [] : { status: "ready", native_size: 128 }),
  });
  const stripView = recorder();
  stripView.outputCell = { dataset: {} };
  stripView.outputImg = { src: "" };
  const view = recorder();
  const settings = { ...DEFAULTS, steps: 10, strength: 0.7 };
  const controls = { read: () => settings, write: () => {}, setHasInit: () => {}, showSeed: () => {} };
  const store = { saveSettings() {}, saveInit() {}, loadSettings: () => ({ settings, stored: true }), loadInit: () => null };
  const studio = new Studio({ view, controls, stripView, galleryView: recorder(), store, pad: { resizeIfBlank() {} } });
  const acks = [];
  const emitted = [];
  studio.attachSocket({
    generate: (payload) => {
      emitted.push(payload);
      return new Promise((resolve) => acks.push(resolve));
    },
    cancel: (id) => emitted.push({ cancel: id }),
  });
  studio.init = { id: "abc", width: 128, height: 128 };
  return { studio, stripView, view, acks, emitted };
}

const step = (job_id, index, kind = "x_t") => ({ job_id, index, kind, mime: "image/png", image: new Uint8Array([1, 2, 3]), timestep: 500 });

test("frames land in cells skipped + i; the init frame in the first taken cell", async () => {
  const { studio, stripView, acks, emitted } = makeStudio();
  const running = studio.generate();
  assert.equal(emitted[0].init_image, "abc");
  acks[0]({ job_id: "J1" });
  await running;
  studio.onJobEvent("job_plan", { job_id: "J1", ...PLAN, mode: "img2img", seed: 5 });
  studio.onJobEvent("job_step", step("J1", -1, "init"));
  studio.onJobEvent("job_step", step("J1", 0));
  studio.onJobEvent("job_step", step("J1", 6));
  const updated = stripView.calls.filter(([name]) => name === "update").map(([, , index]) => index);
  assert.deepEqual(updated, [3, 3, 9]);
  assert.deepEqual(studio.strip.cells.map((c) => c.state), [
    "skipped", "skipped", "skipped", "done", "pending", "pending", "pending", "pending", "pending", "done",
  ]);
  assert.ok(studio.strip.cells[3].initFrame.startsWith("blob:"));
});

test("a superseded job's frames are dropped, even when they arrive late", async () => {
  const { studio, acks } = makeStudio();
  let running = studio.generate();
  acks[0]({ job_id: "OLD" });
  await running;
  studio.onJobEvent("job_plan", { job_id: "OLD", ...PLAN });
  running = studio.generate();
  // The old job's frames keep coming while the new generate waits for its ack...
  studio.onJobEvent("job_step", step("OLD", 1));
  acks[1]({ job_id: "NEW" });
  await running;
  studio.onJobEvent("job_step", step("OLD", 2));
  studio.onJobEvent("job_done", { job_id: "OLD", url: "/outputs/old.png", seed: 1 });
  assert.equal(studio.strip.cells.filter((c) => c.state === "done").length, 0, "nothing from OLD after the new submit");
  studio.onJobEvent("job_plan", { job_id: "NEW", ...PLAN });
  studio.onJobEvent("job_step", step("NEW", 0));
  assert.equal(studio.strip.cells[3].state, "done");
  assert.equal(studio.job.jobId, "NEW");
});

test("events that beat the ack are replayed once the ack names the job", async () => {
  const { studio, acks } = makeStudio();
  const running = studio.generate();
  studio.onJobEvent("job_plan", { job_id: "FAST", ...PLAN });
  studio.onJobEvent("job_step", step("FAST", -1, "init"));
  acks[0]({ job_id: "FAST" });
  await running;
  assert.equal(studio.strip.cells[3].state, "init");
});

test("an error ack is shown and nothing runs", async () => {
  const { studio, view, acks } = makeStudio();
  const running = studio.generate();
  acks[0]({ error: "No upload with id abc. Upload the image again." });
  await running;
  const messages = view.calls.filter(([name]) => name === "showJobMessage").map(([, text]) => text);
  assert.ok(messages.includes("No upload with id abc. Upload the image again."));
  assert.equal(studio.job.active, false);
});

test("cancel before the ack is sent once the job id is known", async () => {
  const { studio, acks, emitted } = makeStudio();
  const running = studio.generate();
  studio.cancel();
  acks[0]({ job_id: "C1" });
  await running;
  assert.deepEqual(emitted.at(-1), { cancel: "C1" });
});
