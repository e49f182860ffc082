// What size SD will work at, given the init image and the fit choice. Pure.
// Mirrors server/engine/fit.py: with fit on, the init shrinks (never grows) to
// fit inside width×height keeping its aspect ratio; either way each side is then
// rounded down to a multiple of 8 (the server trims the right/bottom edge).
// Without an init image (txt2img) the size is simply width×height.

export const MAX_SIDE = 2048;

export function roundDown8(n) {
  return Math.max(8, Math.floor(n / 8) * 8);
}

/** w×h shrunk (never grown) to fit inside boxW×boxH keeping its aspect, sides multiples of 8. */
export function fitInside(w, h, boxW, boxH) {
  const scale = Math.min(1, boxW / w, boxH / h);
  const sw = scale < 1 ? Math.max(1, Math.round(w * scale)) : w;
  const sh = scale < 1 ? Math.max(1, Math.round(h * scale)) : h;
  return { width: roundDown8(sw), height: roundDown8(sh) };
}

/** The working size for a job: {width, height}. `init` is {width, height} or null. */
export function workingSize(init, { width, height, fit }) {
  if (!init) return { width, height };
  if (fit) return fitInside(init.width, init.height, width, height);
  return { width: roundDown8(init.width), height: roundDown8(init.height) };
}

/**
 * Sentences for the init panel: what happens to the image's size, and any
 * warnings (below the model's native size, oversize). `inpaint` is true when
 * the init has transparency: its transparent area is repainted, the rest kept.
 * Returns {line, warnings: [..], inpaint, size}.
 */
export function describeInit(init, { width, height, fit }, nativeSize) {
  if (!init) return { line: `No init image: text-to-image at ${width}×${height}.`, warnings: [], inpaint: false };
  if (!(init.width > 0 && init.height > 0)) {
    // Restored from a gallery entry whose metadata has no size: the server still has the pixels.
    return {
      line: `Init image ${String(init.id).slice(0, 8)}…, fit ${fit ? "on" : "off"} (size not known here)`,
      warnings: [],
      inpaint: Boolean(init.has_alpha),
    };
  }
  const out = workingSize(init, { width, height, fit });
  const own = `${init.width}×${init.height}`;
  const shrinks = init.width > width || init.height > height;
  const trimmed = out.width !== init.width || out.height !== init.height;
  const line = fit && shrinks
    ? `${own} → fit inside ${width}×${height} → ${out.width}×${out.height}`
    : !trimmed
      ? `${own} → used as is${fit ? ` (fits inside ${width}×${height})` : ", fit off"}`
      : `${own} → own size, rounded down to multiples of 8 → ${out.width}×${out.height}`;
  const warnings = [];
  if (nativeSize && (out.width < nativeSize || out.height < nativeSize)) {
    warnings.push(
      `${out.width}×${out.height} is smaller than the model's native ${nativeSize}×${nativeSize}: ` +
        "results are usually blurry or broken below it.",
    );
  }
  if (out.width > MAX_SIDE || out.height > MAX_SIDE) {
    warnings.push(`Sides above ${MAX_SIDE} px are not supported: turn on fit to shrink it.`);
  }
  return { line, warnings, inpaint: Boolean(init.has_alpha), size: out };
}
