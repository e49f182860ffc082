// The artist's loop around the viewer: send what is shown to the init, look at
// it large against its init image (the lightbox), and take a dropped, pasted or
// chosen image file, asking what to do when it is a PNG that carries settings.
// A controller: it decides, the views (lightbox.js, png-info-view.js) show.

import * as api from "./api.js";
import { withListedNames } from "./a1111.js";
import { isPng, readPngSettings } from "./png-info.js";

const NO_INIT = "No init image: this was made from the prompt alone (txt2img), so there is nothing to compare it with.";

export class ArtistTools {
  /**
   * studio: the controller (studio.js); view: StudioView; lightbox: Lightbox; pngDialog:
   * PngInfoDialog; imageToPng(url) -> a PNG Blob of an image the page shows (for blob: URLs).
   */
  constructor({ studio, view, lightbox, pngDialog, imageToPng = pngOfImage }) {
    Object.assign(this, { studio, view, lightbox, pngDialog, imageToPng });
  }

  // --- send to init -------------------------------------------------------------------

  /** The viewer's "send to init": the output, or the full decode, shown large. */
  async sendShownToInit() {
    const shown = this.view.largeShown();
    if (!shown.url) return false;
    if (shown.kind !== "decoded") return this.studio.sendToInit(shown.url);
    // A full decode lives in a blob: URL, which the page's CSP does not let fetch() read.
    const label = "The full decode shown large";
    let image;
    try {
      image = await this.imageToPng(shown.url);
    } catch (err) {
      this.view.showUploadError(`${label} could not be made the init image: ${err?.message || err}`);
      return false;
    }
    return this.studio.sendToInit(shown.url, { label, image });
  }

  // --- the lightbox ---------------------------------------------------------------------

  /** Open the lightbox on the image shown large; the compare follows once its init is known. */
  openLightbox(opener = null) {
    const shown = this.view.largeShown();
    if (!shown.url) return;
    const after = shown.kind === "output" ? "output" : shown.kind === "decoded" ? "full decode" : "preview";
    const token = this.lightbox.open({ url: shown.url, caption: shown.caption, after }, opener);
    this.#initFor(shown)
      .catch((err) => ({ why: `The init image could not be found: ${err?.message || err}` }))
      .then(({ url, why }) => (url ? this.lightbox.showCompare(token, url) : this.lightbox.showNoCompare(token, why)));
  }

  /**
   * {url} of the init image the shown image was made from, or {why} not. An output: its
   * metadata's init_image (from the job's events, else read from the PNG itself). A strip
   * frame or its full decode: the init the followed job was sent with.
   */
  async #initFor({ url, kind }) {
    const display = this.studio.display;
    if (kind === "output") {
      const entry = display.batch?.entries.find((e) => e.metadata && samePlace(e.url, url));
      let meta = entry?.metadata;
      if (!meta) {
        const found = await readPngSettings(await (await api.fetchUpload(url)).arrayBuffer());
        meta = found.kind === "studio" ? found.meta : null;
      }
      if (!meta) return { why: "This image carries no studio settings, so its init image is not known." };
      return initOf(meta);
    }
    const jobId = display.stripJob?.jobId;
    const sent = jobId ? this.studio.jobInit(jobId) : undefined;
    if (sent === null || display.run?.mode === "txt2img") return { why: NO_INIT };
    if (typeof sent === "string") return { url: api.uploadUrl(sent) };
    const meta = display.batch?.entries.find((e) => e.metadata)?.metadata;
    return meta ? initOf(meta) : { why: "This page does not know which init image the job shown was sent with." };
  }

  // --- image files: drop, paste, the file picker --------------------------------------------

  /**
   * An image file the person gave. A PNG carrying the studio's settings or A1111's parameters
   * asks what to do with it; anything else becomes the init image, as an upload always did.
   */
  async takeImageFile(file) {
    let bytes = null;
    try {
      const head = new Uint8Array(await file.slice(0, 8).arrayBuffer());
      if (isPng(head)) bytes = await file.arrayBuffer();
    } catch {
      bytes = null; // unreadable here: let the server's decoder say why
    }
    const found = bytes ? await readPngSettings(bytes) : null;
    if (!found?.kind) {
      if (found?.problems.length) this.view.showJobMessage([...found.problems, "The PNG is used as the init image."], "warning");
      return this.studio.uploadFile(file, "upload");
    }
    const choice = await this.pngDialog.ask(found);
    if (!choice) return false;
    if (choice === "restore" || choice === "both") await this.#restore(found);
    if (choice === "init" || choice === "both") return this.studio.uploadFile(file, "upload");
    return true;
  }

  /** Restore a PNG's settings (model and LoRAs included), leaving the init image as it is. */
  async #restore(found) {
    let meta = found.meta;
    if (found.kind === "a1111") {
      // A1111 names files without folder or extension: find them as the models folder lists them.
      const listing = (await this.studio.library?.refresh({ force: false })) ?? this.studio.library?.listing;
      meta = withListedNames(meta, listing);
    }
    const libraryNotes = await this.studio.restoreSettings(meta);
    const lines = [
      { text: `Settings restored from the ${found.kind === "studio" ? "studio" : "A1111"} PNG.`, tone: "info" },
      ...found.notes,
      ...(found.unused.length ? [`Not used: ${found.unused.join(", ")}.`] : []),
      ...libraryNotes,
    ];
    this.view.showJobMessage(lines, "warning");
  }
}

/** Whether two URLs name the same thing (the viewer may hold one relative, another absolute). */
function samePlace(a, b) {
  const base = globalThis.location?.href ?? "http://localhost/";
  try {
    return typeof a === "string" && new URL(a, base).href === new URL(b, base).href;
  } catch {
    return false;
  }
}

/** Re-encode an image the page can show (a PNG decode: opaque, so exact) as a PNG Blob. */
async function pngOfImage(url) {
  const img = new Image();
  img.src = url;
  await img.decode();
  const canvas = new OffscreenCanvas(img.naturalWidth, img.naturalHeight);
  canvas.getContext("2d").drawImage(img, 0, 0);
  return canvas.convertToBlob({ type: "image/png" });
}

function initOf(meta) {
  const init = meta.init_image;
  if (meta.mode === "txt2img" || !init || typeof init !== "object") return { why: NO_INIT };
  if (typeof init.url === "string" && init.url.startsWith("/api/uploads/")) return { url: init.url };
  if (typeof init.id === "string" && init.id) return { url: api.uploadUrl(init.id) };
  return { why: "The image's settings do not say where its init image is." };
}
