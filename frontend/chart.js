// The noise-schedule chart: sigma at each scheduled step, the skipped region
// shaded, and a marker where the init image enters. Pure: returns SVG markup
// (numbers and fixed class names only) for the view to place.
//
// The SVG stretches to its box (preserveAspectRatio="none") and step i is
// centred at (i + 0.5) / steps_total of the width, so it lines up with the
// step strip's equal-width cells underneath.

const W = 1000;
const H = 100;
const TOP = 22; // headroom: the sigma-max label sits above the curve's start

/**
 * {svg, maxSigma, entrySigma, entryIndex} for a plan; svg is "" for an empty plan.
 * txt2img starts from pure noise, so it has no entry marker.
 */
export function scheduleChart(plan, { txt2img = false } = {}) {
  const total = Number.isInteger(plan?.steps_total) ? plan.steps_total : 0;
  if (total <= 0) return { svg: "", maxSigma: null, entrySigma: null, entryIndex: -1 };
  const skipped = Math.min(Math.max(plan.skipped | 0, 0), total);
  const values = levels(plan, total);
  const max = Math.max(...values, 1e-9);
  const x = (i) => ((i + 0.5) / total) * W;
  const y = (v) => H - (v / max) * (H - TOP);

  const points = values.map((v, i) => `${fmt(x(i))},${fmt(y(v))}`);
  // Extend the curve flat to both edges so the area fills the whole width.
  const line = `M0,${fmt(y(values[0]))} L${points.join(" L")} L${W},${fmt(y(values[total - 1]))}`;
  const area = `${line} L${W},${H} L0,${H} Z`;
  const parts = [
    `<svg class="chart" viewBox="0 0 ${W} ${H}" preserveAspectRatio="none" aria-hidden="true" focusable="false">`,
  ];
  if (skipped > 0) {
    parts.push(`<rect class="chart-skipped" x="0" y="0" width="${fmt((skipped / total) * W)}" height="${H}"/>`);
  }
  parts.push(`<path class="chart-area" d="${area}"/>`);
  parts.push(`<path class="chart-line" d="${line}" vector-effect="non-scaling-stroke"/>`);
  const entryIndex = !txt2img && skipped < total ? skipped : -1;
  if (entryIndex >= 0) {
    const ex = fmt(x(entryIndex));
    parts.push(`<line class="chart-entry" x1="${ex}" x2="${ex}" y1="0" y2="${H}" vector-effect="non-scaling-stroke"/>`);
    const ey = fmt(y(values[entryIndex]));
    parts.push(`<line class="chart-entry-level" x1="0" x2="${ex}" y1="${ey}" y2="${ey}" vector-effect="non-scaling-stroke"/>`);
  }
  parts.push("</svg>");
  const sigmas = Array.isArray(plan.sigmas) && plan.sigmas.length >= total;
  return {
    svg: parts.join(""),
    maxSigma: sigmas ? max : null,
    entrySigma: sigmas && entryIndex >= 0 ? values[entryIndex] : null,
    entryIndex,
  };
}

/** sigma per step; without sigmas, timesteps stand in (same shape, different units). */
function levels(plan, total) {
  const source = Array.isArray(plan.sigmas) && plan.sigmas.length >= total ? plan.sigmas : plan.timesteps;
  const out = [];
  for (let i = 0; i < total; i++) {
    const v = Number(source?.[i]);
    out.push(Number.isFinite(v) && v > 0 ? v : 0);
  }
  return out;
}

function fmt(n) {
  return Number(n.toFixed(2)).toString();
}
