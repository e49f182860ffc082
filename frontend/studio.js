// The controller: the page's one API for main.js and the artist tools. It builds the
// parts that each keep one piece of page state and hands events to the part they concern:
// server-status.js (/api/health, the model, a cluster's workers), settings-panel.js (the form,
// the plan, Live's trigger), job-runner.js (sending, cancelling and following jobs, shown by
// run-display.js) and init-image.js (the init and the pad). What crosses parts (a reconnect, an
// init image, the gallery) is decided here. It touches no DOM itself.

import * as api from "./api.js";
import { InitImage } from "./init-image.js";
import { JobQueue } from "./job.js";
import { LiveTrigger } from "./live.js";
import { JobRunner } from "./job-runner.js";
import { RunDisplay } from "./run-display.js";
import { ServerStatus } from "./server-status.js";
import { SettingsPanel } from "./settings-panel.js";

export { doneMessages } from "./run-display.js";

export class Studio {
  /** thumbnail(blob) -> data URL; imageSize(blob) -> {width, height} (both may reject). */
  /** library: the models folder and LoRAs (model-library.js); optional, for tests of the rest. */
  /** queueView: the queue panel (queue-view.js); optional, for tests of the rest. */
  /** gallery: the gallery panel and the Live row (gallery-panel.js); optional, likewise. */
  /** workersView: a cluster's workers (workers-view.js); optional, likewise. */
  constructor({
    view, controls, stripView, outputsView, gallery = null, store, pad, thumbnail, imageSize, library = null,
    queueView = null, workersView = null,
  }) {
    Object.assign(this, { view, controls, gallery, store, pad, library, queueView });
    this.socket = null;
    this.highlight = null; // the output the gallery outlines when it next reloads
    this.job = new JobQueue();
    this.live = new LiveTrigger({ fire: () => this.generate({ live: true }) });
    this.display = new RunDisplay({
      view, stripView, outputsView, job: this.job,
      promote: (request) => this.socket?.promote?.(request) ?? Promise.resolve({ error: "Not connected to the server." }),
    });
    // The init image's changes go to the settings panel: the size line, the plan and Live follow them.
    this.initImage = new InitImage({
      view, pad, store, thumbnail, imageSize, onChange: (init, change) => this.form.onInitChanged(init, change),
    });
    this.server = new ServerStatus({
      view, controls, library, workersView, onHealth: (health) => this.form.onHealth(health),
    });
    this.form = new SettingsPanel({
      view, controls, store, pad, live: this.live, job: this.job, display: this.display, library,
      init: () => this.init, health: () => this.server.health,
    });
    this.runner = new JobRunner({
      view, controls, store, job: this.job, display: this.display, library,
      initImage: this.initImage,
      socket: () => this.socket,
      modelLoading: () => this.server.health?.status === "loading",
      showQueue: (entries) => this.queueView?.render(entries),
      onEvent: (entry, event, payload) => this.#jobEvent(entry, event, payload),
    });
  }

  attachSocket(socket) {
    this.socket = socket;
  }

  start() {
    const settings = this.form.start();
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

  /** The step strip as data (strip.js), for the followed job or the next run. */
  get strip() {
    return this.display.strip;
  }

  // --- the server: health, model, connection, workers ------------------------------

  refreshHealth() {
    return this.server.refresh();
  }

  onModelStatus(status) {
    this.server.onModelStatus(status);
  }

  onModelError(payload) {
    this.server.onModelError(payload);
  }

  /** The Apply advice (the model's, a switch's size, the enabled LoRAs'). */
  recommend() {
    this.server.recommend();
  }

  onModelSwitched(ack) {
    this.server.onModelSwitched(ack);
  }

  /** The page was hidden (another tab, minimised) or shown again. */
  onPageVisible(visible) {
    this.server.onPageVisible(visible);
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

  // --- settings and plan ------------------------------------------------------------

  onSettingsChange(settings, info) {
    this.form.onChange(settings, info);
  }

  onStrengthPreview(settings) {
    this.form.onStrengthPreview(settings);
  }

  onStrengthCommit(settings) {
    this.form.onStrengthCommit(settings);
  }

  refreshPlan() {
    return this.form.refreshPlan();
  }

  /** An output's settings (its metadata, or a dropped PNG's) on the form; resolves with what was not restored. */
  restoreSettings(meta) {
    return this.form.restore(meta);
  }

  // --- init image -------------------------------------------------------------------

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

  // --- running and looking at frames ----------------------------------------------------

  generate(options) {
    return this.runner.generate(options);
  }

  sweep() {
    return this.runner.sweep();
  }

  cancel(key = null) {
    this.runner.cancel(key);
  }

  onJobEvent(event, payload) {
    this.runner.onJobEvent(event, payload);
  }

  /** The init upload id job `jobId` was sent with: a string, null for txt2img, undefined when not known. */
  jobInit(jobId) {
    return this.runner.jobInit(jobId);
  }

  /** A click on a strip cell, its init inset, the output cell, or an output of the row. */
  select(selection) {
    this.display.select(selection);
  }

  /** The "full decode" button: promote the strip frame shown large. */
  fullDecode() {
    return this.display.fullDecode();
  }

  /** A job of this tab moved on: a finished one reaches the gallery or the Live row. */
  #jobEvent(entry, event, payload) {
    if (event === "job_done") {
      if (entry.live) this.onLiveResult(payload);
      else {
        this.highlight = payload.name;
        this.refreshGallery();
      }
    }
    if (!this.job.active) this.form.resummarize();
  }

  // --- gallery -------------------------------------------------------------------------

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
