// Preview frames as object URLs. Every URL made here is revoked once the
// next job's frames replace it, so long sessions do not leak.

/**
 * The bytes of a job_step `image` (ArrayBuffer, typed array or Blob) as a Blob;
 * which "x0" gives its `x0_image` instead (the predicted result, for the viewer),
 * or null when the step carries none.
 */
export function frameBlob(step, which = "image") {
  const image = which === "x0" ? step?.x0_image : step?.image;
  const type = (which === "x0" && step?.x0_mime) || step?.mime || "image/png";
  if (image == null) return null;
  if (typeof Blob !== "undefined" && image instanceof Blob) return image;
  if (image instanceof ArrayBuffer || ArrayBuffer.isView(image)) return new Blob([image], { type });
  return null;
}

export class FrameUrls {
  constructor(urlApi = globalThis.URL) {
    this.urlApi = urlApi;
    this.live = new Map(); // url -> generation it was made in
    this.generation = 0;
  }

  /** Start a new generation (a new job): later frames belong to it. */
  nextGeneration() {
    this.generation += 1;
    return this.generation;
  }

  /** An object URL for a job_step's image (which: "image" | "x0"), or null when it has none. */
  fromStep(step, which = "image") {
    const blob = frameBlob(step, which);
    if (!blob) return null;
    const url = this.urlApi.createObjectURL(blob);
    this.live.set(url, this.generation);
    return url;
  }

  /**
   * Revoke the URLs of earlier generations. Called when the new job's first
   * frame is on screen, so the old frame stays visible until then.
   */
  revokeOlder() {
    for (const [url, gen] of this.live) {
      if (gen < this.generation) {
        this.urlApi.revokeObjectURL(url);
        this.live.delete(url);
      }
    }
  }

  /** Revoke every URL made so far. */
  revokeAll() {
    for (const url of this.live.keys()) this.urlApi.revokeObjectURL(url);
    this.live.clear();
  }

  get size() {
    return this.live.size;
  }
}
