// Running jobs: Generate, a strength sweep and Live send `generate`; Cancel and the queue
// panel send `cancel`; the socket's job events are routed through the tab's JobQueue and the
// followed job's go to the RunDisplay. Which job the display follows is decided here: the one
// just sent when nothing runs (or a Live run replacing the Live run shown), else the one the
// worker starts next.

import { JOB } from "./job.js";
import { generatePayload, parseStrengthList } from "./settings.js";

const JOB_INITS_KEPT = 64;

export class JobRunner {
  /**
   * socket() -> the studio's socket (attached after construction); modelLoading() -> true while
   * the model loads; showQueue(entries) draws the queue panel; onEvent(entry, event, payload) hears
   * every handled event of this tab's jobs, after the display.
   */
  constructor({ view, controls, store, initImage, job, display, library = null, socket, modelLoading, showQueue, onEvent }) {
    Object.assign(this, { view, controls, store, initImage, job, display, library, socket, modelLoading, showQueue, onEvent });
    this.jobInits = new Map(); // job id -> the init upload id it was sent with (null: txt2img), newest last
  }

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
    const settings = this.controls.read();
    this.store.saveSettings(settings);
    const payload = generatePayload(settings, this.initImage.current?.id ?? null, { live, strengths });
    // Always sent, [] included: the list on the page decides, not a server's --lora default.
    if (this.library) payload.loras = this.library.payload();
    const entry = this.job.submit({ payload, strengths, live });
    // Nothing running (or a Live run replacing the Live run shown): the display follows it now.
    // Otherwise it waits in the queue panel and is followed when its first step plan arrives.
    const followed = this.job.followed;
    if (!this.job.active || (live && followed?.live)) this.#follow(entry);
    this.#showQueue();
    const ack = await this.socket().generate(payload);
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
    if (entry.cancelRequested) this.socket().cancel(ack.job_id);
    if (this.job.followed === entry && entry.state === JOB.QUEUED) {
      const waiting = this.modelLoading() ? "Queued: waiting for the model to load…" : "Queued…";
      this.view.showProgress({ state: JOB.QUEUED, text: waiting });
    }
    this.#showQueue();
    for (const { event, payload: p } of held) this.onJobEvent(event, p);
  }

  /** Run a strength sweep over the list in the sweep field. */
  sweep() {
    const { values, error } = parseStrengthList(this.controls.read().sweep_strengths);
    if (error) return this.view.showJobMessage(`Sweep not started: ${error}`, "error");
    if (!this.initImage.current) return this.view.showJobMessage("A strength sweep needs an init image: upload or draw one first.", "error");
    return this.generate({ strengths: values });
  }

  /** Cancel the job the page shows (the Cancel button, Escape), or one from the queue panel by its key. */
  cancel(key = null) {
    const entry = key == null ? this.job.followed : this.job.unfinished.find((e) => e.key === key);
    if (!entry || !this.job.unfinished.includes(entry)) return;
    if (entry.jobId == null) entry.cancelRequested = true; // sent once the ack names the job
    else this.socket().cancel(entry.jobId);
    if (entry === this.job.followed) this.view.showProgress({ ...this.display.progressNow(), text: "Cancelling…" });
  }

  onJobEvent(event, payload) {
    const { action, entry } = this.job.route(event, payload);
    if (action !== "handle") return;
    // The worker started a queued job: the display moves to it.
    if (entry !== this.job.followed && event === "job_plan") this.#follow(entry);
    this.job.note(entry, event);
    if (entry === this.job.followed) this.display.handle(event, payload);
    this.onEvent(entry, event, payload);
    this.#showQueue();
  }

  /** The init upload id job `jobId` was sent with: a string, null for txt2img, undefined when not known. */
  jobInit(jobId) {
    return this.jobInits.get(jobId);
  }

  #noteJobInit(jobId, initId) {
    this.jobInits.set(jobId, initId);
    if (this.jobInits.size > JOB_INITS_KEPT) this.jobInits.delete(this.jobInits.keys().next().value);
  }

  #follow(entry) {
    this.job.follow(entry);
    this.display.begin(entry.payload, entry.strengths);
  }

  #showQueue() {
    this.showQueue(this.job.unfinished);
  }
}
