// The controller: page state and what each event means for it. It talks to
// the server through api.js / socket.js and to the page through the views
// (the followed job's frames, outputs and progress through run-display.js);
// it touches no DOM itself.

import * as api from "./api.js";
import { describeInit } from "./fit.js";
import { JOB, JobTracker } from "./job.js";
import { combinedAdvice, recommendedSettings } from "./recommended.js";
import { RunDisplay } from "./run-display.js";
import { generatePayload, parseStrengthList, planQuery, settingsFromMetadata } from "./settings.js";
import { planSummary } from "./strip.js";

export { doneMessages } from "./run-display.js";

const PLAN_AFFECTING = new Set(["steps", "strength", "exact_steps", "min_taken_steps", "sampler", "recommended"]);

export class Studio {
  /** thumbnail(blob) -> data URL; imageSize(blob) -> {width, height} (both may reject). */
  /** library: the models folder and LoRAs (model-library.js); optional, for tests of the rest. */
  constructor({ view, controls, stripView, outputsView, galleryView, store, pad, thumbnail, imageSize, library = null }) {
    Object.assign(this, { view, controls, galleryView, store, pad, thumbnail, imageSize, library });
    this.socket = null;
    this.job = new JobTracker();
    this.display = new RunDisplay({
      view, stripView, outputsView, job: this.job,
      promote: (request) => this.socket?.promote?.(request) ?? Promise.resolve({ error: "Not connected to the server." }),
    });
    this.init = null; // {id, width, height, has_alpha, thumb, source}
    this.initToken = 0; // bumped by every init change a person asks for; late answers for older ones are dropped
    this.health = null;
    this.plan = null; // the plan for the current settings (GET /api/plan)
    this.planRequest = null;
    this.cancelRequested = false;
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
    this.#setInit(this.store.loadInit(), { save: false });
    this.#verifyInit();
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
    if (field === "width" || field === "height" || field === "recommended") this.pad.resizeIfBlank(settings.width, settings.height);
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

  /**
   * Make an image the page shows (an output's URL, a full decode's blob: URL) the init
   * image, through the same upload as a file: thumbnail, size line and plan follow.
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

  /**
   * Upload an image as the init. For a drawing with erased pixels, `mask` (white =
   * repaint) goes with it and `preview` (erased area transparent) makes the thumbnail.
   */
  async uploadFile(file, source = "upload", { mask = null, preview = null } = {}) {
    const token = ++this.initToken;
    this.view.showUploadError("");
    this.view.setUploading(true);
    try {
      const res = await api.uploadImage(file, source === "drawing" ? "drawing.png" : "image.png", mask);
      let thumb = null;
      try {
        thumb = await this.thumbnail(preview ?? file);
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

  /**
   * Put the init image on the drawing pad, full size, to erase parts of it
   * (its transparent pixels come in erased). Resolves true when it is there.
   */
  async editInit() {
    const init = this.init;
    if (!init) return false;
    this.view.showUploadError("");
    this.view.setUploading(true, "Putting the image on the drawing pad…");
    try {
      const blob = await api.fetchUpload(api.uploadUrl(init.id));
      await this.pad.loadImage(blob, { hasAlpha: Boolean(init.has_alpha) });
      return true;
    } catch (err) {
      this.view.showUploadError(`The image could not be put on the drawing pad: ${err.message}`);
      return false;
    } finally {
      this.view.setUploading(false);
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

  /** Run the current settings; `strengths` (a parsed list) makes it a strength sweep. */
  async generate({ strengths = null } = {}) {
    const settings = this.settings;
    this.store.saveSettings(settings);
    const supersede = settings.live || this.job.active;
    const payload = generatePayload(settings, this.init?.id ?? null, { supersede, strengths });
    // Always sent, [] included: the list on the page decides, not a server's --lora default.
    if (this.library) payload.loras = this.library.payload();
    const token = this.job.submit();
    this.cancelRequested = false;
    this.display.begin(payload, strengths);
    const ack = await this.socket.generate(payload);
    if (ack?.error || ack?.job_id == null) {
      this.job.acknowledged(token, null);
      if (token !== this.job.token) return;
      this.display.notStarted(ack?.error || "The server did not start the job.");
      return;
    }
    const held = this.job.acknowledged(token, ack.job_id);
    this.#noteJobInit(ack.job_id, payload.init_image ?? null);
    if (token !== this.job.token) return; // a newer generate replaced this one
    if (this.cancelRequested) this.socket.cancel(ack.job_id);
    if (this.job.state === JOB.QUEUED) {
      const waiting = this.health?.status === "loading" ? "Queued: waiting for the model to load…" : "Queued…";
      this.view.showProgress({ state: JOB.QUEUED, text: waiting });
    }
    for (const { event, payload: p } of held) this.onJobEvent(event, p);
  }

  /** Run a strength sweep over the list in the sweep field. */
  sweep() {
    const { values, error } = parseStrengthList(this.settings.sweep_strengths);
    if (error) return this.view.showJobMessage(`Sweep not started: ${error}`, "error");
    if (!this.init) return this.view.showJobMessage("A strength sweep needs an init image: upload or draw one first.", "error");
    return this.generate({ strengths: values });
  }

  cancel() {
    if (!this.job.active) return;
    if (this.job.state === JOB.SUBMITTING) this.cancelRequested = true;
    else this.socket.cancel(this.job.jobId);
    this.view.showProgress({ ...this.display.progressNow(), text: "Cancelling…" });
  }

  onJobEvent(event, payload) {
    const route = this.job.route(event, payload);
    if (route !== "handle") return;
    this.job.note(event);
    this.display.handle(event, payload);
    if (event === "job_done") {
      this.highlight = payload.name;
      this.refreshGallery();
    }
    if (!this.job.active) this.#resummarize();
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
    const init = meta.init_image;
    this.restoreSettings(meta).then((notes) => {
      if (notes.length) this.view.showJobMessage(notes, "warning");
    });
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
