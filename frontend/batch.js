// A job with several outputs (a batch, iterations, variations, a strength sweep) as
// data: one entry per output, filled from job_plan / job_output / job_done,
// and the labels the outputs row shows. Pure, so node --test can check it.
//
// Entries: {item, state: "pending"|"running"|"done", strength, seed, name, url, metadata}.

export const ENTRY = Object.freeze({ PENDING: "pending", RUNNING: "running", DONE: "done" });

/**
 * A fresh batch for a submitted job. kind: "sweep" | "batch" | "variations" |
 * "iterations" | "single"; strengths: the sweep's list (labels its pending entries).
 */
export function newBatch({ items = 1, kind = "single", strengths = null } = {}) {
  const n = Math.max(1, wholeOr(items, 1));
  const entries = [];
  for (let i = 0; i < n; i++) {
    entries.push({ item: i, state: ENTRY.PENDING, strength: strengths?.[i] ?? null, seed: null, name: null, url: null, metadata: null });
  }
  return { kind, items: n, current: -1, entries, contactSheet: null };
}

/** What a submitted payload will produce. */
export function batchKind(payload) {
  if (Array.isArray(payload?.strengths) && payload.strengths.length) return "sweep";
  if ((payload?.batch_size ?? 1) > 1) return "batch";
  if ((payload?.variation_amount ?? 0) > 0) return "variations";
  if ((payload?.iterations ?? 1) > 1) return "iterations";
  return "single";
}

/** How many outputs a payload asks for. */
export function batchSize(payload) {
  if (Array.isArray(payload?.strengths) && payload.strengths.length) return payload.strengths.length;
  if ((payload?.batch_size ?? 1) > 1) return wholeOr(payload.batch_size, 1);
  return Math.max(1, wholeOr(payload?.iterations, 1));
}

/** A job_plan for output `item` arrived: that entry runs (and the server's count replaces ours). */
export function batchPlan(batch, plan) {
  const item = wholeOr(plan?.item, 0);
  let next = batch;
  const items = wholeOr(plan?.items, batch.items);
  if (items !== batch.items && items >= 1) next = resize(batch, Math.max(items, item + 1)); // the server's count wins
  const entries = next.entries.map((e) => {
    if (e.item === item) {
      return {
        ...e,
        state: e.state === ENTRY.DONE ? e.state : ENTRY.RUNNING,
        strength: numberOr(plan.strength, e.strength),
        seed: wholeOr(plan.seed, e.seed),
        plan: { steps_total: plan.steps_total, taken: plan.taken, skipped: plan.skipped },
      };
    }
    return e;
  });
  return { ...next, current: item, entries };
}

/** A job_output ({item, name, url, seed, metadata}) arrived: that entry is done. */
export function batchOutput(batch, output) {
  const item = wholeOr(output?.item, batch.current >= 0 ? batch.current : 0);
  let next = batch;
  const items = wholeOr(output?.items, batch.items);
  if (items !== batch.items || item >= batch.items) next = resize(batch, Math.max(items, item + 1));
  const entries = next.entries.map((e) => (e.item === item ? doneEntry(e, output) : e));
  return { ...next, entries };
}

/**
 * job_done: its `outputs` list is the whole truth (all items, in order); a
 * job_done without one (a single-output job) fills the last entry.
 */
export function batchDone(batch, done) {
  const outputs = Array.isArray(done?.outputs) && done.outputs.length ? done.outputs : [done];
  let next = outputs.length > batch.items ? resize(batch, outputs.length) : batch;
  const start = outputs.length === next.items ? 0 : next.items - outputs.length;
  const entries = next.entries.map((e) => {
    const out = outputs[e.item - start];
    return out && out.url ? doneEntry(e, { ...out, item: e.item }) : e;
  });
  const sheet = done?.contact_sheet;
  return { ...next, current: -1, entries, contactSheet: sheet?.url ? { name: sheet.name ?? "", url: sheet.url } : null };
}

/** True when the batch has more than one output (the row is worth showing). */
export function isMulti(batch) {
  return (batch?.items ?? 1) > 1;
}

/** Counts for the progress line. */
export function batchCounts(batch) {
  const done = batch.entries.filter((e) => e.state === ENTRY.DONE).length;
  return { done, items: batch.items, current: batch.current };
}

/**
 * The label under one output of the row, in two parts: {what, counts}, e.g.
 *   sweep:      {what: "strength 0.4",           counts: "4 taken / 6 skipped"}
 *   variations: {what: "#2 · +1234 @ 0.3",       counts: "7 taken / 3 skipped"}
 *   iterations: {what: "#2 · seed 42",           counts: "7 taken / 3 skipped"}
 * A variation shows only the seed it mixed in (the base seed is the row's, in
 * its header). counts says "running…" or "waiting" until the output is saved.
 */
export function entryParts(entry, kind) {
  const meta = entry.metadata ?? {};
  const strength = numberOr(meta.strength, entry.strength);
  const seed = wholeOr(meta.seed, entry.seed);
  let what;
  if (kind === "sweep") {
    what = strength != null ? `strength ${formatStrength(strength)}` : `output ${entry.item + 1}`;
  } else {
    const variation = lastVariation(meta);
    const which = kind === "single" ? [] : [`#${entry.item + 1}`];
    if (variation) which.push(`+${variation[0]} @ ${formatStrength(variation[1])}`);
    else if (seed != null) which.push(`seed ${seed}`);
    what = which.join(" · ") || `output ${entry.item + 1}`;
  }
  const counts = entry.state === ENTRY.DONE
    ? takenSkipped(meta, entry.plan) ?? "saved"
    : entry.state === ENTRY.RUNNING ? "running…" : "waiting";
  return { what, counts };
}

/** The row label as one line: "strength 0.4 · 4 taken / 6 skipped". */
export function entryLabel(entry, kind) {
  const { what, counts } = entryParts(entry, kind);
  return `${what} · ${counts}`;
}

/** The row's header: what kind of batch, how far, and the seed all its outputs share. */
export function batchHeader(batch) {
  const what = { sweep: "strength sweep", batch: "batch", variations: "variations" }[batch.kind] ?? "iterations";
  const done = batch.entries.filter((e) => e.state === ENTRY.DONE).length;
  const seeds = new Set(batch.entries.map((e) => wholeOr(e.metadata?.seed, e.seed)).filter((s) => s != null));
  const seed = seeds.size === 1 && batch.kind !== "iterations" ? ` of seed ${[...seeds][0]}` : "";
  return `${what}${seed} · ${done} of ${batch.items} done`;
}

/** The caption when an output of the row is shown large: the label, with the full seed. */
export function entryCaption(entry, batch) {
  const { what, counts } = entryParts(entry, batch.kind);
  const meta = entry.metadata ?? {};
  const seed = wholeOr(meta.seed, entry.seed);
  const variation = lastVariation(meta);
  const parts = [`Output ${entry.item + 1} of ${batch.items}`];
  if (batch.kind === "sweep") parts.push(what);
  if (variation && seed != null) parts.push(`seed ${seed} + ${variation[0]} @ ${variation[1].toFixed(2)}`);
  else if (seed != null) parts.push(`seed ${seed}`);
  parts.push(counts);
  return parts.join(" · ");
}

/** "0.4", "0.25": strengths as people type them. */
export function formatStrength(s) {
  return String(Math.round(s * 100) / 100);
}

/** The variation an output added last: [seed, weight] from metadata, or null. */
export function lastVariation(meta) {
  const list = meta?.with_variations;
  if (Array.isArray(list) && list.length) {
    const last = list[list.length - 1];
    if (Array.isArray(last) && last.length === 2 && Number.isFinite(last[0]) && Number.isFinite(last[1])) return last;
  }
  if (Number.isInteger(meta?.variation_seed) && meta?.variation_amount > 0) return [meta.variation_seed, meta.variation_amount];
  return null;
}

function takenSkipped(meta, plan) {
  const taken = wholeOr(meta.taken, wholeOr(plan?.taken, null));
  const skipped = wholeOr(meta.skipped, wholeOr(plan?.skipped, null));
  if (taken == null || skipped == null) return null;
  return `${taken} taken / ${skipped} skipped`;
}

function doneEntry(entry, output) {
  const meta = output.metadata ?? entry.metadata ?? null;
  return {
    ...entry,
    state: ENTRY.DONE,
    name: output.name ?? entry.name,
    url: output.url ?? entry.url,
    seed: wholeOr(output.seed, entry.seed),
    strength: numberOr(meta?.strength, entry.strength),
    metadata: meta,
  };
}

function resize(batch, items) {
  const entries = batch.entries.slice(0, items);
  for (let i = entries.length; i < items; i++) {
    entries.push({ item: i, state: ENTRY.PENDING, strength: null, seed: null, name: null, url: null, metadata: null });
  }
  return { ...batch, items, entries };
}

function wholeOr(value, fallback) {
  return Number.isInteger(value) ? value : fallback;
}

function numberOr(value, fallback) {
  return typeof value === "number" && Number.isFinite(value) ? value : fallback;
}
