// The step strip as data: one cell per scheduled step, derived from a plan.
// Pure functions over plain objects (no DOM), so node --test can check them.
//
// A plan is what GET /api/plan or the job_plan event gives:
//   {steps_total, skipped, taken, timesteps: [...], sigmas?: [...]}
// Cells 0..skipped-1 are the steps img2img jumps over. The first taken cell
// (index `skipped`) is where the init image enters: it first shows the "init"
// frame (job_step kind "init", index -1), then step 0's frame, keeping the init
// frame alongside. job_step index i fills cell skipped + i.

export const CELL = Object.freeze({
  SKIPPED: "skipped",
  PENDING: "pending",
  INIT: "init",
  DONE: "done",
});

/** A fresh strip for a plan: skipped cells first, the rest pending. */
export function stripFromPlan(plan) {
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
      frame: null,
      initFrame: null,
    });
  }
  return { stepsTotal: total, skipped, taken: total - skipped, cells };
}

/**
 * Which cell a job_step frame belongs to, or -1 when it has none
 * (e.g. strength 0 takes no steps, so the init frame has no taken cell).
 */
export function cellIndexForStep(strip, step) {
  if (!strip || !step) return -1;
  const index = step.kind === "init" ? strip.skipped : strip.skipped + wholeOr(step.index, -1);
  if (step.kind !== "init" && !(wholeOr(step.index, -1) >= 0)) return -1;
  return index >= 0 && index < strip.stepsTotal ? index : -1;
}

/**
 * A new strip with one frame placed. `frame` is whatever the view needs to
 * show it (an object URL, say). Returns the same strip when the step maps to no cell.
 */
export function placeFrame(strip, step, frame) {
  const index = cellIndexForStep(strip, step);
  if (index < 0) return strip;
  const cells = strip.cells.slice();
  const cell = { ...cells[index] };
  if (step.kind === "init") {
    cell.initFrame = frame;
    // A late init frame must not demote a cell that already has its step.
    if (cell.state !== CELL.DONE) cell.state = CELL.INIT;
  } else {
    cell.frame = frame;
    cell.state = CELL.DONE;
  }
  cells[index] = cell;
  return { ...strip, cells };
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
