// The step strip as data: one cell per scheduled step, derived from a plan.
// Pure functions over plain objects (no DOM), so node --test can check them.
//
// A plan is what GET /api/plan or the job_plan event gives:
//   {steps_total, skipped, taken, timesteps: [...], sigmas?: [...]}
// Cells 0..skipped-1 are the steps img2img jumps over; job_step index i fills
// cell skipped + i. The init frame (job_step kind "init", index -1: the init
// image noised to the entry step, what SD starts from) has a place of its own,
// `initFrame`, shown between the skipped steps and the first taken one.
// txt2img starts from pure noise and strength 0 takes no step, so neither has one.

import { formatSigma } from "./chart.js";

export const CELL = Object.freeze({
  SKIPPED: "skipped",
  PENDING: "pending",
  DONE: "done",
});

/** A fresh strip for a plan: skipped cells first, the rest pending. */
export function stripFromPlan(plan, { txt2img = false } = {}) {
  const total = wholeOr(plan?.steps_total, 0);
  const skipped = Math.min(wholeOr(plan?.skipped, 0), total);
  const timesteps = Array.isArray(plan?.timesteps) ? plan.timesteps : [];
  const sigmas = Array.isArray(plan?.sigmas) ? plan.sigmas : [];
  const cells = [];
  for (let i = 0; i < total; i++) {
    const isSkipped = i < skipped;
    cells.push({
      index: i,
      state: isSkipped ? CELL.SKIPPED : CELL.PENDING,
      // 1-based position among the taken steps ("step 3 of 7"); null when skipped.
      takenStep: isSkipped ? null : i - skipped + 1,
      timestep: timesteps[i] ?? null,
      sigma: sigmas[i] ?? null,
      frame: null, // the strip's picture: the job_step `image` (x_t, the noisy latent)
      kind: null, // what `frame` is: the job_step's kind
      large: null, // the viewer's picture when the step carried one (x0_image, the predicted result)
    });
  }
  const taken = total - skipped;
  return { stepsTotal: total, skipped, taken, hasInit: !txt2img && taken > 0, initFrame: null, cells };
}

/** Which cell a job_step frame of a step belongs to, or -1 (the init frame, or past the plan). */
export function cellIndexForStep(strip, step) {
  if (!strip || !step || step.kind === "init") return -1;
  const i = wholeOr(step.index, -1);
  if (i < 0) return -1;
  const index = strip.skipped + i;
  return index < strip.stepsTotal ? index : -1;
}

/**
 * A new strip with one frame placed. `frame` is whatever the view needs to show
 * it (an object URL, say); `large` the step's x0 picture for the viewer, or null.
 * Returns the same strip when the frame has no place in it.
 */
export function placeFrame(strip, step, frame, large = null) {
  if (step?.kind === "init") return strip?.hasInit ? { ...strip, initFrame: frame } : strip;
  const index = cellIndexForStep(strip, step);
  if (index < 0) return strip;
  const cells = strip.cells.slice();
  cells[index] = { ...cells[index], frame, kind: step.kind ?? null, large, state: CELL.DONE };
  return { ...strip, cells };
}

/**
 * The viewer's caption for the init frame: what it is and how noisy,
 * "What SD sees: the init image noised to σ 3.25 (t 699), where step 1 of 7 starts".
 */
export function initCaption(strip) {
  const entry = strip?.cells?.[strip.skipped];
  const level = [
    entry?.sigma != null ? `σ ${formatSigma(entry.sigma)}` : null,
    entry?.timestep != null ? `t ${Math.round(entry.timestep)}` : null,
  ].filter(Boolean);
  const noised = level.length ? `noised to ${level[0]}${level[1] ? ` (${level[1]})` : ""}` : "noised";
  return `What SD sees: the init image ${noised}, where step 1 of ${strip?.taken ?? 0} starts`;
}

const KIND_NAMES = { x_t: "noisy latent xt", x0: "predicted result x0" };

/**
 * The viewer's caption for a step cell shown large, saying which picture is
 * which when the strip and the viewer show different ones:
 * "Step 3 of 7 · large: predicted result x0 · strip: noisy latent xt".
 */
export function stepCaption(cell, strip) {
  const where = `Step ${cell.takenStep} of ${strip.taken}`;
  const small = KIND_NAMES[cell.kind] ?? "preview";
  const what = cell.large ? `large: ${KIND_NAMES.x0} · strip: ${small}` : small;
  const t = cell.timestep != null ? ` · t ${Math.round(cell.timestep)}` : "";
  return `${where} · ${what}${t}`;
}

/** Counts for summaries and progress: how many taken cells hold a step frame. */
export function stripProgress(strip) {
  let done = 0;
  for (const cell of strip?.cells ?? []) if (cell.state === CELL.DONE) done++;
  return { done, taken: strip?.taken ?? 0, skipped: strip?.skipped ?? 0, stepsTotal: strip?.stepsTotal ?? 0 };
}

/**
 * The one-line plan summary the page shows, e.g. "10 steps · 7 taken / 3 skipped",
 * or "inpaint · 10 steps · 7 taken / 3 skipped" when the init has transparency.
 * When the server raised the total to take a minimum of steps, it says so:
 * "34 steps · 10 taken / 24 skipped · raised from 20 to take at least 10" (the total
 * the server chose leads; the requested one follows).
 */
export function planSummary(plan, { txt2img = false, inpaint = false } = {}) {
  const total = wholeOr(plan?.steps_total, 0);
  const skipped = wholeOr(plan?.skipped, 0);
  const taken = wholeOr(plan?.taken, total - skipped);
  if (txt2img) return `${total} steps · all taken (txt2img)`;
  const mode = inpaint ? "inpaint · " : "";
  if (taken === 0) return `${mode}${total} steps · 0 taken / ${skipped} skipped (init returned unchanged)`;
  const summary = `${mode}${total} steps · ${taken} taken / ${skipped} skipped`;
  const requested = wholeOr(plan?.steps_requested, null);
  const minimum = wholeOr(plan?.min_taken_steps, null);
  if (plan?.raised_for_min_taken !== true || requested == null || minimum == null) return summary;
  return `${summary} · raised from ${requested} to take at least ${minimum}`;
}

/**
 * The strip header's badge for the followed job: its mode, and for several
 * outputs which one the strip shows. A sweep's outputs each have their own
 * strength, so its badge also gives that output's strength and counts: the
 * header's plan summary is the next run's, and would otherwise contradict the
 * strip below it. plan: a job_plan.
 */
export function jobModeText(plan, { sweep = false } = {}) {
  if (!plan) return "";
  const parts = [plan.mode || "img2img"];
  const items = wholeOr(plan.items, 1);
  if (items > 1) parts.push(`output ${wholeOr(plan.item, 0) + 1} of ${items}`);
  if (sweep && typeof plan.strength === "number") {
    parts.push(`strength ${Math.round(plan.strength * 100) / 100}`);
    const skipped = wholeOr(plan.skipped, null);
    const taken = wholeOr(plan.taken, null);
    if (taken != null && skipped != null) parts.push(`${taken} taken / ${skipped} skipped`);
  }
  return parts.join(" · ");
}

function wholeOr(value, fallback) {
  return Number.isInteger(value) ? value : fallback;
}
