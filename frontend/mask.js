// The inpainting mask as pixels. Pure functions over RGBA byte arrays
// (ImageData.data layout), so node --test checks them without a browser.
//
// The drawing pad keeps two canvases: the colour canvas, always opaque (the
// 2D canvas stores premultiplied alpha, so making its pixels transparent
// would lose the RGB under them), and an overlay whose alpha marks what the
// eraser took away, painted as a checkerboard for the person to see.
// The upload then sends the colour canvas as `image` and a black-and-white
// mask as `mask` (white = repaint), which the server turns into alpha 0.

/** Overlay alpha at or above this counts as erased (the server's mask threshold is the same 128). */
export const ERASED_ALPHA = 128;

const CHECKER_LIGHT = [204, 204, 204];
const CHECKER_DARK = [153, 153, 153];

/** How many pixels of an overlay (RGBA bytes) are erased. */
export function countErased(overlay) {
  let n = 0;
  for (let i = 3; i < overlay.length; i += 4) if (overlay[i] >= ERASED_ALPHA) n++;
  return n;
}

/**
 * The mask to upload: opaque RGBA, white where the overlay is erased, black
 * elsewhere. Returns {pixels, erased} (erased: the count of white pixels).
 */
export function maskFromOverlay(overlay) {
  const pixels = new Uint8ClampedArray(overlay.length);
  let erased = 0;
  for (let i = 0; i < overlay.length; i += 4) {
    const on = overlay[i + 3] >= ERASED_ALPHA;
    if (on) erased++;
    const v = on ? 255 : 0;
    pixels[i] = v;
    pixels[i + 1] = v;
    pixels[i + 2] = v;
    pixels[i + 3] = 255;
  }
  return { pixels, erased };
}

/**
 * What the server will store, for a thumbnail: the colour pixels with alpha 0
 * where the overlay is erased (the RGB kept in the array; a canvas that shows
 * it may drop it, which is fine for a preview).
 */
export function compositeErased(color, overlay) {
  if (color.length !== overlay.length) throw new Error("the colour and overlay pixels differ in size");
  const out = new Uint8ClampedArray(color);
  for (let i = 3; i < out.length; i += 4) out[i] = overlay[i] >= ERASED_ALPHA ? 0 : 255;
  return out;
}

/**
 * Split straight (not premultiplied) RGBA into what the pad holds: the colour
 * pixels made opaque with their RGB untouched, and which pixels are
 * transparent (alpha < 255 is "repaint", as on the server). Returns
 * {color, erased: Uint8Array of 0/1 per pixel, count}.
 */
export function splitAlpha(rgba) {
  const color = new Uint8ClampedArray(rgba);
  const erased = new Uint8Array(rgba.length / 4);
  let count = 0;
  for (let p = 0, i = 3; i < rgba.length; p++, i += 4) {
    if (rgba[i] < 255) {
      erased[p] = 1;
      count++;
    }
    color[i] = 255;
  }
  return { color, erased, count };
}

/** The checker size in image pixels: about 32 squares across, never below 2 px. */
export function checkerCell(width) {
  return Math.max(2, Math.round(width / 32));
}

/** The colour of the checkerboard at (x, y): [r, g, b]. */
export function checkerColor(x, y, cell) {
  return (Math.floor(x / cell) + Math.floor(y / cell)) % 2 === 0 ? CHECKER_LIGHT : CHECKER_DARK;
}

/**
 * Overlay pixels for a set of erased pixels (from splitAlpha): the
 * checkerboard, opaque, where erased; fully transparent elsewhere.
 */
export function checkerOverlay(erased, width, height, cell = checkerCell(width)) {
  if (erased.length !== width * height) throw new Error("erased does not match width × height");
  const out = new Uint8ClampedArray(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const p = y * width + x;
      if (!erased[p]) continue;
      const [r, g, b] = checkerColor(x, y, cell);
      const i = p * 4;
      out[i] = r;
      out[i + 1] = g;
      out[i + 2] = b;
      out[i + 3] = 255;
    }
  }
  return out;
}

/** The pattern tile (2×2 cells) as RGBA, for CanvasRenderingContext2D.createPattern. */
export function checkerTile(cell) {
  const size = cell * 2;
  const out = new Uint8ClampedArray(size * size * 4);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const [r, g, b] = checkerColor(x, y, cell);
      const i = (y * size + x) * 4;
      out[i] = r;
      out[i + 1] = g;
      out[i + 2] = b;
      out[i + 3] = 255;
    }
  }
  return { pixels: out, size };
}
