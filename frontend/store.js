// Page state that survives reloads and reconnects: settings, the chosen init
// image, and the sketch on the drawing pad. localStorage, one key per thing,
// versioned; a broken or full storage never breaks the page.

import { normalizeSettings } from "./settings.js";

const PREFIX = "img2img-studio:v1:";

export class PageStore {
  constructor(storage = safeLocalStorage()) {
    this.storage = storage;
  }

  /** {settings, stored}: stored is false on a first visit (so the page may pick defaults). */
  loadSettings() {
    const raw = this.#get("settings");
    return { settings: normalizeSettings(raw ?? {}), stored: raw != null };
  }

  saveSettings(settings) {
    this.#set("settings", normalizeSettings(settings));
  }

  /** The LoRA rows: {name: {enabled, weight}} (cleaned up by loras.normalizeLoraState). */
  loadLoras() {
    return this.#get("loras");
  }

  saveLoras(state) {
    this.#set("loras", state);
  }

  /** The init image: {id, width, height, has_alpha, thumb?, source} or null. */
  loadInit() {
    const init = this.#get("init");
    return init && typeof init.id === "string" ? init : null;
  }

  saveInit(init) {
    if (init) this.#set("init", init);
    else this.#remove("init");
  }

  /** The drawing pad's pixels as a PNG data URL, or null. */
  loadSketch() {
    const sketch = this.#get("sketch");
    return typeof sketch === "string" && sketch.startsWith("data:image/") ? sketch : null;
  }

  /** The pad's erased area (a PNG data URL of the overlay), or null. */
  loadSketchMask() {
    const mask = this.#get("sketch-mask");
    return typeof mask === "string" && mask.startsWith("data:image/") ? mask : null;
  }

  /** Keep the sketch, and its erased area when there is one (null: none). */
  saveSketch(dataUrl, maskUrl = null) {
    if (dataUrl) this.#set("sketch", dataUrl);
    else this.#remove("sketch");
    if (dataUrl && maskUrl) this.#set("sketch-mask", maskUrl);
    else this.#remove("sketch-mask");
  }

  /** The upload id the pad's sketch shows (null: a drawing not uploaded yet, or unknown). */
  loadPadInit() {
    const id = this.#get("pad-init");
    return typeof id === "string" ? id : null;
  }

  savePadInit(id) {
    if (id) this.#set("pad-init", id);
    else this.#remove("pad-init");
  }

  #get(key) {
    try {
      const text = this.storage?.getItem(PREFIX + key);
      return text == null ? null : JSON.parse(text);
    } catch {
      return null; // corrupt JSON or storage disabled: start fresh
    }
  }

  #set(key, value) {
    try {
      this.storage?.setItem(PREFIX + key, JSON.stringify(value));
    } catch {
      // Quota exceeded or private mode: the page still works, it just forgets.
    }
  }

  #remove(key) {
    try {
      this.storage?.removeItem(PREFIX + key);
    } catch {
      /* as above */
    }
  }
}

function safeLocalStorage() {
  try {
    return globalThis.localStorage ?? null;
  } catch {
    return null; // some browsers throw on access when storage is blocked
  }
}
