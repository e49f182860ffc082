// The controller: page state and what each event means for it. It talks to
// the server through api.js / socket.js and to the page through the views
// (the followed job's frames, outputs and progress through run-display.js);
// it touches no DOM itself.

import * as api from "./api.js";
import { describeInit } from "./fit.js";
import { InitImage } from "./init-image.js";
import { JOB, JobQueue } from "./job.js";
import { LIVE_FIELDS, LiveTrigger } from "./live.js";
import { combinedAdvice, recommendedSettings } from "./recommended.js";
import { RunDisplay } from "./run-display.js";
import { applyLimits, generatePayload, parseStrengthList, planQuery, settingsFromMetadata } from "./settings.js";
import { planSummary } from "./strip.js";

export { doneMessages } from "./run-display.js";

const PLAN_AFFECTING = new Set(["steps", "strength", "exact_steps", "min_taken_steps", "sampler", "recommended"]);

export class Studio {
  /** thumbnail(blob) -> data URL; imageSize(blob) -> {width, height} (both may reject). */
  /** library: the models folder and LoRAs (model-library.js); optional, for tests of the rest. */
  /** queueView: the queue panel (queue-view.js); optional, for tests of the rest. */
  /** gallery: the gallery panel and the Live row (gallery-panel.js); optional, likewise. */
  constructor({ view, controls, stripView, outputsView, gallery = null, store, pad, thumbnail, imageSize, library = null, queueView = null }) {
    Object.assign(this, { view, controls, gallery, store, pad, library, queueView });
    this.socket = null;
    this.job = new JobQueue();
    this.live = new LiveTrigger({ fire: () => this.generate({ live: true }) });
    this.initImage = new InitImage({
      view, pad, store, thumbnail, imageSize, onChange: (init, change) => this.#initChanged(init, change),
    });
    this.planHadInit = false;
    this.display = new RunDisplay({
      view, stripView, outputsView, job: this.job,
      promote: (request) => this.socket?.promote?.(request) ?? Promise.resolve({ error: "Not connected to the server." }),
    });
    this.health = null;
    this.plan = null; // the plan for the current settings (GET /api/plan)
    this.planRequest = null;
    this.highlight = null;
    this.sizeAdvice = null; // a switch to a model of another native size recommends that size
    this.jobInits = new Map(); // job id -> the init upload id it was sent with (null: txt2img), newest last
  }

  attachSocket(socket) {
    this.socket = socket;
  }

  /** The step strip as data (strip.js), for the followed job or the next run. */
  get strip() {
    return this.display.strip;
  }

  start() {
    const { settings, stored } = this.store.loadSettings();
    this.settingsStored = stored;
    this.controls.write(settings);
    this.initImage.start();
    this.pad.resizeIfBlank(settings.width, settings.height);
    this.view.showProgress({ state: "idle", text: "Ready" });
    this.refreshHealth();
    this.refreshGallery();
    this.library?.refresh();
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
    this.controls.setLimits(applyLimits(h.limits)); // the server's limits, not copies of them
    this.view.showModel({ status: h.status, progress: h.model_progress, message: h.model_message, model: h.model, is_demo: h.is_demo, family: h.family });
    this.recommend();
    if (!this.settingsStored && Number.isInteger(h.native_size)) {
      // First visit: start at the model's own resolution and recommended settings.
      this.settingsStored = true;
      this.controls.write({ ...this.settings, width: h.native_size, height: h.native_size, ...recommendedSettings(h.defaults) });
      this.pad.resizeIfBlank(h.native_size, h.native_size);
      this.store.saveSettings(this.settings);
    }
    this.#refreshInitFacts();
    this.refreshPlan();
    if (h.status === "loading") setTimeout(() => this.refreshHealth(), 1500);
  }

  onModelStatus(status) {
    this.view.showModel(status);
    const switched = this.library?.onStatus(status); // another tab may have switched
    if (switched || (status.status === "ready" && this.health?.status !== "ready")) this.refreshHealth();
  }

  /** A model failed to load; the previous one keeps running (model_status says so too). */
  onModelError(payload) {
    this.library?.onError(payload);
    this.refreshHealth();
  }

  /**
   * The Apply advice from one place: /api/health's defaults (the selected model's), the size
   * a switch brought, and the enabled LoRAs' defaults.
   */
  recommend() {
    const { advice, subject } = combinedAdvice(this.health?.defaults, {
      size: this.sizeAdvice, loraDefaults: this.library?.defaults() ?? {},
    });
    this.controls.recommend(advice, subject);
  }

  /**
   * A switch was accepted (select_model's ack): /api/health's recommended settings follow the
   * new selection at once; a model made for another size recommends its own.
   */
  onModelSwitched(ack) {
    const before = this.health?.native_size;
    if (Number.isInteger(ack.native_size) && ack.native_size !== before) this.sizeAdvice = ack.native_size;
    else if (ack.native_size === before) this.sizeAdvice = null;
    this.refreshHealth();
  }

  onConnection(state, detail) {
    this.view.showConnection(state, detail);
    if (state === "connected" && detail === "reconnected") {
      this.refreshHealth();
      this.initImage.verify(); // a restarted server may have a different uploads folder
      this.refreshGallery();
      if (this.job.active) {
        this.view.showJobMessage("The connection dropped during this run; its remaining steps may not arrive. Generate again if it stalls.");
      }
    }
  }

  // --- settings and plan ------------------------------------------------------

  onSettingsChange(settings, { field } = {}) {
    this.store.saveSettings(settings);
    if (field === "width" || field === "height" || field === "recommended") this.pad.resizeIfBlank(settings.width, settings.height);
    this.#refreshInitFacts();
    if (PLAN_AFFECTING.has(field)) this.refreshPlan();
    if (field === "live") {
      if (settings.live) this.live.now(); // switching Live on shows the current settings at once
      else this.live.cancel();
    } else if (settings.live && LIVE_FIELDS.has(field)) {
      this.live.edit();
    }
  }

  onStrengthPreview(settings) {
    this.store.saveSettings(settings);
    this.refreshPlan();
  }

  onStrengthCommit(settings) {
    this.store.saveSettings(settings);
    if (settings.live && this.init) this.live.now();
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
      if (!this.job.active) this.display.showStrip(plan, !hasInit, null);
      this.view.showPlanSummary(this.#summaryText(plan, hasInit));
    } catch (err) {
      if (err?.name === "AbortError" || request.signal.aborted) return;
      this.view.showPlanError(err.message);
    }
  }

  /** While the strip shows a job (running or finished), the header's plan is the next run's. */
  #summaryText(plan, hasInit) {
    const text = planSummary(plan, { txt2img: !hasInit, inpaint: hasInit && Boolean(this.init?.has_alpha) });
    return this.job.active || this.display.stripJob ? `next run: ${text}` : text;
  }

  // --- init image -------------------------------------------------------------

  /** The init image the next job uses (init-image.js): {id, width, height, has_alpha, thumb, source} or null. */
  get init() {
    return this.initImage.current;
  }

  /**
   * Make an image the page shows (an output's URL, a full decode's blob: URL) the init
   * image, through the same upload as a file: thumbnail, size line, pad and plan follow.
   * label names it in the message ("Output 000012.42.png is now the init image."); `image`
   * (a PNG Blob) is used instead of fetching url (the page may not fetch its own blob: URLs).
   */
  async sendToInit(url, { label = null, image = null } = {}) {
    if (typeof url !== "string" || !url) return false;
    const name = label ?? `Output ${decodeURIComponent(url.split(/[?#]/)[0].split("/").pop())}`;
    this.view.showTab("upload");
    let blob = image;
    try {
      blob ??= await api.fetchUpload(url);
    } catch (err) {
      this.view.showUploadError(`${name} could not be made the init image: ${err.message}`);
      return false;
    }
    const done = await this.uploadFile(blob, "output");
    if (done) this.view.showJobMessage(`${name} is now the init image.`, "info");
    return done;
  }

  /** Upload an image (File or Blob) as the init; it goes on the drawing pad too. */
  uploadFile(file, source = "upload") {
    return this.initImage.upload(file, source);
  }

  /** "Erase areas to repaint": the pad already shows the init; resolves true when there is one. */
  async editInit() {
    return Boolean(this.init);
  }

  clearInit() {
    this.initImage.clear();
  }

  /** Make an upload the server kept (a gallery item's metadata.init_image) the init again. */
  restoreInit(meta) {
    return this.initImage.restore(meta);
  }

  /** The drawing pad changed (a person's edit makes it the init; Live reruns on a finished stroke). */
  onPadChange(change) {
    this.initImage.onPadChange(change);
    if (change.edited && this.settings.live) this.live.edit();
  }

  /** The init changed: the strength hint, size line and plan follow it. */
  #initChanged(init, { replaced }) {
    this.controls.setHasInit(Boolean(init));
    this.#refreshInitFacts();
    const hadInit = this.planHadInit;
    this.planHadInit = Boolean(init);
    if (hadInit !== Boolean(init)) this.refreshPlan();
    else this.#resummarize();
    if (replaced && init?.source !== "drawing" && this.settings.live) this.live.edit();
  }

  #refreshInitFacts() {
    const s = this.settings;
    this.view.showInitFacts(describeInit(this.init, s, this.health?.native_size));
  }

  // --- running ---------------------------------------------------------------

  /**
   * Run the current settings; `strengths` (a parsed list) makes it a strength sweep, `live`
   * a Live run (it cancels the tab's earlier Live job on the server; other jobs keep their place).
   * While another job runs, the new one waits behind it in the queue.
   */
  async generate({ strengths = null, live = false } = {}) {
    if (this.initImage.pending) {
      if (!this.job.active) this.view.showProgress({ state: JOB.SUBMITTING, text: "Sending the drawing…" });
      const settled = await this.initImage.settle(); // the pad's drawing, uploaded now
      if (!settled.ok) return this.view.showJobMessage(`Not started: ${settled.error}`, "error");
    }
    const settings = this.settings;
    this.store.saveSettings(settings);
    const payload = generatePayload(settings, this.init?.id ?? null, { live, strengths });
    // Always sent, [] included: the list on the page decides, not a server's --lora default.
    if (this.library) payload.loras = this.library.payload();
    const entry = this.job.submit({ payload, strengths, live });
    // Nothing running (or a Live run replacing the Live run shown): the display follows it now.
    // Otherwise it waits in the queue panel and is followed when its first step plan arrives.
    const followed = this.job.followed;
    if (!this.job.active || (live && followed?.live)) this.#follow(entry);
    this.#showQueue();
    const ack = await this.socket.generate(payload);
    if (ack?.error || ack?.job_id == null) {
      this.job.acknowledged(entry, null);
      const message = ack?.error || "The server did not start the job.";
      if (this.job.followed === entry) this.display.notStarted(message);
      else this.view.showJobMessage(`Not queued: ${message}`, "error");
      this.#showQueue();
      return;
    }
    const held = this.job.acknowledged(entry, ack.job_id);
    this.#noteJobInit(ack.job_id, payload.init_image ?? null);
    if (entry.cancelRequested) this.socket.cancel(ack.job_id);
    if (this.job.followed === entry && entry.state === JOB.QUEUED) {
      const waiting = this.health?.status === "loading" ? "Queued: waiting for the model to load…" : "Queued…";
      this.view.showProgress({ state: JOB.QUEUED, text: waiting });
    }
    this.#showQueue();
    for (const { event, payload: p } of held) this.onJobEvent(event, p);
  }

  /** Run a strength sweep over the list in the sweep field. */
  sweep() {
    const { values, error } = parseStrengthList(this.settings.sweep_strengths);
    if (error) return this.view.showJobMessage(`Sweep not started: ${error}`, "error");
    if (!this.init) return this.view.showJobMessage("A strength sweep needs an init image: upload or draw one first.", "error");
    return this.generate({ strengths: values });
  }

  /** Cancel the job the page shows (the Cancel button, Escape), or one from the queue panel by its key. */
  cancel(key = null) {
    const entry = key == null ? this.job.followed : this.job.unfinished.find((e) => e.key === key);
    if (!entry || !this.job.unfinished.includes(entry)) return;
    if (entry.jobId == null) entry.cancelRequested = true; // sent once the ack names the job
    else this.socket.cancel(entry.jobId);
    if (entry === this.job.followed) this.view.showProgress({ ...this.display.progressNow(), text: "Cancelling…" });
  }

  onJobEvent(event, payload) {
    const { action, entry } = this.job.route(event, payload);
    if (action !== "handle") return;
    // The worker started a queued job: the display moves to it.
    if (entry !== this.job.followed && event === "job_plan") this.#follow(entry);
    this.job.note(entry, event);
    if (entry === this.job.followed) this.display.handle(event, payload);
    if (event === "job_done") {
      if (entry.live) this.onLiveResult(payload);
      else {
        this.highlight = payload.name;
        this.refreshGallery();
      }
    }
    this.#showQueue();
    if (!this.job.active) this.#resummarize();
  }

  #follow(entry) {
    this.job.follow(entry);
    this.display.begin(entry.payload, entry.strengths);
  }

  #showQueue() {
    this.queueView?.render(this.job.unfinished);
  }

  // --- looking at frames -------------------------------------------------------

  /** A click on a strip cell, its init inset, the output cell, or an output of the row. */
  select(selection) {
    this.display.select(selection);
  }

  /** The "full decode" button: promote the strip frame shown large. */
  fullDecode() {
    return this.display.fullDecode();
  }

  /** A job ended: the summary keeps "next run" only while the strip still shows that job. */
  #resummarize() {
    if (this.plan) this.view.showPlanSummary(this.#summaryText(this.plan, Boolean(this.init)));
  }

  // --- gallery -------------------------------------------------------------------

  /**
   * Put an output's settings (its metadata, or a dropped PNG's) on the form, its LoRAs at
   * their weights and its model when it is another listed one; the init image stays. Resolves
   * with lines saying what could not be restored (a missing model or LoRA).
   */
  restoreSettings(meta) {
    const settings = settingsFromMetadata(meta, this.settings);
    this.controls.write(settings);
    this.store.saveSettings(settings);
    this.pad.resizeIfBlank(settings.width, settings.height);
    this.#refreshInitFacts();
    this.refreshPlan();
    return this.library?.restore(meta) ?? Promise.resolve([]);
  }

  /** The init upload id job `jobId` was sent with: a string, null for txt2img, undefined when not known. */
  jobInit(jobId) {
    return this.jobInits.get(jobId);
  }

  #noteJobInit(jobId, initId) {
    this.jobInits.set(jobId, initId);
    if (this.jobInits.size > 64) this.jobInits.delete(this.jobInits.keys().next().value);
  }

  /** Reload the gallery where it is (filter, pages); the output that just finished is highlighted. */
  refreshGallery() {
    const highlight = this.highlight ?? undefined; // undefined: keep the panel's own (e.g. a kept Live result)
    this.highlight = null;
    return this.gallery?.refresh({ highlight });
  }

  /**
   * A Live job finished (job_done of a job sent with live: true): its results join this tab's
   * Live row, and reach the gallery only when the person keeps one.
   */
  onLiveResult(done) {
    this.gallery?.addLive(done);
  }

  useGalleryItem(item) {
    if (!item) return;
    const meta = { ...(item.metadata ?? {}) };
    meta.seed = meta.seed ?? item.seed;
    const init = meta.init_image;
    this.restoreSettings(meta).then((notes) => {
      if (notes.length) this.view.showJobMessage(notes, "warning");
    });
    if (init && typeof init.id === "string") return this.restoreInit(init);
    this.clearInit();
  }
}
