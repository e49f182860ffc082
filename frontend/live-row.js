// This tab's Live results as data: newest first, a dozen at most, each
// waiting to be kept (saved into the gallery) or not. Session only: a reload
// starts an empty row (the server keeps its newest Live files for a while).
// Pure: gallery-panel.js asks the server and live-row-view.js draws.

export const LIVE_ROW_SIZE = 12;

export const LIVE = Object.freeze({ NEW: "new", KEEPING: "keeping", KEPT: "kept", FAILED: "failed" });

const LIVE_URL = /^\/outputs\/live\/([^/?#]+)$/;

/** Whether a job_done (or one of its outputs) is a Live result: saved under outputs/live/, not in the gallery. */
export function isLiveResult(done) {
  return done?.metadata?.live === true || (typeof done?.url === "string" && LIVE_URL.test(done.url));
}

/** The live file name in a Live result's URL ("/outputs/live/000003.42.png" -> "000003.42.png"), or null. */
export function liveFile(url) {
  const match = typeof url === "string" ? LIVE_URL.exec(url) : null;
  return match ? decodeURIComponent(match[1]) : null;
}

/** The Live results one job_done carries: its outputs (a batch), or the job itself. */
export function liveResults(done) {
  const outputs = Array.isArray(done?.outputs) && done.outputs.length ? done.outputs : [done];
  return outputs
    .map((output) => {
      const file = liveFile(output?.url);
      if (!file) return null;
      const meta = output.metadata ?? done?.metadata ?? {};
      return {
        file,
        url: output.url,
        seed: output.seed ?? meta.seed ?? null,
        prompt: typeof meta.prompt === "string" ? meta.prompt : "",
        strength: typeof meta.strength === "number" ? meta.strength : null,
        state: LIVE.NEW,
        keptName: null,
        keptUrl: null,
        error: null,
      };
    })
    .filter(Boolean);
}

export class LiveSession {
  constructor(size = LIVE_ROW_SIZE) {
    this.size = size;
    this.entries = [];
  }

  /** Add a finished Live job's results at the front; returns how many were new. */
  add(done) {
    const fresh = liveResults(done).filter((entry) => !this.find(entry.file));
    // A batch's outputs come in order; the row shows the newest first.
    this.entries = [...fresh.reverse(), ...this.entries].slice(0, this.size);
    return fresh.length;
  }

  find(file) {
    return this.entries.find((entry) => entry.file === file) ?? null;
  }

  /** A keep was asked for; false when there is nothing (left) to keep. */
  keeping(file) {
    const entry = this.find(file);
    if (!entry || entry.state === LIVE.KEEPING || entry.state === LIVE.KEPT) return false;
    this.#update(file, { state: LIVE.KEEPING, error: null });
    return true;
  }

  /** The server saved it into the gallery as `item` ({name, url, …}). */
  kept(file, item) {
    this.#update(file, { state: LIVE.KEPT, keptName: item?.name ?? null, keptUrl: item?.url ?? null, error: null });
  }

  /** The keep failed: say why, and let the person try again. */
  failed(file, message) {
    this.#update(file, { state: LIVE.FAILED, error: message });
  }

  #update(file, change) {
    this.entries = this.entries.map((entry) => (entry.file === file ? { ...entry, ...change } : entry));
  }
}
