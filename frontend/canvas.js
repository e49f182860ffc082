// The drawing pad: freehand strokes with a brush size and palette colour, an
// eraser that marks pixels for repainting, fill, undo and clear. Pixels only;
// the surrounding buttons are wired in main.js.
//
// Two canvases: `canvas` holds the colours and stays opaque; `overlay` (laid
// exactly over it) holds what the eraser took away, drawn as a checkerboard.
// The 2D canvas stores premultiplied alpha, so erasing the colour canvas
// itself would lose the RGB under the erased area; the server wants it kept.

import { canvasBlob, decodeStraight, decoded, pixelsBlob } from "./image-files.js";
import { checkerOverlay, checkerCell, checkerTile, compositeErased, countErased, maskFromOverlay, splitAlpha } from "./mask.js";

export const PALETTE = [
  "#15171c", "#f4f1ea", "#7a7f89", "#d9473f", "#f08a24", "#f2c94c",
  "#4caf6a", "#2f8f83", "#3d8bd9", "#6b5bd6", "#c758a8", "#8a5a3c",
];

const BACKGROUND = "#f4f1ea"; // an opaque paper colour: transparency would mean "repaint here"
const UNDO_DEPTH = 30;

export class DrawingPad {
  /**
   * overlay: the erased-area canvas laid over `canvas` (optional: without it there is no eraser).
   * onChange({edited}): edited is true for what a person did (a stroke, fill, clear, undo) and
   * false when the page put pixels there (load, loadImage, reset).
   */
  constructor(canvas, { overlay = null, onChange = () => {} } = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d", { willReadFrequently: true });
    this.overlay = overlay ?? document.createElement("canvas");
    this.octx = this.overlay.getContext("2d", { willReadFrequently: true });
    this.onChange = onChange;
    this.color = PALETTE[0];
    this.size = 8;
    this.tool = "brush"; // "brush" | "eraser"
    this.undoStack = [];
    this.drawn = false; // anything on it besides the paper?
    this.erased = false; // any pixel marked for repainting?
    this.revision = 0; // bumped by every change, so an upload can tell whether the pad moved on meanwhile
    this.last = null;
    this.#matchOverlay();
    this.#paper();
    canvas.addEventListener("pointerdown", (e) => this.#down(e));
    canvas.addEventListener("pointermove", (e) => this.#move(e));
    canvas.addEventListener("pointerup", (e) => this.#up(e));
    canvas.addEventListener("pointercancel", (e) => this.#up(e));
  }

  get isBlank() {
    return !this.drawn;
  }

  /** True when some pixels are erased (so an upload carries a mask). */
  get hasErased() {
    return this.erased;
  }

  /** Change the pixel size. Only a blank pad follows the settings; a sketch keeps its size (fit scales it). */
  resizeIfBlank(width, height) {
    if (!this.drawn && (this.canvas.width !== width || this.canvas.height !== height)) {
      this.canvas.width = width;
      this.canvas.height = height;
      this.#matchOverlay();
      this.#paper();
    }
  }

  undo() {
    const snapshot = this.undoStack.pop();
    if (!snapshot) return;
    if (snapshot.width !== this.canvas.width || snapshot.height !== this.canvas.height) {
      this.canvas.width = snapshot.width;
      this.canvas.height = snapshot.height;
      this.#matchOverlay();
    }
    this.ctx.putImageData(snapshot.pixels, 0, 0);
    this.octx.putImageData(snapshot.overlay, 0, 0);
    this.drawn = snapshot.drawn;
    this.erased = snapshot.erased;
    this.#changed(true);
  }

  /** The Clear button: blank paper (no init image); undo brings the pixels back. */
  clear() {
    this.#blank(true);
  }

  /** Blank paper again because the page says so (the init image was removed); undo brings the pixels back. */
  reset() {
    this.#blank(false);
  }

  #blank(edited) {
    if (!this.drawn) return;
    this.#remember();
    this.#paper();
    this.#clearOverlay();
    this.drawn = false;
    this.#changed(edited);
  }

  /** Flood the whole pad with the current colour (a quick background); nothing stays erased. */
  fill() {
    this.#remember();
    this.ctx.fillStyle = this.color;
    this.ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    this.#clearOverlay();
    this.drawn = true;
    this.#changed(true);
  }

  get canUndo() {
    return this.undoStack.length > 0;
  }

  toBlob() {
    return canvasBlob(this.canvas, "The drawing could not be encoded.");
  }

  toDataURL() {
    return this.canvas.toDataURL("image/png");
  }

  /** The pad as the init thumbnail shows it: erased pixels transparent (a PNG data URL). */
  previewDataURL() {
    if (!this.erased) return this.toDataURL();
    const { width, height } = this.canvas;
    const overlay = this.octx.getImageData(0, 0, width, height).data;
    const color = this.ctx.getImageData(0, 0, width, height).data;
    const canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    canvas.getContext("2d").putImageData(new ImageData(compositeErased(color, overlay), width, height), 0, 0);
    return canvas.toDataURL("image/png");
  }

  /** The erased area as a PNG data URL (for keeping across reloads), or null when nothing is erased. */
  overlayDataURL() {
    return this.erased ? this.overlay.toDataURL("image/png") : null;
  }

  /**
   * What the next job uploads from the pad: {image, mask, preview}. image is the opaque
   * colour canvas; when something is erased, mask is white there and black
   * elsewhere, and preview shows the erased area transparent (for the
   * thumbnail). Without erasing, mask and preview are null.
   */
  async toUpload() {
    const image = await this.toBlob();
    if (!this.erased) return { image, mask: null, preview: null };
    const { width, height } = this.canvas;
    const overlay = this.octx.getImageData(0, 0, width, height).data;
    const { pixels, erased } = maskFromOverlay(overlay);
    if (erased === 0) return { image, mask: null, preview: null };
    const mask = await pixelsBlob(pixels, width, height);
    const color = this.ctx.getImageData(0, 0, width, height).data;
    const preview = await pixelsBlob(compositeErased(color, overlay), width, height);
    return { image, mask, preview };
  }

  /** Restore a saved sketch (a PNG data URL), and its erased area when there is one. */
  async load(dataUrl, overlayUrl = null) {
    const img = await decoded(dataUrl);
    this.canvas.width = img.naturalWidth;
    this.canvas.height = img.naturalHeight;
    this.#matchOverlay();
    this.ctx.drawImage(img, 0, 0);
    if (overlayUrl) {
      try {
        this.octx.drawImage(await decoded(overlayUrl), 0, 0);
      } catch {
        /* a broken overlay: keep the sketch, nothing erased */
      }
    }
    this.drawn = true;
    this.#recount();
    this.#changed(false);
  }

  /**
   * Put an image (a Blob, e.g. the init upload) on the pad to erase parts of it.
   * Its transparent pixels (alpha < 255) come in as erased, their RGB kept
   * where the browser can read it straight. Undo goes back to the old pad.
   */
  async loadImage(blob, { hasAlpha = false } = {}) {
    const { width, height, data } = await decodeStraight(blob, { hasAlpha });
    this.#remember();
    this.canvas.width = width;
    this.canvas.height = height;
    this.#matchOverlay();
    const { color, erased, count } = splitAlpha(data);
    this.ctx.putImageData(new ImageData(color, width, height), 0, 0);
    if (count > 0) this.octx.putImageData(new ImageData(checkerOverlay(erased, width, height), width, height), 0, 0);
    this.drawn = true;
    this.erased = count > 0;
    this.#changed(false);
  }

  #changed(edited) {
    this.revision += 1;
    this.onChange({ edited });
  }

  #paper() {
    this.ctx.fillStyle = BACKGROUND;
    this.ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
  }

  #matchOverlay() {
    if (this.overlay.width !== this.canvas.width || this.overlay.height !== this.canvas.height) {
      this.overlay.width = this.canvas.width;
      this.overlay.height = this.canvas.height;
    } else {
      this.octx.clearRect(0, 0, this.overlay.width, this.overlay.height);
    }
    this.erased = false;
    this.pattern = null; // the checker size follows the width
  }

  #clearOverlay() {
    this.octx.clearRect(0, 0, this.overlay.width, this.overlay.height);
    this.erased = false;
  }

  #recount() {
    const { width, height } = this.overlay;
    this.erased = countErased(this.octx.getImageData(0, 0, width, height).data) > 0;
  }

  #checker() {
    if (!this.pattern) {
      const { pixels, size } = checkerTile(checkerCell(this.canvas.width));
      const tile = document.createElement("canvas");
      tile.width = size;
      tile.height = size;
      tile.getContext("2d").putImageData(new ImageData(pixels, size, size), 0, 0);
      this.pattern = this.octx.createPattern(tile, "repeat");
    }
    return this.pattern;
  }

  #remember() {
    const { width, height } = this.canvas;
    this.undoStack.push({
      pixels: this.ctx.getImageData(0, 0, width, height),
      overlay: this.octx.getImageData(0, 0, width, height),
      width, height, drawn: this.drawn, erased: this.erased,
    });
    if (this.undoStack.length > UNDO_DEPTH) this.undoStack.shift();
  }

  #point(e) {
    const box = this.canvas.getBoundingClientRect();
    return {
      x: ((e.clientX - box.left) / box.width) * this.canvas.width,
      y: ((e.clientY - box.top) / box.height) * this.canvas.height,
    };
  }

  /** Brush size is in screen pixels, so it feels the same however large the pad is shown. */
  #lineWidth() {
    const box = this.canvas.getBoundingClientRect();
    return Math.max(1, (this.size * this.canvas.width) / Math.max(box.width, 1));
  }

  #down(e) {
    if (e.button !== 0) return;
    e.preventDefault();
    this.canvas.setPointerCapture?.(e.pointerId);
    this.#remember();
    this.last = this.#point(e);
    this.#stroke(this.last, this.last);
  }

  #move(e) {
    if (!this.last) return;
    const events = e.getCoalescedEvents?.() ?? [e];
    for (const ev of events.length ? events : [e]) {
      const p = this.#point(ev);
      this.#stroke(this.last, p);
      this.last = p;
    }
  }

  #up() {
    if (!this.last) return;
    this.last = null;
    this.drawn = true;
    if (this.tool === "eraser") this.erased = true;
    else if (this.erased) this.#recount(); // paint over an erased area makes it opaque again
    this.#changed(true);
  }

  #stroke(from, to) {
    const eraser = this.tool === "eraser";
    // The eraser paints the checkerboard on the overlay; the brush paints colour
    // and takes the overlay away under it (paint is opaque).
    const line = (ctx, style, op = "source-over") => {
      ctx.save();
      ctx.globalCompositeOperation = op;
      ctx.strokeStyle = style;
      ctx.lineWidth = this.#lineWidth();
      ctx.lineCap = "round";
      ctx.lineJoin = "round";
      ctx.beginPath();
      ctx.moveTo(from.x, from.y);
      ctx.lineTo(to.x, to.y);
      ctx.stroke();
      ctx.restore();
    };
    if (eraser) {
      line(this.octx, this.#checker());
      return;
    }
    line(this.ctx, this.color);
    if (this.erased) line(this.octx, "#000", "destination-out");
  }
}
