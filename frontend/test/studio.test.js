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

/** uploads: {url: true | "slow"} answers 200 with a PNG blob; any other /api/uploads/ URL is 404. */
function makeStudio({ uploads = {} } = {}) {
  globalThis.fetch = async (url) => {
    url = String(url);
    if (url.startsWith("/api/uploads/")) {
      if (uploads[url] === "slow") await new Promise((resolve) => setTimeout(resolve, 20));
      const found = Boolean(uploads[url]);
      return {
        ok: found,
        status: found ? 200 : 404,
        headers: { get: () => (found ? "image/png" : "application/json") },
        json: async () => ({ error: `No upload with id ${url.split("/").pop()}. Upload the image again.` }),
        blob: async () => new Blob([new Uint8Array([137, 80, 78, 71])], { type: "image/png" }),
      };
    }
    return {
      ok: true,
      headers: { get: () => "application/json" },
      json: async () => (url.startsWith("/api/plan") ? PLAN : url.startsWith("/api/outputs") ? [] : { status: "ready", native_size: 128 }),
    };
  };
  const stripView = recorder();
  stripView.outputCell = { dataset: {} };
  stripView.outputImg = { src: "" };
  const view = recorder();
  const settings = { ...DEFAULTS, steps: 10, strength: 0.7 };
  const controls = { read: () => settings, write: () => {}, setHasInit: () => {}, showSeed: () => {} };
  const store = { saveSettings() {}, saveInit() {}, loadSettings: () => ({ settings, stored: true }), loadInit: () => null };
  const studio = new Studio({
    view, controls, stripView, galleryView: recorder(), store, pad: { resizeIfBlank() {} },
    imageSize: async () => ({ width: 96, height: 64 }),
  });
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

const galleryItem = (init) => ({ seed: 3, metadata: { prompt: "a barn", strength: 0.5, steps: 6, init_image: init } });

test("use these settings restores the init image from its url, with size and alpha", async () => {
  const url = "/api/uploads/766363d4dee8d4ee";
  const { studio, view } = makeStudio({ uploads: { [url]: true } });
  studio.init = null;
  await studio.useGalleryItem(galleryItem({ id: "766363d4dee8d4ee", width: 200, height: 100, has_alpha: true, url }));
  assert.deepEqual(studio.init, { id: "766363d4dee8d4ee", width: 200, height: 100, has_alpha: true, thumb: url, source: "gallery" });
  const shown = view.calls.filter(([name]) => name === "showInit").at(-1)[1];
  assert.equal(shown.thumb, url);
  const facts = view.calls.filter(([name]) => name === "showInitFacts").at(-1)[1];
  assert.match(facts.line, /^200×100/);
  assert.ok(facts.warnings.some((w) => /transparency/.test(w)));
  const busy = view.calls.filter(([name]) => name === "setUploading").map(([, on]) => on);
  assert.deepEqual(busy, [true, false]);
});

test("older metadata without url or size: the url is built from the id, the size read from the pixels", async () => {
  const { studio } = makeStudio({ uploads: { "/api/uploads/0123456789abcdef": true } });
  await studio.useGalleryItem(galleryItem({ id: "0123456789abcdef", sha256: "x", path: "outputs/uploads/0123456789abcdef.png" }));
  assert.equal(studio.init.thumb, "/api/uploads/0123456789abcdef");
  assert.equal(studio.init.width, 96);
  assert.equal(studio.init.height, 64);
});

test("an init image the server no longer has: a clear message and no init image", async () => {
  const { studio, view } = makeStudio();
  await studio.useGalleryItem(galleryItem({ id: "ffffffffffffffff", width: 128, height: 128, url: "/api/uploads/ffffffffffffffff" }));
  assert.equal(studio.init, null);
  const errors = view.calls.filter(([name]) => name === "showUploadError").map(([, text]) => text);
  assert.match(errors.at(-1), /^Init image not restored: No upload with id ffffffffffffffff\. Upload the image again\./);
  assert.match(errors.at(-1), /text-to-image/);
});

test("two quick restores: the later click wins even when the earlier answer comes last", async () => {
  const slow = "/api/uploads/aaaaaaaaaaaaaaaa";
  const fast = "/api/uploads/bbbbbbbbbbbbbbbb";
  const { studio } = makeStudio({ uploads: { [slow]: "slow", [fast]: true } });
  const first = studio.useGalleryItem(galleryItem({ id: "aaaaaaaaaaaaaaaa", width: 64, height: 64, url: slow }));
  const second = studio.useGalleryItem(galleryItem({ id: "bbbbbbbbbbbbbbbb", width: 64, height: 64, url: fast }));
  await Promise.all([first, second]);
  assert.equal(studio.init.id, "bbbbbbbbbbbbbbbb");
});

test("a gallery item without an init image clears the current one", async () => {
  const { studio } = makeStudio();
  await studio.useGalleryItem(galleryItem(null));
  assert.equal(studio.init, null);
});
