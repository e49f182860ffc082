// The drawing pad: freehand strokes with a brush size and palette colour,
// fill, undo and clear. Pixels only; the surrounding buttons are wired in main.js.

export const PALETTE = [
  "#15171c", "#f4f1ea", "#7a7f89", "#d9473f", "#f08a24", "#f2c94c",
  "#4caf6a", "#2f8f83", "#3d8bd9", "#6b5bd6", "#c758a8", "#8a5a3c",
];

const BACKGROUND = "#f4f1ea"; // an opaque paper colour: transparency would mean "repaint here"
const UNDO_DEPTH = 30;

export class DrawingPad {
  constructor(canvas, { onChange = () => {} } = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d", { willReadFrequently: true });
    this.onChange = onChange;
    this.color = PALETTE[0];
    this.size = 8;
    this.undoStack = [];
    this.drawn = false; // anything on it besides the paper?
    this.last = null;
    this.#paper();
    canvas.addEventListener("pointerdown", (e) => this.#down(e));
    canvas.addEventListener("pointermove", (e) => this.#move(e));
    canvas.addEventListener("pointerup", (e) => this.#up(e));
    canvas.addEventListener("pointercancel", (e) => this.#up(e));
  }

  get isBlank() {
    return !this.drawn;
  }

  /** Change the pixel size. Only a blank pad follows the settings; a sketch keeps its size (fit scales it). */
  resizeIfBlank(width, height) {
    if (!this.drawn && (this.canvas.width !== width || this.canvas.height !== height)) {
      this.canvas.width = width;
      this.canvas.height = height;
      this.#paper();
    }
  }

  undo() {
    const snapshot = this.undoStack.pop();
    if (!snapshot) return;
    if (snapshot.width !== this.canvas.width || snapshot.height !== this.canvas.height) {
      this.canvas.width = snapshot.width;
      this.canvas.height = snapshot.height;
    }
    this.ctx.putImageData(snapshot.pixels, 0, 0);
    this.drawn = snapshot.drawn;
    this.onChange();
  }

  clear() {
    if (!this.drawn) return;
    this.#remember();
    this.#paper();
    this.drawn = false;
    this.onChange();
  }

  /** Flood the whole pad with the current colour (a quick background). */
  fill() {
    this.#remember();
    this.ctx.fillStyle = this.color;
    this.ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    this.drawn = true;
    this.onChange();
  }

  get canUndo() {
    return this.undoStack.length > 0;
  }

  toBlob() {
    return new Promise((resolve, reject) =>
      this.canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("The drawing could not be encoded."))), "image/png"),
    );
  }

  toDataURL() {
    return this.canvas.toDataURL("image/png");
  }

  /** Restore a saved sketch (a PNG data URL). */
  async load(dataUrl) {
    const img = new Image();
    img.src = dataUrl;
    await img.decode();
    this.canvas.width = img.naturalWidth;
    this.canvas.height = img.naturalHeight;
    this.ctx.drawImage(img, 0, 0);
    this.drawn = true;
    this.onChange();
  }

  #paper() {
    this.ctx.fillStyle = BACKGROUND;
    this.ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
  }

  #remember() {
    const { width, height } = this.canvas;
    this.undoStack.push({ pixels: this.ctx.getImageData(0, 0, width, height), width, height, drawn: this.drawn });
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
    this.onChange();
  }

  #stroke(from, to) {
    const ctx = this.ctx;
    ctx.strokeStyle = this.color;
    ctx.lineWidth = this.#lineWidth();
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(from.x, from.y);
    ctx.lineTo(to.x, to.y);
    ctx.stroke();
  }
}

/** A small PNG data URL of an image (File/Blob), for the init thumbnail that survives reloads. */
export async function thumbnailDataUrl(blob, max = 192) {
  const bitmap = await createImageBitmap(blob);
  const scale = Math.min(1, max / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(bitmap.width * scale));
  canvas.height = Math.max(1, Math.round(bitmap.height * scale));
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close?.();
  return canvas.toDataURL("image/png");
}

/** An image Blob's pixel size: {width, height}. Rejects when the browser cannot decode it. */
export async function imageSize(blob) {
  const bitmap = await createImageBitmap(blob);
  const size = { width: bitmap.width, height: bitmap.height };
  bitmap.close?.();
  return size;
}
