// The tab's jobs, in the order they were sent, and which one the page follows.
//
// Generate while a job runs queues the new one on the server (Live alone
// supersedes its own earlier Live job there), so the tab may have several jobs
// at once: the queue panel lists them, and the strip, viewer and progress
// follow one (`followed`). The display moves to a queued job when its first
// job_plan arrives, that is when the worker starts it.
//
// One race to cover: the worker may emit job_plan/job_step before the
// `generate` ack carrying the job_id reaches us. Events for a job id no entry
// knows yet are held (a bounded number) while an ack is outstanding and
// replayed once an ack names their job; the rest are dropped then.

export const JOB = Object.freeze({
  IDLE: "idle",
  SUBMITTING: "submitting", // generate emitted, ack not back yet
  QUEUED: "queued", // ack has the job_id, no plan yet
  RUNNING: "running",
  DONE: "done",
  CANCELLED: "cancelled",
  ERROR: "error",
});

const FINISHED = new Set([JOB.DONE, JOB.CANCELLED, JOB.ERROR]);
const UNFINISHED = new Set([JOB.SUBMITTING, JOB.QUEUED, JOB.RUNNING]);
const HELD_MAX = 64;

export function isUnfinished(entry) {
  return Boolean(entry) && UNFINISHED.has(entry.state);
}

export class JobQueue {
  constructor() {
    this.entries = []; // unfinished jobs, plus the followed one after it ends
    this.followed = null;
    this.held = [];
    this.nextKey = 0;
  }

  /**
   * A generate is being sent. `info` is kept on the entry for the display and the
   * queue panel (e.g. {payload, strengths, live}). Returns the entry.
   */
  submit(info = {}) {
    const entry = { ...info, key: ++this.nextKey, jobId: null, state: JOB.SUBMITTING, cancelRequested: false };
    this.entries.push(entry);
    return entry;
  }

  /** Make `entry` the one the strip, viewer and progress show; finished others leave the list. */
  follow(entry) {
    this.followed = entry;
    this.#prune();
  }

  /**
   * The ack for `entry` arrived with `jobId` (null: the server refused it).
   * Returns the held events that belong to this job, in arrival order.
   */
  acknowledged(entry, jobId) {
    if (jobId == null) {
      entry.state = JOB.ERROR;
      this.#prune();
      return [];
    }
    entry.jobId = jobId;
    if (entry.state === JOB.SUBMITTING) entry.state = JOB.QUEUED;
    const mine = this.held.filter((h) => h.payload.job_id === jobId);
    this.held = this.#waiting() ? this.held.filter((h) => h.payload.job_id !== jobId) : [];
    return mine;
  }

  /**
   * Where an incoming server event goes: {action: "handle" | "hold" | "drop", entry}.
   * "handle" comes with the entry it belongs to.
   */
  route(event, payload) {
    const id = payload?.job_id;
    if (id == null) return { action: "drop", entry: null };
    const entry = this.entries.find((e) => e.jobId === id);
    if (!entry) {
      if (!this.#waiting()) return { action: "drop", entry: null };
      if (this.held.length < HELD_MAX || event !== "job_step") {
        this.held.push({ event, payload });
        return { action: "hold", entry: null };
      }
      return { action: "drop", entry: null }; // never let previews pile up; plan and end events are kept
    }
    if (FINISHED.has(entry.state)) return { action: "drop", entry }; // nothing may follow the end of a job
    return { action: "handle", entry };
  }

  /** Record what a handled event means for its job's state. */
  note(entry, event) {
    if (event === "job_plan" || event === "job_step") entry.state = JOB.RUNNING;
    else if (event === "job_done") entry.state = JOB.DONE;
    else if (event === "job_cancelled") entry.state = JOB.CANCELLED;
    else if (event === "job_error") entry.state = JOB.ERROR;
    if (FINISHED.has(entry.state)) this.#prune();
  }

  /** The tab's jobs not yet ended, oldest first (the queue panel). */
  get unfinished() {
    return this.entries.filter(isUnfinished);
  }

  /** The followed job's id and state (what the display reads). */
  get jobId() {
    return this.followed?.jobId ?? null;
  }

  get state() {
    return this.followed?.state ?? JOB.IDLE;
  }

  /** True while the followed job is submitted, queued or running (Cancel is meaningful). */
  get active() {
    return isUnfinished(this.followed);
  }

  /** Any job of this tab not yet ended. */
  get busy() {
    return this.entries.some(isUnfinished);
  }

  #waiting() {
    return this.entries.some((e) => e.state === JOB.SUBMITTING);
  }

  #prune() {
    this.entries = this.entries.filter((e) => isUnfinished(e) || e === this.followed);
  }
}
