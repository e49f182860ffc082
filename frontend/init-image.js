// The init image: one source of truth for what the next job starts from, and the
// drawing pad always shows it. An upload (or a gallery item's init, or an output sent
// back) is placed on the pad; whatever a person does on the pad (a stroke, an erase,
// fill, clear, undo) makes the pad's pixels the init. Those are uploaded a moment after
// the last edit, and at the latest when a job is sent: what the pad shows is what SD
// gets, transparency included. A blank pad means no init (text-to-image).

import * as api from "./api.js";

const PAD_UPLOAD_DELAY_MS = 400; // after the last stroke: one upload per pause, not per stroke

export class InitImage {
  /**
   * view: the StudioView (init panel); pad: the DrawingPad; store: the PageStore;
   * thumbnail(blob) -> data URL; imageSize(blob) -> {width, height};
   * onChange(init, {replaced}): the init changed (replaced false: the same drawing, now uploaded).
   */
  constructor({ view, pad, store, thumbnail, imageSize, onChange }) {
    Object.assign(this, { view, pad, store, thumbnail, imageSize, onChange });
    this.current = null; // {id, width, height, has_alpha, thumb, source} (id null while the pad's upload is pending)
    this.token = 0; // bumped by every change a person asks for; late answers for older ones are dropped
    this.padTimer = null;
    this.padUpload = null; // {revision, promise} of the pad upload under way
  }

  /**
   * From an earlier visit: the stored init and sketch, made to agree (the pad shows the init).
   * A sketch never uploaded is sent; a pad that shows something else than the init (a blank pad,
   * or a sketch kept from before the pad was the init) gets the init put on it, undo keeping the sketch.
   */
  start() {
    this.#set(this.store.loadInit(), { save: false });
    if (!this.pad.isBlank && !this.current) this.onPadChange({ edited: true });
    else if (this.current && (this.pad.isBlank || this.store.loadPadInit() !== this.current.id)) this.#placeOnPad(this.current);
    this.verify();
  }

  /** True while the init is the pad's drawing and its upload has not finished. */
  get pending() {
    return Boolean(this.current && this.current.id == null);
  }

  /**
   * Upload an image (a File or Blob) as the init and put it on the pad.
   * Resolves true when it is the init.
   */
  async upload(file, source = "upload") {
    const token = ++this.token;
    this.#cancelPadUpload();
    this.view.showUploadError("");
    this.view.setUploading(true);
    try {
      const res = await api.uploadImage(file, "image.png");
      const thumb = await this.#thumbnailOf(file);
      if (token !== this.token) return false; // something newer was chosen meanwhile
      const init = { id: res.id, width: res.width, height: res.height, has_alpha: Boolean(res.has_alpha), thumb, source };
      this.#set(init);
      await this.#placeOnPad(init, file);
      return true;
    } catch (err) {
      if (token === this.token) this.view.showUploadError(err.message);
      return false;
    } finally {
      if (token === this.token) this.view.setUploading(false);
    }
  }

  /**
   * Make an upload the server kept the init again (a gallery item's metadata.init_image:
   * {id, width, height, has_alpha, url}). When the server no longer has it, say so and fall
   * back to no init image.
   */
  async restore(meta) {
    if (this.current?.id === meta.id) {
      this.token += 1; // already the init: keep it, drop any restore under way
      this.view.setUploading(false);
      return true;
    }
    const token = ++this.token;
    this.#cancelPadUpload();
    const url = meta.url || api.uploadUrl(meta.id);
    this.view.showUploadError("");
    this.view.setUploading(true, "Loading the init image…");
    try {
      const blob = await api.fetchUpload(url);
      let { width, height } = meta;
      if (!(width > 0 && height > 0) && this.imageSize) {
        try {
          ({ width, height } = await this.imageSize(blob)); // older metadata has no size
        } catch {
          /* describeInit says the size is not known here */
        }
      }
      if (token !== this.token) return false;
      const init = { id: meta.id, width, height, has_alpha: Boolean(meta.has_alpha), thumb: url, source: "gallery" };
      this.#set(init);
      await this.#placeOnPad(init, blob);
      return true;
    } catch (err) {
      if (token !== this.token) return false;
      this.clear();
      this.view.showUploadError(
        `Init image not restored: ${err.message} The other settings were restored, so Generate is text-to-image for now.`,
      );
      return false;
    } finally {
      if (token === this.token) this.view.setUploading(false);
    }
  }

  /** No init image: text-to-image. The pad goes back to blank paper (undo brings the pixels back). */
  clear() {
    this.token += 1;
    this.#cancelPadUpload();
    this.view.showUploadError("");
    this.view.setUploading(false);
    this.#set(null);
    this.pad.reset();
  }

  /** The pad changed. A person's edit makes its pixels the init (uploaded shortly); the page's own loads do not. */
  onPadChange({ edited }) {
    if (!edited) return;
    this.token += 1; // an upload or restore still under way must not replace the drawing
    this.view.setUploading(false);
    this.#cancelPadUpload();
    if (this.pad.isBlank) {
      this.#set(null);
      return;
    }
    const { width, height } = this.pad.canvas;
    // Not stored until it is uploaded: a reload meanwhile finds the sketch without an init and sends it.
    this.store.saveInit(null);
    this.store.savePadInit(null);
    this.#set({ id: null, width, height, has_alpha: this.pad.hasErased, thumb: this.pad.previewDataURL(), source: "drawing" },
      { save: false });
    this.padTimer = setTimeout(() => this.#uploadPad().catch(() => {}), PAD_UPLOAD_DELAY_MS);
  }

  /**
   * Before a job is sent: the pad's pending drawing is uploaded now. Resolves {ok: true}, or
   * {ok: false, error} when the upload failed (the job must not run on something else).
   */
  async settle() {
    if (!this.pending) return { ok: true };
    clearTimeout(this.padTimer);
    this.padTimer = null;
    try {
      await this.#uploadPad();
      return this.pending ? { ok: false, error: "The drawing changed while it was being sent; send again." } : { ok: true };
    } catch (err) {
      return { ok: false, error: `The drawing could not be sent: ${err.message}` };
    }
  }

  /** The stored init (from an earlier visit) may be gone from the server: check, and drop it if so. */
  async verify() {
    const init = this.current;
    if (!init?.id) return;
    const token = this.token;
    try {
      await api.fetchUpload(api.uploadUrl(init.id));
    } catch (err) {
      if (err?.status !== 404 || token !== this.token || this.current?.id !== init.id) return; // offline: keep it
      this.clear();
      this.view.showUploadError(`The init image chosen earlier is no longer on the server: ${err.message}`);
    }
  }

  /** Upload the pad as it is now; the init becomes it unless the pad moved on meanwhile. */
  #uploadPad() {
    const revision = this.pad.revision;
    if (this.padUpload?.revision === revision) return this.padUpload.promise;
    const token = this.token;
    const promise = (async () => {
      const { image, mask, preview } = await this.pad.toUpload();
      const res = await api.uploadImage(image, "drawing.png", mask);
      if (token !== this.token || revision !== this.pad.revision) return; // edited again: a newer upload follows
      const thumb = await this.#thumbnailOf(preview ?? image);
      this.#set({ id: res.id, width: res.width, height: res.height, has_alpha: Boolean(res.has_alpha), thumb, source: "drawing" },
        { replaced: false });
      this.store.savePadInit(res.id);
    })();
    this.padUpload = { revision, promise };
    return promise.finally(() => {
      if (this.padUpload?.promise === promise) this.padUpload = null;
    });
  }

  #cancelPadUpload() {
    clearTimeout(this.padTimer);
    this.padTimer = null;
    this.padUpload = null;
  }

  /** Show the init on the pad (from its bytes when we have them, else from the server). */
  async #placeOnPad(init, blob = null) {
    const token = this.token;
    try {
      const bytes = blob ?? (await api.fetchUpload(api.uploadUrl(init.id)));
      if (token !== this.token) return;
      await this.pad.loadImage(bytes, { hasAlpha: Boolean(init.has_alpha) });
      this.store.savePadInit(init.id);
    } catch {
      // The browser cannot draw it (e.g. TIFF): the init stays the upload (its thumbnail says
      // there is no preview), the pad is blank paper, and drawing there replaces the init.
      if (token === this.token) this.pad.reset();
    }
  }

  async #thumbnailOf(blob) {
    try {
      return await this.thumbnail(blob);
    } catch {
      return null; // the server read it, the browser cannot (e.g. TIFF): no preview, still usable
    }
  }

  #set(init, { save = true, replaced = true } = {}) {
    this.current = init;
    if (save) this.store.saveInit(init);
    this.view.showInit(init);
    this.onChange(init, { replaced });
  }
}
