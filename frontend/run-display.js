// What the page shows of the followed job: the step strip's frames, the
// outputs row of a multi-output job, the large viewer, the progress line and
// the done message; and the full decode of a strip frame (`promote`). The
// controller (studio.js) decides which job is followed and hands its events
// here; this module touches the DOM only through the views.

import { ENTRY, batchDone, batchKind, batchOutput, batchPlan, batchSize, entryCaption, isMulti, newBatch } from "./batch.js";
import { FrameUrls, frameBlob } from "./frames.js";
import { JOB } from "./job.js";
import { cellIndexForStep, initCaption, jobModeText, placeFrame, stepCaption, stripFromPlan } from "./strip.js";
import { formatSeconds } from "./view.js";

export class RunDisplay {
  /**
   * job: the JobQueue (whose followed job's state and id the display reads);
   * promote(request) -> Promise of the `promote` ack, or null where the socket has none.
   */
  constructor({ view, stripView, outputsView, job, promote = null }) {
    Object.assign(this, { view, stripView, outputsView, job, promote });
    this.frames = new FrameUrls();
    this.strip = stripFromPlan(null);
    this.stripJob = null; // {jobId, item} whose frames the strip shows; null for the next run's skeleton
    this.batch = null; // the followed job's outputs (batch.js)
    this.run = null; // timing and display facts for the followed job's current output
    this.selection = null; // null follows the newest frame
    this.decodeTarget = null; // the strip frame a "full decode" would promote
    this.decodeToken = 0;
    this.decodedUrl = null;
  }

  /** A generate is being sent: a fresh row (for several outputs) and progress. */
  begin(payload, strengths = null) {
    this.selection = null;
    this.run = null;
    this.batch = newBatch({ items: batchSize(payload), kind: batchKind(payload), strengths });
    this.outputsView.setSelected(null);
    this.outputsView.render(this.batch);
    this.view.showJobMessage([]);
    this.view.showProgress({ state: JOB.SUBMITTING, text: "Sending…" });
  }

  /** The server refused the generate. */
  notStarted(message) {
    this.batch = null;
    this.outputsView.render(null);
    this.view.showProgress({ state: JOB.ERROR, text: "Not started" });
    this.view.showJobMessage(message, "error");
  }

  /** A server event of the followed job (already routed and noted by the JobQueue). */
  handle(event, payload) {
    if (event === "job_plan") this.#onPlan(payload);
    else if (event === "job_step") this.#onStep(payload);
    else if (event === "job_output") this.#onOutput(payload);
    else if (event === "job_done") this.#onDone(payload);
    else if (event === "job_cancelled") this.#onEnd(JOB.CANCELLED, "Cancelled");
    else if (event === "job_error") this.#onEnd(JOB.ERROR, "Failed", payload.error);
  }

  /**
   * The strip shows either the next run's skeleton (idle; job null) or the
   * followed job's frames for one output (job {jobId, item}).
   */
  showStrip(plan, txt2img, job) {
    this.strip = stripFromPlan(plan, { txt2img });
    this.stripJob = job;
    this.stripView.render(this.strip, plan, { txt2img });
    this.view.showJobMode(job ? jobModeText(plan, { sweep: this.batch?.kind === "sweep" }) : "");
  }

  /** A job_plan: one per output; the strip starts over for each. */
  #onPlan(plan) {
    const item = whole(plan.item, 0);
    const items = whole(plan.items, this.batch?.items ?? 1);
    this.frames.nextGeneration();
    this.showStrip(plan, plan.mode === "txt2img", { jobId: this.job.jobId, item });
    if (this.batch) {
      this.batch = batchPlan(this.batch, plan);
      this.outputsView.render(this.batch);
    }
    if (this.selection?.type === "cell" || this.selection?.type === "init") {
      this.selection = null; // that cell belonged to the previous output's strip
      this.stripView.setSelected(null);
    }
    const started = this.run?.jobId === this.job.jobId ? this.run.started : now(); // elapsed spans all outputs
    this.run = {
      jobId: this.job.jobId, started, firstFrame: null, done: 0, taken: plan.taken, seed: plan.seed,
      mode: plan.mode, kind: null, item, items, perStep: this.run?.jobId === this.job.jobId ? this.run.perStep : null,
    };
    this.stripView.setCurrent(plan.skipped < plan.steps_total ? plan.skipped : -1);
    this.view.showProgress(this.progressNow());
  }

  /**
   * A frame: the strip shows its `image` (x_t); the viewer shows the step's
   * predicted result (`x0_image`) when it carries one, else the same picture.
   */
  #onStep(step) {
    if (!this.run) return; // a step before its plan: nothing to place it in
    if (Number.isInteger(step.item) && step.item !== this.run.item) return; // a late frame of an earlier output
    const url = this.frames.fromStep(step);
    if (!url) return;
    const isInit = step.kind === "init";
    const large = isInit ? null : this.frames.fromStep(step, "x0");
    const index = cellIndexForStep(this.strip, step);
    const before = this.strip;
    this.strip = placeFrame(this.strip, step, url, large);
    if (this.strip !== before) this.stripView.update(this.strip, isInit ? "init" : index);
    const run = this.run;
    run.kind = step.kind;
    if (!isInit) run.done = Math.max(run.done, step.index + 1);
    if (run.firstFrame == null) run.firstFrame = now();
    this.stripView.setCurrent(index >= 0 ? index + 1 : isInit ? this.strip.skipped : -1);
    if (!this.selection) {
      const cell = this.strip.cells[index];
      if (isInit) this.#showLarge(url, this.#frameCaption(initCaption(this.strip)), "init");
      else if (cell) this.#showLarge(cell.large ?? cell.frame, this.#frameCaption(stepCaption(cell, this.strip)), "preview");
      this.frames.revokeOlder(); // the old job's last frame is off screen now
    }
    this.view.showProgress(this.progressNow());
  }

  /** One output of a multi-output job was saved (job_done follows the last). */
  #onOutput(output) {
    const run = this.run;
    if (run) {
      if (run.firstFrame != null && run.done > 0) run.perStep = (now() - run.firstFrame) / 1000 / run.done;
      run.done = run.taken;
      run.saved = true;
    }
    if (this.batch) {
      this.batch = batchOutput(this.batch, output);
      this.outputsView.render(this.batch);
    }
    this.stripView.setCurrent(-1);
    this.stripView.setOutput(output.url);
    if (!this.selection && output.url) {
      const entry = this.batch?.entries[whole(output.item, 0)];
      this.#showLarge(output.url, entry && isMulti(this.batch) ? entryCaption(entry, this.batch) : `Output · seed ${output.seed}`, "output");
      this.frames.revokeOlder();
    }
    this.view.showProgress(this.progressNow());
  }

  #onDone(done) {
    const run = this.run ?? { started: now(), taken: 0, done: 0 };
    run.done = run.taken;
    if (this.batch) {
      this.batch = batchDone(this.batch, done);
      this.outputsView.render(this.batch);
    }
    const multi = isMulti(this.batch);
    const outputs = Array.isArray(done.outputs) && done.outputs.length ? done.outputs : [done];
    this.stripView.setCurrent(-1);
    this.stripView.setOutput(done.url);
    if (!this.selection) {
      const last = this.batch?.entries.at(-1);
      this.#showLarge(done.url, multi && last ? entryCaption(last, this.batch) : `Output · seed ${done.seed}`, "output");
    }
    this.frames.revokeOlder();
    // The whole job's time: job_elapsed_s from the server; elapsed_s is only the last output's.
    const took = Number.isFinite(done.job_elapsed_s) ? done.job_elapsed_s : (now() - run.started) / 1000;
    const text = multi ? `Done · ${outputs.length} outputs · seed ${done.seed}` : `Done · seed ${done.seed}`;
    this.view.showProgress({ state: JOB.DONE, fraction: 1, text, timing: `${formatSeconds(took)} total` });
    this.view.showJobMessage(doneMessages(outputs), "warning");
  }

  #onEnd(state, text, error) {
    this.stripView.setCurrent(-1);
    const p = this.progressNow();
    const run = this.run;
    const where = !run ? "" : run.items > 1
      ? ` at step ${run.done} of ${run.taken}, output ${run.item + 1} of ${run.items}`
      : ` at step ${run.done} of ${run.taken}`;
    this.view.showProgress({ ...p, state, text: `${text}${where}`, timing: p.timing.replace(/ · .*left$/, "") });
    if (error) this.view.showJobMessage(error, "error");
    const saved = this.batch?.entries.filter((e) => e.state === ENTRY.DONE).length ?? 0;
    if (state === JOB.CANCELLED) {
      this.view.showJobMessage(saved
        ? `Cancelled: the ${saved} output${saved > 1 ? "s" : ""} finished before it ${saved > 1 ? "were" : "was"} saved; the rest did not run.`
        : "Cancelled: no image was saved.", "info");
    }
  }

  /** The progress line; several outputs fill the bar output by output ("Output 2 of 4 · Step 3 of 7"). */
  progressNow() {
    const run = this.run;
    if (!run) return { state: this.job.state, fraction: 0, text: "Starting…", timing: "" };
    const elapsed = (now() - run.started) / 1000;
    let timing = `${formatSeconds(elapsed)} elapsed`;
    const later = Math.max(run.items - run.item - 1, 0) * run.taken; // steps of the outputs still to come
    const perStep = run.done > 0 && run.firstFrame != null ? (now() - run.firstFrame) / 1000 / run.done : run.perStep;
    const left = run.taken - run.done + later;
    if (perStep != null && left > 0) timing += ` · ~${formatSeconds(perStep * left)} left`;
    let text = run.taken === 0 ? "Returning the init unchanged…"
      : run.done === 0 ? `Starting · ${run.taken} steps to take`
        : `Step ${run.done} of ${run.taken}`;
    if (run.saved && run.items > 1) text = "Saved";
    const own = run.taken ? run.done / run.taken : run.saved ? 1 : 0;
    if (run.items > 1) text = `Output ${run.item + 1} of ${run.items} · ${text}`;
    return { state: this.job.state, fraction: (run.item + own) / Math.max(run.items, 1), text, timing };
  }

  /** A frame's caption, naming the output it belongs to when the job makes several. */
  #frameCaption(caption) {
    const which = this.run?.items > 1 ? `Output ${this.run.item + 1} of ${this.run.items} · ` : "";
    return `${which}${caption}`;
  }

  /** Every large view goes through here: whatever a full decode was about to replace is gone. */
  #showLarge(url, caption, kind) {
    this.decodeTarget = null;
    this.view.showLarge(url, caption, kind);
  }

  // --- looking at frames -------------------------------------------------------

  /**
   * A click on a strip cell, its init inset, the output cell, or an output of
   * the row ({type: "batch", item}). Clicking the shown thing again follows the run.
   */
  select(selection) {
    const key = (s) => s && `${s.type}:${s.index ?? s.item ?? ""}`;
    const same = key(this.selection) === key(selection);
    this.selection = same ? null : selection;
    this.stripView.setSelected(this.selection?.type === "batch" ? null : this.selection);
    this.outputsView.setSelected(this.selection?.type === "batch" ? selection.item : null);
    if (!this.selection) return this.#showNewest();
    if (selection.type === "batch") {
      const entry = this.batch?.entries[selection.item];
      if (entry?.url) this.#showLarge(entry.url, entryCaption(entry, this.batch), "output");
      return;
    }
    if (selection.type === "output") {
      const src = this.stripView.outputImg.src;
      this.#showLarge(src, "Output", "output");
      return;
    }
    if (selection.type === "init") {
      if (!this.strip.initFrame) return;
      this.#showLarge(this.strip.initFrame, `${initCaption(this.strip)} (selected; click again to follow the run)`, "init");
      this.#offerFullDecode(null);
      return;
    }
    const cell = this.strip.cells[selection.index];
    if (!cell?.frame) return;
    this.#showLarge(cell.large ?? cell.frame, `${stepCaption(cell, this.strip)} (selected; click again to follow the run)`, "preview");
    this.#offerFullDecode(cell);
  }

  /** A job's strip frame is shown large: offer its full-VAE decode (the `promote` event). cell null: the init frame. */
  #offerFullDecode(cell) {
    if (!this.stripJob || !this.promote) return;
    const label = cell ? `step ${cell.takenStep} of ${this.strip.taken}` : "the initial image SD sees";
    this.decodeTarget = { job_id: this.stripJob.jobId, index: cell ? cell.takenStep - 1 : -1, item: this.stripJob.item, label };
    this.view.offerFullDecode("ready", `Decode ${label} with the full VAE: slower than the preview, and exact`);
  }

  /** Ask the server for the full decode on offer and show it large. */
  async fullDecode() {
    const target = this.decodeTarget;
    if (!target) return;
    const token = ++this.decodeToken;
    this.view.offerFullDecode("busy", `Decoding ${target.label}…`);
    this.view.showViewerNote("");
    const { label, ...request } = target;
    const ack = await this.promote(request);
    if (token !== this.decodeToken || this.decodeTarget !== target) return; // something else is shown now
    const blob = ack?.error ? null : frameBlob(ack);
    if (!blob) {
      this.view.offerFullDecode("ready", `Decode ${label} with the full VAE`);
      this.view.showViewerNote(`Full decode failed: ${ack?.error || "no image came back."}`, "error");
      return;
    }
    if (this.decodedUrl) URL.revokeObjectURL(this.decodedUrl);
    this.decodedUrl = URL.createObjectURL(blob);
    const size = ack.width && ack.height ? `, ${ack.width}×${ack.height}` : "";
    this.#showLarge(this.decodedUrl, `full decode of ${label} (full VAE${size}; click the cell again to follow the run)`, "decoded");
  }

  #showNewest() {
    if (this.stripView.outputCell.dataset.state === "ready") {
      this.#showLarge(this.stripView.outputImg.src, "Output", "output");
      return;
    }
    const last = this.strip.cells.findLast((c) => c.frame);
    if (last) this.#showLarge(last.large ?? last.frame, stepCaption(last, this.strip));
    else if (this.strip.initFrame) this.#showLarge(this.strip.initFrame, initCaption(this.strip), "init");
  }
}

/**
 * The done message: each output's warnings (once each) and where saved
 * intermediate steps went (the output's intermediates_dir, or its metadata's;
 * a path relative to the server's working directory).
 */
export function doneMessages(outputs) {
  const warnings = [];
  const dirs = [];
  for (const out of outputs) {
    const meta = out?.metadata ?? {};
    for (const w of Array.isArray(meta.warnings) ? meta.warnings : []) if (!warnings.includes(w)) warnings.push(w);
    const dir = out?.intermediates_dir ?? meta.intermediates_dir;
    if (typeof dir === "string" && dir) dirs.push(dir.replace(/\/+$/, ""));
  }
  const lines = warnings.map((text) => ({ text, tone: "warning" }));
  if (dirs.length === 1) lines.push({ text: `Intermediate steps saved in ${dirs[0]}/ (step-NNN.png)`, tone: "info" });
  else if (dirs.length > 1) lines.push({ text: `Intermediate steps saved in ${dirs.length} folders (step-NNN.png): ${dirs.map((d) => `${d}/`).join(", ")}`, tone: "info" });
  return lines;
}

function whole(value, fallback) {
  return Number.isInteger(value) ? value : fallback;
}

function now() {
  return globalThis.performance?.now?.() ?? Date.now();
}
