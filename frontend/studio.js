// The controller: page state and what each event means for it. It talks to
// the server through api.js / socket.js and to the page through the views;
// it touches no DOM itself.

import * as api from "./api.js";
import { describeInit } from "./fit.js";
import { FrameUrls } from "./frames.js";
import { JOB, JobTracker } from "./job.js";
import { generatePayload, planQuery, settingsFromMetadata } from "./settings.js";
import { placeFrame, planSummary, stripFromPlan, cellIndexForStep } from "./strip.js";
import { formatSeconds } from "./view.js";

const PLAN_AFFECTING = new Set(["steps", "strength", "exact_steps", "sampler"]);

export class Studio {
  /** thumbnail(blob) -> data URL; imageSize(blob) -> {width, height} (both may reject). */
  constructor({ view, controls, stripView, galleryView, store, pad, thumbnail, imageSize }) {
    Object.assign(this, { view, controls, stripView, galleryView, store, pad, thumbnail, imageSize });
    this.socket = null;
    this.job = new JobTracker();
    this.frames = new FrameUrls();
    this.init = null; // {id, width, height, has_alpha, thumb, source}
    this.initToken = 0; // bumped by every init change a person asks for; late answers for older ones are dropped
    this.health = null;
    this.plan = null; // the plan for the current settings (GET /api/plan)
    this.strip = stripFromPlan(null);
    this.run = null; // timing and display facts for the followed job
    this.selection = null; // null follows the newest frame
    this.planRequest = null;
    this.cancelRequested = false;
    this.highlight = null;
  }

  attachSocket(socket) {
    this.socket = socket;
  }

  start() {
    const { settings, stored } = this.store.loadSettings();
    this.settingsStored = stored;
    this.controls.write(settings);
    this.#setInit(this.store.loadInit(), { save: false });
    this.#verifyInit();
    this.pad.resizeIfBlank(settings.width, settings.height);
    this.view.showProgress({ state: "idle", text: "Ready" });
    this.refreshHealth();
    this.refreshGallery();
  }

  get settings() {
    return this.controls.read();
  }

  // --- server status --------------------------------------------------------

  async refreshHealth() {
    try {
      this.health = await api.getHealth();
    } catch (err) {
      this.view.showModel({ status: "error", message: err.message });
      setTimeout(() => this.refreshHealth(), 3000);
      return;
    }
    const h = this.health;
    this.view.showModel({ status: h.status, progress: h.model_progress, message: h.model_message, model: h.model, is_demo: h.is_demo });
    if (!this.settingsStored && Number.isInteger(h.native_size)) {
      // First visit: start at the model's own resolution.
      this.settingsStored = true;
      this.controls.write({ ...this.settings, width: h.native_size, height: h.native_size });
      this.pad.resizeIfBlank(h.native_size, h.native_size);
      this.store.saveSettings(this.settings);
    }
    this.#refreshInitFacts();
    this.refreshPlan();
    if (h.status === "loading") setTimeout(() => this.refreshHealth(), 1500);
  }

  onModelStatus(status) {
    this.view.showModel(status);
    if (status.status === "ready" && this.health?.status !== "ready") this.refreshHealth();
  }

  onConnection(state, detail) {
    this.view.showConnection(state, detail);
    if (state === "connected" && detail === "reconnected") {
      this.refreshHealth();
      this.#verifyInit(); // a restarted server may have a different uploads folder
      this.refreshGallery();
      if (this.job.active) {
        this.view.showJobMessage("The connection dropped during this run; its remaining steps may not arrive. Generate again if it stalls.");
      }
    }
  }

  // --- settings and plan ------------------------------------------------------

  onSettingsChange(settings, { field } = {}) {
    this.store.saveSettings(settings);
    if (field === "width" || field === "height") this.pad.resizeIfBlank(settings.width, settings.height);
    this.#refreshInitFacts();
    if (PLAN_AFFECTING.has(field)) this.refreshPlan();
  }

  onStrengthPreview(settings) {
    this.store.saveSettings(settings);
    this.refreshPlan();
  }

  onStrengthCommit(settings) {
    this.store.saveSettings(settings);
    if (settings.live && this.init) this.generate();
  }

  /** Ask the server for the plan of the current settings; only the newest answer counts. */
  async refreshPlan() {
    this.planRequest?.abort();
    const request = new AbortController();
    this.planRequest = request;
    const hasInit = Boolean(this.init);
    const settings = this.settings;
    this.view.showPlanSummary(this.plan ? this.#summaryText(this.plan, hasInit) : "planning…", { pending: true });
    try {
      const plan = await api.getPlan(planQuery(settings, hasInit), request.signal);
      if (request.signal.aborted) return;
      this.plan = plan;
      this.view.clearPlanError();
      this.view.showPlanSummary(this.#summaryText(plan, hasInit));
      if (!this.job.active) this.#showStrip(plan, !hasInit);
    } catch (err) {
      if (err?.name === "AbortError" || request.signal.aborted) return;
      this.view.showPlanError(err.message);
    }
  }

  #summaryText(plan, hasInit) {
    const text = planSummary(plan, { txt2img: !hasInit });
    return this.job.active ? `next run: ${text}` : text;
  }

  /** The strip shows either the next run's skeleton (idle) or the followed job's frames. */
  #showStrip(plan, txt2img) {
    this.strip = stripFromPlan(plan);
    this.stripView.render(this.strip, plan, { txt2img });
  }

  // --- init image -------------------------------------------------------------

  async uploadFile(file, source = "upload") {
    const token = ++this.initToken;
    this.view.showUploadError("");
    this.view.setUploading(true);
    try {
      const res = await api.uploadImage(file, source === "drawing" ? "drawing.png" : "image.png");
      let thumb = null;
      try {
        thumb = await this.thumbnail(file);
      } catch {
        thumb = null; // the server read it, the browser cannot (e.g. TIFF): no preview, still usable
      }
      if (token !== this.initToken) return false; // something newer was chosen meanwhile
      this.#setInit({ id: res.id, width: res.width, height: res.height, has_alpha: Boolean(res.has_alpha), thumb, source });
      return true;
    } catch (err) {
      if (token === this.initToken) this.view.showUploadError(err.message);
      return false;
    } finally {
      if (token === this.initToken) this.view.setUploading(false);
    }
  }

  clearInit() {
    this.initToken += 1;
    this.view.showUploadError("");
    this.view.setUploading(false);
    this.#setInit(null);
  }

  /**
   * Make an upload the init image again from what the server kept of it
   * (a gallery item's metadata.init_image: {id, width, height, has_alpha, url}):
   * the same thumbnail, size line and notices as a fresh upload. When the
   * server no longer has it, say so and fall back to no init image.
   */
  async restoreInit(meta) {
    const token = ++this.initToken;
    const url = meta.url || api.uploadUrl(meta.id);
    this.view.showUploadError("");
    this.view.setUploading(true, "Loading the init image…");
    try {
      const blob = await api.fetchUpload(url);
      let { width, height } = meta;
      if (!(width > 0 && height > 0) && this.imageSize) {
        // Older metadata has no size: read it from the pixels.
        try {
          ({ width, height } = await this.imageSize(blob));
        } catch {
          /* describeInit says the size is not known here */
        }
      }
      if (token !== this.initToken) return false;
      this.#setInit({ id: meta.id, width, height, has_alpha: Boolean(meta.has_alpha), thumb: url, source: "gallery" });
      return true;
    } catch (err) {
      if (token !== this.initToken) return false;
      this.#setInit(null);
      this.view.showUploadError(
        `Init image not restored: ${err.message} ` +
          "The other settings were restored, so Generate is text-to-image for now.",
      );
      return false;
    } finally {
      if (token === this.initToken) this.view.setUploading(false);
    }
  }

  /** The stored init (from an earlier visit) may be gone from the server: check, and drop it if so. */
  async #verifyInit() {
    const init = this.init;
    if (!init) return;
    const token = this.initToken;
    try {
      await api.fetchUpload(api.uploadUrl(init.id));
    } catch (err) {
      if (err?.status !== 404 || token !== this.initToken || this.init?.id !== init.id) return; // offline: keep it
      this.#setInit(null);
      this.view.showUploadError(`The init image chosen earlier is no longer on the server: ${err.message}`);
    }
  }

  #setInit(init, { save = true } = {}) {
    const hadInit = Boolean(this.init);
    this.init = init;
    if (save) this.store.saveInit(init);
    this.view.showInit(init);
    this.controls.setHasInit(Boolean(init));
    this.#refreshInitFacts();
    if (hadInit !== Boolean(init) || save) this.refreshPlan();
  }

  #refreshInitFacts() {
    const s = this.settings;
    this.view.showInitFacts(describeInit(this.init, s, this.health?.native_size));
  }

  // --- running ---------------------------------------------------------------

  async generate() {
    const settings = this.settings;
    this.store.saveSettings(settings);
    const supersede = settings.live || this.job.active;
    const payload = generatePayload(settings, this.init?.id ?? null, { supersede });
    const token = this.job.submit();
    this.cancelRequested = false;
    this.selection = null;
    this.view.showJobMessage([]);
    this.view.showProgress({ state: JOB.SUBMITTING, text: "Sending…" });
    const ack = await this.socket.generate(payload);
    if (ack?.error || ack?.job_id == null) {
      this.job.acknowledged(token, null);
      if (token !== this.job.token) return;
      this.view.showProgress({ state: JOB.ERROR, text: "Not started" });
      this.view.showJobMessage(ack?.error || "The server did not start the job.", "error");
      return;
    }
    const held = this.job.acknowledged(token, ack.job_id);
    if (token !== this.job.token) return; // a newer generate replaced this one
    if (this.cancelRequested) this.socket.cancel(ack.job_id);
    if (this.job.state === JOB.QUEUED) {
      const waiting = this.health?.status === "loading" ? "Queued: waiting for the model to load…" : "Queued…";
      this.view.showProgress({ state: JOB.QUEUED, text: waiting });
    }
    for (const { event, payload: p } of held) this.onJobEvent(event, p);
  }

  cancel() {
    if (!this.job.active) return;
    if (this.job.state === JOB.SUBMITTING) this.cancelRequested = true;
    else this.socket.cancel(this.job.jobId);
    this.view.showProgress({ ...this.#progressNow(), text: "Cancelling…" });
  }

  onJobEvent(event, payload) {
    const route = this.job.route(event, payload);
    if (route !== "handle") return;
    this.job.note(event);
    if (event === "job_plan") this.#onPlan(payload);
    else if (event === "job_step") this.#onStep(payload);
    else if (event === "job_done") this.#onDone(payload);
    else if (event === "job_cancelled") this.#onEnd(JOB.CANCELLED, "Cancelled");
    else if (event === "job_error") this.#onEnd(JOB.ERROR, "Failed", payload.error);
  }

  #onPlan(plan) {
    this.frames.nextGeneration();
    this.#showStrip(plan, plan.mode === "txt2img");
    this.run = { started: now(), firstFrame: null, done: 0, taken: plan.taken, seed: plan.seed, mode: plan.mode, kind: null };
    this.stripView.setCurrent(plan.skipped < plan.steps_total ? plan.skipped : -1);
    this.view.showProgress(this.#progressNow());
  }

  #onStep(step) {
    if (!this.run) return; // a step before its plan: nothing to place it in
    const url = this.frames.fromStep(step);
    if (!url) return;
    const index = cellIndexForStep(this.strip, step);
    this.strip = placeFrame(this.strip, step, url);
    if (index >= 0) this.stripView.update(this.strip, index);
    const run = this.run;
    run.kind = step.kind;
    if (step.kind !== "init") run.done = Math.max(run.done, step.index + 1);
    if (run.firstFrame == null) run.firstFrame = now();
    this.stripView.setCurrent(index >= 0 && step.kind !== "init" ? index + 1 : index);
    if (!this.selection) {
      this.view.showLarge(url, this.#frameCaption(step), step.kind === "init" ? "init" : "preview");
      this.frames.revokeOlder(); // the old job's last frame is off screen now
    }
    this.view.showProgress(this.#progressNow());
  }

  #onDone(done) {
    const run = this.run ?? { started: now(), taken: 0, done: 0 };
    run.done = run.taken;
    this.stripView.setCurrent(-1);
    this.stripView.setOutput(done.url);
    if (!this.selection) this.view.showLarge(done.url, `Output · seed ${done.seed}`, "output");
    this.frames.revokeOlder();
    const took = Number.isFinite(done.elapsed_s) ? done.elapsed_s : (now() - run.started) / 1000;
    this.view.showProgress({ state: JOB.DONE, fraction: 1, text: `Done · seed ${done.seed}`, timing: `${formatSeconds(took)} total` });
    const warnings = done.metadata?.warnings;
    this.view.showJobMessage(Array.isArray(warnings) ? warnings : [], "warning");
    this.highlight = done.name;
    this.refreshGallery();
    this.#resummarize();
  }

  #onEnd(state, text, error) {
    this.stripView.setCurrent(-1);
    const p = this.#progressNow();
    const where = this.run ? ` at step ${this.run.done} of ${this.run.taken}` : "";
    this.view.showProgress({ ...p, state, text: `${text}${where}`, timing: p.timing.replace(/ · .*left$/, "") });
    if (error) this.view.showJobMessage(error, "error");
    if (state === JOB.CANCELLED) this.view.showJobMessage("Cancelled: no image was saved.", "info");
    this.#resummarize();
  }

  /** The summary said "next run" while a job ran; now the plan is simply the plan. */
  #resummarize() {
    if (this.plan) this.view.showPlanSummary(this.#summaryText(this.plan, Boolean(this.init)));
  }

  #progressNow() {
    const run = this.run;
    if (!run) return { state: this.job.state, fraction: 0, text: "Starting…", timing: "" };
    const elapsed = (now() - run.started) / 1000;
    let timing = `${formatSeconds(elapsed)} elapsed`;
    if (run.done > 0 && run.firstFrame != null && run.done < run.taken) {
      const perStep = (now() - run.firstFrame) / 1000 / run.done;
      timing += ` · ~${formatSeconds(perStep * (run.taken - run.done))} left`;
    }
    const text = run.taken === 0 ? "Returning the init unchanged…"
      : run.done === 0 ? `Starting · ${run.taken} steps to take`
        : `Step ${run.done} of ${run.taken}`;
    return { state: this.job.state, fraction: run.taken ? run.done / run.taken : 0, text, timing };
  }

  #frameCaption(step) {
    if (step.kind === "init") return "What SD starts from: the init image noised to the entry step";
    const what = step.kind === "x0" ? "predicted result x0" : "noisy latent xt";
    return `Step ${step.index + 1} of ${this.strip.taken} · ${what} · t ${Math.round(step.timestep ?? 0)}`;
  }

  // --- looking at frames -------------------------------------------------------

  select(selection) {
    const same = this.selection && selection.type === this.selection.type && selection.index === this.selection.index;
    this.selection = same ? null : selection;
    this.stripView.setSelected(this.selection);
    if (!this.selection) return this.#showNewest();
    if (selection.type === "output") {
      const src = this.stripView.outputImg.src;
      this.view.showLarge(src, "Output", "output");
      return;
    }
    const cell = this.strip.cells[selection.index];
    const url = selection.type === "init" ? cell.initFrame : cell.frame ?? cell.initFrame;
    if (!url) return;
    const caption = selection.type === "init" || !cell.frame
      ? "The initial image SD sees"
      : `Step ${cell.takenStep} of ${this.strip.taken} (selected; click again to follow the run)`;
    this.view.showLarge(url, caption, selection.type === "init" ? "init" : "preview");
  }

  #showNewest() {
    if (this.stripView.outputCell.dataset.state === "ready") {
      this.view.showLarge(this.stripView.outputImg.src, "Output", "output");
      return;
    }
    const cells = this.strip.cells.filter((c) => c.frame || c.initFrame);
    const last = cells[cells.length - 1];
    if (last) this.view.showLarge(last.frame ?? last.initFrame, last.frame ? `Step ${last.takenStep} of ${this.strip.taken}` : "The initial image SD sees");
  }

  // --- gallery -------------------------------------------------------------------

  async refreshGallery() {
    try {
      const items = await api.listOutputs();
      this.galleryView.render(items, { highlight: this.highlight });
    } catch (err) {
      this.galleryView.showError(`Could not load the gallery: ${err.message}`);
    }
  }

  useGalleryItem(item) {
    if (!item) return;
    const meta = { ...(item.metadata ?? {}) };
    meta.seed = meta.seed ?? item.seed;
    const settings = settingsFromMetadata(meta, this.settings);
    this.controls.write(settings);
    this.store.saveSettings(settings);
    const init = meta.init_image;
    this.#refreshInitFacts();
    this.refreshPlan();
    if (init && typeof init.id === "string") {
      if (this.init?.id === init.id) {
        this.initToken += 1; // already the init image: keep its preview, drop any restore under way
        this.view.setUploading(false);
        return;
      }
      return this.restoreInit(init);
    }
    this.clearInit();
  }
}

function now() {
  return globalThis.performance?.now?.() ?? Date.now();
}
