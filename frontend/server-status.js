// The server as the page shows it: /api/health (the limits the form clamps to, the model and its
// status, a cluster's workers), the socket's model_status and model_error, and the Apply advice
// that follows the selected model. It asks /api/health again after a failure, while a model
// loads, and every few seconds while a cluster's workers are shown and the page is visible.
// Timers are injected (as in live.js), so node --test can drive the polling.

import * as api from "./api.js";
import { combinedAdvice } from "./recommended.js";
import { applyLimits } from "./settings.js";
import { workerRows } from "./workers-view.js";

export const RETRY_MS = 3000; // /api/health failed
export const LOADING_MS = 1500; // a model is loading
export const WORKERS_MS = 3000; // a cluster's workers change state with every job

export class ServerStatus {
  /**
   * onHealth(health): a fresh /api/health answer, after the header, limits and advice follow it.
   * library: the models folder (model-library.js), optional; workersView: workers-view.js, optional.
   */
  constructor({
    view, controls, library = null, workersView = null, onHealth = () => {},
    setTimer = (fn, ms) => setTimeout(fn, ms), clearTimer = (t) => clearTimeout(t),
  }) {
    Object.assign(this, { view, controls, library, workersView, onHealth, setTimer, clearTimer });
    this.health = null;
    this.sizeAdvice = null; // a switch to a model of another native size recommends that size
    this.cluster = false; // the last answer came from a cluster's web process
    this.visible = true;
    this.workersTimer = null;
    this.asked = 0; // only the newest answer's workers are shown
  }

  async refresh() {
    const asked = ++this.asked;
    try {
      this.health = await api.getHealth();
    } catch (err) {
      this.view.showModel({ status: "error", message: err.message });
      this.setTimer(() => this.refresh(), RETRY_MS);
      return;
    }
    const h = this.health;
    this.controls.setLimits(applyLimits(h.limits)); // the server's limits, not copies of them
    this.view.showModel({ status: h.status, progress: h.model_progress, message: h.model_message, model: h.model, is_demo: h.is_demo, family: h.family });
    this.recommend();
    if (asked === this.asked) this.#showWorkers(h);
    this.onHealth(h);
    if (h.status === "loading") this.setTimer(() => this.refresh(), LOADING_MS);
  }

  onModelStatus(status) {
    this.view.showModel(status);
    const switched = this.library?.onStatus(status); // another tab may have switched
    if (switched || (status.status === "ready" && this.health?.status !== "ready")) this.refresh();
  }

  /** A model failed to load; the previous one keeps running (model_status says so too). */
  onModelError(payload) {
    this.library?.onError(payload);
    this.refresh();
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
    this.refresh();
  }

  /** The page was hidden or shown again: a hidden page asks nothing; shown again, it looks at once. */
  onPageVisible(visible) {
    this.visible = visible;
    this.#stopWorkersPoll();
    if (visible && this.cluster) this.#pollWorkers();
  }

  // --- a cluster's workers ------------------------------------------------------------

  #showWorkers(health) {
    const shown = workerRows(health);
    this.cluster = shown !== null;
    this.workersView?.render(shown);
    this.#stopWorkersPoll();
    if (this.cluster && this.visible) this.workersTimer = this.setTimer(() => this.#pollWorkers(), WORKERS_MS);
  }

  /** Only the workers follow this answer: the form and the plan stay as they are between polls. */
  async #pollWorkers() {
    this.workersTimer = null;
    const asked = ++this.asked;
    let health;
    try {
      health = await api.getHealth();
    } catch {
      health = null; // the connection indicator says the server is gone; try again on the next beat
    }
    if (asked !== this.asked || !this.visible) return;
    if (health) this.#showWorkers(health);
    else if (this.cluster) this.workersTimer = this.setTimer(() => this.#pollWorkers(), WORKERS_MS);
  }

  #stopWorkersPoll() {
    if (this.workersTimer != null) this.clearTimer(this.workersTimer);
    this.workersTimer = null;
  }
}
