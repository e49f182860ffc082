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
function makeStudio({ uploads = {}, health = { status: "ready", native_size: 128 }, stored = true } = {}) {
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
      json: async () => (url.startsWith("/api/plan") ? PLAN : url.startsWith("/api/outputs") ? [] : health),
    };
  };
  const stripView = recorder();
  stripView.outputCell = { dataset: {} };
  stripView.outputImg = { src: "" };
  const view = recorder();
  const settings = { ...DEFAULTS, steps: 10, strength: 0.7 };
  const written = [];
  const recommended = [];
  const controls = {
    read: () => settings, write: (s) => written.push(s), setHasInit: () => {}, showSeed: () => {}, setLimits: () => {},
    recommend: (d) => recommended.push(d),
  };
  const store = {
    saveSettings() {}, saveInit() {}, loadSettings: () => ({ settings, stored }), loadInit: () => null,
    loadPadInit: () => null, savePadInit() {},
  };
  const studio = new Studio({
    view, controls, stripView, outputsView: recorder(), gallery: recorder(), store, pad: fakePad(),
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
  studio.initImage.current = { id: "abc", width: 128, height: 128 };
  return { studio, stripView, view, acks, emitted, written, recommended };
}

/** The drawing pad as the controller sees it: blank until an image is placed on it. */
function fakePad() {
  return {
    isBlank: true, revision: 0, hasErased: false, canvas: { width: 128, height: 128 },
    resizeIfBlank() {},
    reset() { this.isBlank = true; },
    async loadImage() { this.isBlank = false; },
  };
}

const step = (job_id, index, kind = "x_t") => ({ job_id, index, kind, mime: "image/png", image: new Uint8Array([1, 2, 3]), timestep: 500 });

test("frames land in cells skipped + i; the init frame in its own place", async () => {
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
  assert.deepEqual(updated, ["init", 3, 9]);
  assert.deepEqual(studio.strip.cells.map((c) => c.state), [
    "skipped", "skipped", "skipped", "done", "pending", "pending", "pending", "pending", "pending", "done",
  ]);
  assert.ok(studio.strip.initFrame.startsWith("blob:"));
});

test("a job sent while another runs waits in the queue; the strip moves to it when the worker starts it", async () => {
  const { studio, acks, emitted } = makeStudio();
  const shown = [];
  studio.queueView = { render: (entries) => shown.push(entries.map((e) => e.state)) };
  let running = studio.generate();
  acks[0]({ job_id: "OLD" });
  await running;
  studio.onJobEvent("job_plan", { job_id: "OLD", ...PLAN });
  running = studio.generate();
  assert.equal(emitted[1].supersede, undefined, "a second Generate queues, it does not cancel the first");
  acks[1]({ job_id: "NEW" });
  await running;
  assert.deepEqual(shown.at(-1), ["running", "queued"]);
  // The running job still owns the strip while the new one waits.
  studio.onJobEvent("job_step", step("OLD", 1));
  assert.equal(studio.strip.cells[4].state, "done");
  assert.equal(studio.job.jobId, "OLD");
  studio.onJobEvent("job_done", { job_id: "OLD", url: "/outputs/old.png", seed: 1 });
  assert.deepEqual(shown.at(-1), ["queued"]);
  studio.onJobEvent("job_plan", { job_id: "NEW", ...PLAN });
  assert.equal(studio.job.jobId, "NEW");
  assert.equal(studio.strip.cells.filter((c) => c.state === "done").length, 0, "a fresh strip for the new job");
  studio.onJobEvent("job_step", step("OLD", 2)); // a late frame of the finished job
  studio.onJobEvent("job_step", step("NEW", 0));
  assert.deepEqual(studio.strip.cells.map((c) => c.state === "done"), [false, false, false, true, false, false, false, false, false, false]);
});

test("the queue panel's cancel cancels that job only; Cancel cancels the one shown", async () => {
  const { studio, acks, emitted } = makeStudio();
  let running = studio.generate();
  acks[0]({ job_id: "A" });
  await running;
  running = studio.generate();
  acks[1]({ job_id: "B" });
  await running;
  const [, second] = studio.job.unfinished;
  studio.cancel(second.key);
  assert.deepEqual(emitted.at(-1), { cancel: "B" });
  studio.cancel();
  assert.deepEqual(emitted.at(-1), { cancel: "A" });
});

test("a Live run carries live: true and is shown at once in place of the Live run before it", async () => {
  const { studio, acks, emitted } = makeStudio();
  let running = studio.generate({ live: true });
  acks[0]({ job_id: "L1" });
  await running;
  studio.onJobEvent("job_plan", { job_id: "L1", ...PLAN });
  running = studio.generate({ live: true });
  assert.equal(emitted[1].live, true);
  assert.equal(emitted[1].batch_size, undefined, "a Live run is one take");
  acks[1]({ job_id: "L2" });
  await running;
  assert.equal(studio.job.jobId, "L2", "the newer Live run is followed before its plan");
  studio.onJobEvent("job_step", step("L1", 1));
  assert.equal(studio.strip.cells.filter((c) => c.state === "done").length, 0, "the replaced run's frames are dropped");
});

test("what the pad shows is sent: a drawing not yet uploaded is uploaded before the job, with its erased area as the mask", async () => {
  const { studio, acks, emitted } = makeStudio();
  const posted = [];
  const plainFetch = globalThis.fetch;
  globalThis.fetch = async (url, options = {}) => {
    if (String(url) === "/api/uploads" && options.method === "POST") {
      posted.push([...options.body.keys()]);
      return { ok: true, status: 201, headers: { get: () => "application/json" }, json: async () => ({ id: "pad1", width: 128, height: 128, has_alpha: true }) };
    }
    return plainFetch(url, options);
  };
  const pad = studio.pad;
  Object.assign(pad, {
    isBlank: false, hasErased: true, revision: 1, previewDataURL: () => "data:image/png;base64,AA==",
    toUpload: async () => ({ image: new Blob(["i"]), mask: new Blob(["m"]), preview: new Blob(["p"]) }),
  });
  studio.onPadChange({ edited: true });
  assert.equal(studio.init.id, null, "the drawing is the init before it is uploaded");
  assert.equal(studio.init.has_alpha, true, "erased pixels make it an inpaint at once");
  const running = studio.generate();
  await new Promise((resolve) => setTimeout(resolve, 0));
  acks[0]({ job_id: "J" });
  await running;
  assert.deepEqual(posted, [["image", "mask"]]);
  assert.equal(emitted[0].init_image, "pad1");
  clearTimeout(studio.initImage.padTimer);
});

test("events that beat the ack are replayed once the ack names the job", async () => {
  const { studio, acks } = makeStudio();
  const running = studio.generate();
  studio.onJobEvent("job_plan", { job_id: "FAST", ...PLAN });
  studio.onJobEvent("job_step", step("FAST", -1, "init"));
  acks[0]({ job_id: "FAST" });
  await running;
  assert.ok(studio.strip.initFrame.startsWith("blob:"));
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
  studio.initImage.current = null;
  await studio.useGalleryItem(galleryItem({ id: "766363d4dee8d4ee", width: 200, height: 100, has_alpha: true, url }));
  assert.deepEqual(studio.init, { id: "766363d4dee8d4ee", width: 200, height: 100, has_alpha: true, thumb: url, source: "gallery" });
  const shown = view.calls.filter(([name]) => name === "showInit").at(-1)[1];
  assert.equal(shown.thumb, url);
  const facts = view.calls.filter(([name]) => name === "showInitFacts").at(-1)[1];
  assert.match(facts.line, /^200×100/);
  assert.equal(facts.inpaint, true, "an init with transparency shows the inpainting notice");
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

const sweepOutput = (job_id, item, strength, taken) => ({
  job_id, item, items: 2, name: `00000${item}.5.png`, url: `/outputs/00000${item}.5.png`, seed: 5,
  metadata: { seed: 5, strength, taken, skipped: 10 - taken, with_variations: [], warnings: [] },
});

test("a strength sweep: the payload, one strip per output, the row and the contact sheet", async () => {
  const { studio, view, acks, emitted } = makeStudio();
  const rows = [];
  studio.display.outputsView = { render: (batch) => rows.push(batch), setSelected() {} };
  await studio.refreshPlan();
  assert.equal(view.calls.filter(([name]) => name === "showPlanSummary").at(-1)[1], "10 steps · 7 taken / 3 skipped");
  const running = studio.sweep();
  assert.deepEqual(emitted[0].strengths, [0.2, 0.4, 0.6, 0.8]);
  assert.equal(emitted[0].iterations, 1);
  acks[0]({ job_id: "S" });
  await running;
  studio.onJobEvent("job_plan", { job_id: "S", ...PLAN, mode: "img2img", seed: 5, item: 0, items: 2, strength: 0.3, skipped: 7, taken: 3 });
  studio.onJobEvent("job_step", step("S", 0));
  studio.onJobEvent("job_output", sweepOutput("S", 0, 0.3, 3));
  studio.onJobEvent("job_plan", { job_id: "S", ...PLAN, mode: "img2img", seed: 5, item: 1, items: 2, strength: 0.7 });
  studio.onJobEvent("job_step", { ...step("S", 1), item: 0 }); // a late frame of output 1: not placed in output 2's strip
  assert.equal(studio.strip.cells.filter((c) => c.state === "done").length, 0);
  studio.onJobEvent("job_step", { ...step("S", 0), item: 1 });
  const progress = view.calls.filter(([name]) => name === "showProgress").map(([, p]) => p);
  assert.equal(progress.at(-1).text, "Output 2 of 2 · Step 1 of 7");
  assert.ok(Math.abs(progress.at(-1).fraction - (1 + 1 / 7) / 2) < 1e-9);
  const outputs = [sweepOutput("S", 0, 0.3, 3), sweepOutput("S", 1, 0.7, 7)];
  studio.onJobEvent("job_done", { ...outputs[1], elapsed_s: 2, outputs, contact_sheet: { name: "sheet.png", url: "/outputs/sheet.png" } });
  const last = rows.at(-1);
  assert.equal(last.items, 2);
  assert.deepEqual(last.entries.map((e) => e.state), ["done", "done"]);
  assert.equal(last.contactSheet.url, "/outputs/sheet.png");
  assert.match(view.calls.filter(([name]) => name === "showProgress").at(-1)[1].text, /^Done · 2 outputs/);
  const modes = view.calls.filter(([name]) => name === "showJobMode").map(([, text]) => text);
  assert.equal(modes.at(-1), "img2img · output 2 of 2 · strength 0.7 · 7 taken / 3 skipped");
  // The strip still shows the sweep's last output, so the header's plan is labelled as the next run's.
  const summaries = view.calls.filter(([name]) => name === "showPlanSummary").map(([, text]) => text);
  assert.match(summaries.at(-1), /^next run: /);
});

test("a sweep without an init image or with a bad list is not sent", async () => {
  const { studio, view, emitted } = makeStudio();
  studio.controls.read = () => ({ ...DEFAULTS, sweep_strengths: "0.5" });
  studio.sweep();
  studio.initImage.current = null;
  studio.controls.read = () => ({ ...DEFAULTS });
  studio.sweep();
  assert.equal(emitted.length, 0);
  const errors = view.calls.filter(([name]) => name === "showJobMessage").map(([, text]) => text);
  assert.match(errors[0], /Sweep not started: A sweep takes 2 to 8/);
  assert.match(errors[1], /needs an init image/);
});

test("full decode: a job's strip frame is promoted and shown large; an eviction error is shown", async () => {
  const { studio, view, acks } = makeStudio();
  const asked = [];
  let answer = { ok: true, index: 1, item: 0, width: 128, height: 128, mime: "image/png", image: new Uint8Array([1, 2]) };
  studio.socket.promote = async (request) => {
    asked.push(request);
    return answer;
  };
  const running = studio.generate();
  acks[0]({ job_id: "P" });
  await running;
  studio.onJobEvent("job_plan", { job_id: "P", ...PLAN, mode: "inpaint", seed: 5 });
  studio.onJobEvent("job_step", step("P", -1, "init"));
  studio.onJobEvent("job_step", step("P", 0));
  studio.onJobEvent("job_step", step("P", 1));
  studio.select({ type: "cell", index: 4 }); // taken step 2 (index 1)
  assert.equal(view.calls.filter(([name]) => name === "offerFullDecode").at(-1)[1], "ready");
  await studio.fullDecode();
  assert.deepEqual(asked[0], { job_id: "P", index: 1, item: 0 });
  const large = view.calls.filter(([name]) => name === "showLarge").at(-1);
  assert.match(large[1], /^blob:/);
  assert.match(large[2], /^full decode of step 2 of 7/);
  assert.equal(large[3], "decoded");

  studio.select({ type: "init", index: 3 });
  answer = { error: "The steps of that job are no longer cached (only the latest jobs are kept). Generate again." };
  await studio.fullDecode();
  assert.deepEqual(asked[1], { job_id: "P", index: -1, item: 0 });
  const note = view.calls.filter(([name]) => name === "showViewerNote").at(-1);
  assert.match(note[1], /^Full decode failed: The steps of that job are no longer cached/);
  assert.equal(note[2], "error");
});

test("the idle strip (the next run's plan) offers no full decode", async () => {
  const { studio, view } = makeStudio();
  studio.socket.promote = async () => ({ error: "should not be asked" });
  studio.strip.cells = [{ frame: "blob:x", takenStep: 1 }];
  studio.select({ type: "cell", index: 0 });
  assert.equal(view.calls.filter(([name, state]) => name === "offerFullDecode" && state === "ready").length, 0);
  assert.equal(studio.display.decodeTarget, null);
});

test("the done message says where intermediates went, and each warning once", async () => {
  const { doneMessages } = await import("../studio.js");
  const lines = doneMessages([
    { intermediates_dir: "outputs/intermediates/000001.5", metadata: { warnings: ["small"] } },
    { metadata: { intermediates_dir: "outputs/intermediates/000002.5/", warnings: ["small"] } },
  ]);
  assert.deepEqual(lines, [
    { text: "small", tone: "warning" },
    { text: "Intermediate steps saved in 2 folders (step-NNN.png): outputs/intermediates/000001.5/, outputs/intermediates/000002.5/", tone: "info" },
  ]);
  assert.deepEqual(doneMessages([{ intermediates_dir: "outputs/intermediates/000003.1", metadata: {} }]), [
    { text: "Intermediate steps saved in outputs/intermediates/000003.1/ (step-NNN.png)", tone: "info" },
  ]);
});

test("a first visit starts at the model's native size and recommended settings; a stored one keeps its own", async () => {
  const health = { status: "ready", native_size: 128, defaults: { cfg_scale: 2, steps: 25, unknown: 1 } };
  const first = makeStudio({ health, stored: false });
  first.studio.start(); // writes the stored (here: default) settings, then asks /api/health
  await first.studio.refreshHealth();
  assert.equal(first.written.length, 2); // once from start, once for the first visit (not again)
  const applied = first.written[1];
  assert.deepEqual([applied.width, applied.cfg_scale, applied.steps], [128, 2, 25]);
  assert.ok(!("unknown" in applied));
  assert.deepEqual(first.recommended.at(-1), { cfg_scale: 2, steps: 25 }); // what may be recommended

  const returning = makeStudio({ health, stored: true });
  returning.studio.start();
  await returning.studio.refreshHealth();
  assert.equal(returning.written.length, 1); // the person's own settings stay; the form shows the advice
  assert.equal(returning.written[0].cfg_scale, DEFAULTS.cfg_scale);
  assert.deepEqual(returning.recommended.at(-1), { cfg_scale: 2, steps: 25 });
});
