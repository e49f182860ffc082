// Live mode's timing: rerun after any edit (prompt, seed, CFG, steps, a finished
// stroke, the strength slider), once the edits pause. Krita AI Diffusion's live
// mode works the same way: a short wait after the last edit, one request in
// flight, none queued. Here the server keeps it to one: a Live job cancels the
// tab's earlier Live job (the `live` flag of `generate`), so a burst of edits
// ends in one run of the newest settings. Pure (timers injected), so node --test
// can check it.

export const LIVE_DELAY_MS = 300;

/** Settings whose edit reruns Live (random_seed is left out: it is not a picture change). */
export const LIVE_FIELDS = new Set([
  "prompt", "negative_prompt", "seed", "cfg_scale", "steps", "sampler", "exact_steps", "min_taken_steps",
  "variation_amount", "width", "height", "fit", "loras",
]);

export class LiveTrigger {
  /** fire(): start a Live run now. */
  // The timer functions are wrapped: called as this.setTimer(), the browser's own would throw
  // "Illegal invocation" (they need the window as `this`).
  constructor({ fire, delay = LIVE_DELAY_MS, setTimer = (fn, ms) => setTimeout(fn, ms), clearTimer = (t) => clearTimeout(t) }) {
    Object.assign(this, { fire, delay, setTimer, clearTimer });
    this.timer = null;
  }

  /** An edit: run once edits have paused for `delay`. */
  edit() {
    this.cancel();
    this.timer = this.setTimer(() => {
      this.timer = null;
      this.fire();
    }, this.delay);
  }

  /** Run now (the strength slider was released: SliderIntent already waited for the pause). */
  now() {
    this.cancel();
    this.fire();
  }

  /** Forget a pending edit (Live switched off). */
  cancel() {
    if (this.timer != null) this.clearTimer(this.timer);
    this.timer = null;
  }

  get pending() {
    return this.timer != null;
  }
}
