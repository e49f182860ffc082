// The form's settings and what follows from them: each edit is saved, resizes a blank pad,
// updates the init's size line and (for the fields that change it) the plan of the next run
// (GET /api/plan, shown in the strip while nothing runs and in the header's summary), and
// reruns Live. A first visit starts at the model's native size and recommended settings.

import * as api from "./api.js";
import { describeInit } from "./fit.js";
import { LIVE_FIELDS } from "./live.js";
import { recommendedSettings } from "./recommended.js";
import { planQuery, settingsFromMetadata } from "./settings.js";
import { planSummary } from "./strip.js";

const PLAN_AFFECTING = new Set(["steps", "strength", "exact_steps", "min_taken_steps", "sampler", "recommended"]);

export class SettingsPanel {
  /**
   * init() -> the init image the next job uses (or null); health() -> the last /api/health answer;
   * live: the LiveTrigger; job: the JobQueue; display: the RunDisplay (its strip shows the plan when idle).
   */
  constructor({ view, controls, store, pad, live, job, display, library = null, init, health }) {
    Object.assign(this, { view, controls, store, pad, live, job, display, library, init, health });
    this.stored = false; // the person has settings of their own (false: a first visit)
    this.plan = null; // the plan for the current settings (GET /api/plan)
    this.planRequest = null;
    this.planHadInit = false;
  }

  get settings() {
    return this.controls.read();
  }

  /** The page opens: the stored settings (or the defaults) go on the form; returns them. */
  start() {
    const { settings, stored } = this.store.loadSettings();
    this.stored = stored;
    this.controls.write(settings);
    return settings;
  }

  /** A fresh /api/health: a first visit takes the model's native size and recommended settings. */
  onHealth(health) {
    if (!this.stored && Number.isInteger(health.native_size)) {
      this.stored = true;
      this.controls.write({ ...this.settings, width: health.native_size, height: health.native_size, ...recommendedSettings(health.defaults) });
      this.pad.resizeIfBlank(health.native_size, health.native_size);
      this.store.saveSettings(this.settings);
    }
    this.refreshInitFacts();
    this.refreshPlan();
  }

  onChange(settings, { field } = {}) {
    this.store.saveSettings(settings);
    if (field === "width" || field === "height" || field === "recommended") this.pad.resizeIfBlank(settings.width, settings.height);
    this.refreshInitFacts();
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
    if (settings.live && this.init()) this.live.now();
  }

  /**
   * Put an output's settings (its metadata, or a dropped PNG's) on the form, its LoRAs at
   * their weights and its model when it is another listed one; the init image stays. Resolves
   * with lines saying what could not be restored (a missing model or LoRA).
   */
  restore(meta) {
    const settings = settingsFromMetadata(meta, this.settings);
    this.controls.write(settings);
    this.store.saveSettings(settings);
    this.pad.resizeIfBlank(settings.width, settings.height);
    this.refreshInitFacts();
    this.refreshPlan();
    return this.library?.restore(meta) ?? Promise.resolve([]);
  }

  /** The init changed: the strength hint, size line and plan follow it; Live reruns on a new image. */
  onInitChanged(init, { replaced }) {
    this.controls.setHasInit(Boolean(init));
    this.refreshInitFacts();
    const hadInit = this.planHadInit;
    this.planHadInit = Boolean(init);
    if (hadInit !== Boolean(init)) this.refreshPlan();
    else this.resummarize();
    if (replaced && init?.source !== "drawing" && this.settings.live) this.live.edit();
  }

  refreshInitFacts() {
    this.view.showInitFacts(describeInit(this.init(), this.settings, this.health()?.native_size));
  }

  /** Ask the server for the plan of the current settings; only the newest answer counts. */
  async refreshPlan() {
    this.planRequest?.abort();
    const request = new AbortController();
    this.planRequest = request;
    const hasInit = Boolean(this.init());
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

  /** A job ended or the init changed: the summary keeps "next run" only while the strip shows a job. */
  resummarize() {
    if (this.plan) this.view.showPlanSummary(this.#summaryText(this.plan, Boolean(this.init())));
  }

  /** While the strip shows a job (running or finished), the header's plan is the next run's. */
  #summaryText(plan, hasInit) {
    const text = planSummary(plan, { txt2img: !hasInit, inpaint: hasInit && Boolean(this.init()?.has_alpha) });
    return this.job.active || this.display.stripJob ? `next run: ${text}` : text;
  }
}
