// The noise schedule, drawn as one bar above each cell of the step strip:
// sigma at that step as a fraction of the schedule's largest. Drawn per cell,
// the bars stay over the steps they describe however the strip wraps.
// Pure: numbers for the view to place.

/**
 * {levels, maxSigma, entrySigma, entryIndex} for a plan. levels[i] (0..1) is
 * step i's noise level; without sigmas, timesteps stand in (same shape, other
 * units), and maxSigma / entrySigma are null. entryIndex is the first taken
 * step, where the init image enters (-1 for txt2img, which starts from noise,
 * and when nothing is taken).
 */
export function noiseLevels(plan, { txt2img = false } = {}) {
  const total = Number.isInteger(plan?.steps_total) && plan.steps_total > 0 ? plan.steps_total : 0;
  if (!total) return { levels: [], maxSigma: null, entrySigma: null, entryIndex: -1 };
  const skipped = Math.min(Math.max(plan.skipped | 0, 0), total);
  const hasSigmas = Array.isArray(plan.sigmas) && plan.sigmas.length >= total;
  const source = hasSigmas ? plan.sigmas : plan.timesteps;
  const values = [];
  for (let i = 0; i < total; i++) {
    const v = Number(source?.[i]);
    values.push(Number.isFinite(v) && v > 0 ? v : 0);
  }
  const max = Math.max(...values);
  const entryIndex = !txt2img && skipped < total ? skipped : -1;
  return {
    levels: values.map((v) => (max > 0 ? v / max : 0)),
    maxSigma: hasSigmas && max > 0 ? max : null,
    entrySigma: hasSigmas && entryIndex >= 0 ? values[entryIndex] : null,
    entryIndex,
  };
}

export function formatSigma(s) {
  return s >= 10 ? s.toFixed(1) : s >= 1 ? s.toFixed(2) : s.toFixed(3);
}
