// Small timing helpers with injectable timers, so tests can drive time.

const realTimers = {
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (id) => globalThis.clearTimeout(id),
  now: () => globalThis.performance?.now?.() ?? Date.now(),
};

/** Call fn once calls stop for `ms`. The wrapper has cancel() and flush(). */
export function debounce(fn, ms, timers = realTimers) {
  let id = null;
  let lastArgs = null;
  const run = () => {
    id = null;
    const args = lastArgs;
    lastArgs = null;
    fn(...args);
  };
  const debounced = (...args) => {
    lastArgs = args;
    if (id !== null) timers.clearTimeout(id);
    id = timers.setTimeout(run, ms);
  };
  debounced.cancel = () => {
    if (id !== null) timers.clearTimeout(id);
    id = null;
    lastArgs = null;
  };
  debounced.flush = () => {
    if (id === null) return;
    timers.clearTimeout(id);
    run();
  };
  debounced.pending = () => id !== null;
  return debounced;
}

/**
 * Call fn at most once per `ms`: the first call runs at once, later ones are
 * folded into one trailing call with the latest arguments.
 */
export function throttle(fn, ms, timers = realTimers) {
  let last = -Infinity;
  let id = null;
  let lastArgs = null;
  const fire = () => {
    id = null;
    last = timers.now();
    const args = lastArgs;
    lastArgs = null;
    fn(...args);
  };
  const throttled = (...args) => {
    lastArgs = args;
    const wait = ms - (timers.now() - last);
    if (wait <= 0 && id === null) fire();
    else if (id === null) id = timers.setTimeout(fire, Math.max(wait, 0));
  };
  throttled.cancel = () => {
    if (id !== null) timers.clearTimeout(id);
    id = null;
    lastArgs = null;
  };
  return throttled;
}

/**
 * What a strength-slider gesture means.
 *  - every move: `onPreview(value)` (throttled) so plan counts follow the thumb;
 *  - a pause of `pauseMs` on one value, or releasing the slider: `onCommit(value)`,
 *    once per distinct value, so a Live page regenerates without flooding the queue.
 */
export class SliderIntent {
  constructor({ onPreview, onCommit, pauseMs = 300, previewMs = 50, timers = realTimers }) {
    this.onCommit = onCommit;
    this.committed = null;
    this.preview = throttle((v) => onPreview(v), previewMs, timers);
    this.pause = debounce((v) => this.commit(v), pauseMs, timers);
  }

  /** The thumb moved (input event). */
  input(value) {
    this.preview(value);
    this.pause(value);
  }

  /** The slider was released or changed by keyboard (change event). */
  release(value) {
    this.pause.cancel();
    this.preview(value);
    this.commit(value);
  }

  commit(value) {
    if (value === this.committed) return;
    this.committed = value;
    this.onCommit(value);
  }

  /** Forget the last committed value (e.g. other settings changed, so the same value means a new run). */
  reset() {
    this.committed = null;
  }

  cancel() {
    this.pause.cancel();
    this.preview.cancel();
  }
}
