// A cluster's workers in the header: /api/health's `workers` become one line each, the
// embedded studio shows nothing, and the page keeps asking while (and only while) it shows
// a cluster and is visible.
import { test } from "node:test";
import assert from "node:assert/strict";
import { workerRows, workersLabel } from "../workers-view.js";
import { ServerStatus } from "../server-status.js";

const GPU0 = { name: "gpu-0", model: "sd15.safetensors", device: "cuda:0", state: "busy", job_id: "job-1", jobs_done: 4, seen_s_ago: 0.4 };
const GPU1 = { name: "gpu-1", model: "sd15.safetensors", device: "cuda:1", state: "idle", job_id: null, jobs_done: 1, seen_s_ago: 2.25 };
const cluster = (workers) => ({ status: "ready", mode: "cluster", workers });
const EMBEDDED = { status: "ready", mode: "embedded", workers: [{ ...GPU0, name: "embedded", device: "cpu" }] };

test("embedded mode, or a server that says nothing of modes, shows no workers", () => {
  assert.equal(workerRows(EMBEDDED), null);
  assert.equal(workerRows({ status: "ready" }), null, "a studio from before clusters");
  assert.equal(workerRows(null), null);
});

test("a cluster: one line per worker, name · model · device · state, in the server's order", () => {
  const shown = workerRows(cluster([GPU0, GPU1]));
  assert.equal(shown.label, "2 workers");
  assert.deepEqual(shown.rows.map((r) => [r.name, r.state, r.text]), [
    ["gpu-0", "busy", "gpu-0 · sd15.safetensors · cuda:0 · busy"], // busy: no job id on the line
    ["gpu-1", "idle", "gpu-1 · sd15.safetensors · cuda:1 · idle"],
  ]);
  assert.equal(shown.rows[0].title, "gpu-0: busy · 4 jobs done · last heard from 0.4 s ago");
  assert.equal(shown.rows[1].title, "gpu-1: idle · 1 job done · last heard from 2.3 s ago");
});

test("a worker still loading has no model yet; a state the page does not know is shown as unknown", () => {
  const shown = workerRows(cluster([
    { name: "w", model: null, device: "cpu", state: "loading" },
    { name: "x", model: "m", device: "cpu", state: "exploded" },
  ]));
  assert.deepEqual(shown.rows.map((r) => r.text), ["w · no model · cpu · loading", "x · m · cpu · unknown"]);
  assert.deepEqual(shown.rows.map((r) => r.state), ["loading", "unknown"]);
});

test("a cluster with no worker says so; malformed entries are skipped", () => {
  assert.deepEqual(workerRows(cluster([])), { label: "no workers", rows: [] });
  assert.deepEqual(workerRows(cluster(null)), { label: "no workers", rows: [] });
  assert.equal(workerRows(cluster([null, 3, GPU1])).rows.length, 1);
  assert.deepEqual([0, 1, 5].map(workersLabel), ["no workers", "1 worker", "5 workers"]);
});

// --- the poll --------------------------------------------------------------------------

/** A ServerStatus whose timers are a list the test fires by hand, over a fetch answering `answers` in turn. */
function polled(answers) {
  const asked = [];
  globalThis.fetch = async (url) => {
    asked.push(String(url));
    const body = answers[Math.min(asked.length - 1, answers.length - 1)];
    return { ok: true, headers: { get: () => "application/json" }, json: async () => body };
  };
  const timers = [];
  const rendered = [];
  const status = new ServerStatus({
    view: { showModel() {} },
    controls: { setLimits() {}, recommend() {} },
    workersView: { render: (shown) => rendered.push(shown) },
    setTimer: (fn, ms) => timers.push({ fn, ms, cleared: false }) - 1,
    clearTimer: (i) => { timers[i].cleared = true; },
  });
  const pending = () => timers.filter((t) => !t.cleared && !t.fired);
  const fire = async () => {
    const [next] = pending();
    next.fired = true;
    await next.fn();
  };
  return { status, asked, rendered, pending, fire };
}

test("a cluster's workers are asked for again on each beat, and the list follows their states", async () => {
  const busy = cluster([GPU0, GPU1]);
  const bothIdle = cluster([{ ...GPU0, state: "idle" }, GPU1]);
  const { status, asked, rendered, pending, fire } = polled([busy, bothIdle]);
  await status.refresh();
  assert.deepEqual(rendered.at(-1).rows.map((r) => r.state), ["busy", "idle"]);
  assert.equal(pending().length, 1);
  await fire();
  assert.deepEqual(asked, ["/api/health", "/api/health"]);
  assert.deepEqual(rendered.at(-1).rows.map((r) => r.state), ["idle", "idle"]);
  assert.equal(pending().length, 1, "one beat waiting, never two");
});

test("a hidden page asks nothing; shown again it asks at once and keeps going", async () => {
  const { status, asked, rendered, pending, fire } = polled([cluster([GPU0])]);
  await status.refresh();
  status.onPageVisible(false);
  assert.equal(pending().length, 0);
  assert.equal(asked.length, 1);
  status.onPageVisible(true);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(asked.length, 2);
  assert.equal(rendered.length, 2);
  assert.equal(pending().length, 1);
  await fire();
  assert.equal(asked.length, 3);
});

test("the embedded studio is never polled for workers and shows none", async () => {
  const { status, asked, rendered, pending } = polled([EMBEDDED]);
  await status.refresh();
  status.onPageVisible(false);
  status.onPageVisible(true);
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(rendered, [null]);
  assert.equal(pending().length, 0);
  assert.equal(asked.length, 1);
});
