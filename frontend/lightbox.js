// The lightbox: one image as large as the window allows, drawn smooth, and a
// before/after compare against the init image: the init shows left of a
// divider, the image right of it. The divider is a slider (pointer: drag or
// click anywhere on the picture; keys: arrows, Page Up/Down, Home/End).
// What to compare with is the controller's decision (artist-tools.js).

import { Modal } from "./modal.js";

export const DIVIDER_START = 50; // percent of the width from the left
const STEP = 5;
const SMALL_STEP = 1;
const PAGE_STEP = 25;

/** The divider's new place (0..100) after a key, or null when the key does not move it. */
export function dividerAfterKey(position, key, { shift = false } = {}) {
  const step = shift ? SMALL_STEP : STEP;
  const moves = {
    ArrowLeft: position - step, ArrowDown: position - step, ArrowRight: position + step, ArrowUp: position + step,
    PageDown: position - PAGE_STEP, PageUp: position + PAGE_STEP, Home: 0, End: 100,
  };
  return key in moves ? clampPercent(moves[key]) : null;
}

/** The divider's place (0..100) under a pointer at clientX over a box {left, width}. */
export function dividerAtPointer(clientX, { left, width }) {
  return width > 0 ? clampPercent(((clientX - left) / width) * 100) : DIVIDER_START;
}

function clampPercent(n) {
  return Math.round(Math.min(100, Math.max(0, n)) * 10) / 10;
}

export class Lightbox {
  constructor(doc) {
    const $ = (id) => doc.getElementById(id);
    this.dialog = $("lightbox");
    this.frame = $("lightbox-frame");
    this.img = $("lightbox-img");
    this.caption = $("lightbox-caption");
    this.note = $("lightbox-note");
    this.compare = $("compare");
    this.initImg = $("compare-init");
    this.afterTag = $("compare-tag-after");
    this.divider = $("compare-divider");
    this.modal = new Modal(this.dialog);
    this.token = 0;
    this.position = DIVIDER_START;

    $("lightbox-close").addEventListener("click", () => this.close());
    this.img.addEventListener("load", () => {
      const { naturalWidth: w, naturalHeight: h } = this.img;
      if (w > 0 && h > 0) this.frame.style.setProperty("--aspect", String(w / h));
    });
    this.initImg.addEventListener("error", () => {
      if (this.compare.hidden || !this.initImg.getAttribute("src")) return;
      this.showNoCompare(this.token, "The init image this image was made from is no longer on the server, so there is nothing to compare.");
    });
    this.divider.addEventListener("keydown", (e) => {
      const next = dividerAfterKey(this.position, e.key, { shift: e.shiftKey });
      if (next == null) return;
      e.preventDefault();
      this.#place(next);
    });
    // Dragging: a press anywhere on the picture moves the divider there and keeps following.
    this.compare.addEventListener("pointerdown", (e) => {
      if (e.button !== 0) return;
      e.preventDefault();
      this.compare.setPointerCapture(e.pointerId);
      this.divider.focus();
      this.#place(dividerAtPointer(e.clientX, this.compare.getBoundingClientRect()));
    });
    this.compare.addEventListener("pointermove", (e) => {
      if (!this.compare.hasPointerCapture(e.pointerId)) return;
      this.#place(dividerAtPointer(e.clientX, this.compare.getBoundingClientRect()));
    });
  }

  get isOpen() {
    return this.modal.isOpen;
  }

  /**
   * Show `url` large with its caption; `after` names it on the compare ("output", "step 4
   * preview"). Returns a token: the compare is filled in later with showCompare(token, …) or
   * showNoCompare(token, …), and an answer for an older opening is ignored.
   */
  open({ url, caption = "", after = "output" }, opener = null) {
    this.token += 1;
    this.img.src = url;
    this.img.alt = caption || "The image, enlarged";
    this.caption.textContent = caption;
    this.afterTag.textContent = after;
    this.compare.hidden = true;
    this.initImg.removeAttribute("src");
    this.#say("Looking for the init image…");
    this.modal.open(opener);
    return this.token;
  }

  /** The before/after compare against the init image at initUrl. */
  showCompare(token, initUrl) {
    if (token !== this.token || !this.isOpen) return;
    this.initImg.src = initUrl;
    this.compare.hidden = false;
    this.#say("");
    this.#place(DIVIDER_START);
    this.divider.focus();
  }

  /** No compare: `why` says so (txt2img, or the init is gone). */
  showNoCompare(token, why) {
    if (token !== this.token || !this.isOpen) return;
    this.compare.hidden = true;
    this.initImg.removeAttribute("src");
    this.#say(why);
  }

  close() {
    this.modal.close();
  }

  #place(position) {
    this.position = position;
    this.compare.style.setProperty("--divider", `${position}%`);
    this.divider.setAttribute("aria-valuenow", String(position));
    this.divider.setAttribute("aria-valuetext", `${Math.round(position)}% init, ${Math.round(100 - position)}% ${this.afterTag.textContent}`);
  }

  #say(text) {
    this.note.textContent = text;
    this.note.hidden = !text;
  }
}
