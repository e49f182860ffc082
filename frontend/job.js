// Which job the page is following, and whether a server event belongs to it.
//
// The page follows one job at a time. Events for any other job_id (a job we
// superseded or cancelled, or one from before a reload) are stale and dropped.
// There is one race to cover: the worker may emit job_plan/job_step before the
// `generate` ack carrying the job_id reaches us. Events that arrive while an
// ack is outstanding are held (a few, bounded) and replayed once the ack names
// the job; the rest are dropped then.

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
const HELD_MAX = 64;

export class JobTracker {
  constructor() {
    this.jobId = null;
    this.state = JOB.IDLE;
    this.token = 0; // identifies the submission an ack answers
    this.held = [];
  }

  /** A new generate is being sent. Returns a token to pass to acknowledged(). */
  submit() {
    this.token += 1;
    this.jobId = null;
    this.state = JOB.SUBMITTING;
    this.held = [];
    return this.token;
  }

  /**
   * The ack for submission `token` arrived with `jobId` (or failed, jobId null).
   * Returns the held events that belong to this job, in arrival order, for the
   * caller to handle now. An ack for an older submission is ignored.
   */
  acknowledged(token, jobId) {
    if (token !== this.token) return [];
    const held = this.held;
    this.held = [];
    if (jobId == null) {
      this.state = JOB.ERROR;
      return [];
    }
    this.jobId = jobId;
    this.state = JOB.QUEUED;
    const mine = held.filter((h) => h.payload.job_id === jobId);
    return mine;
  }

  /**
   * Decide what to do with an incoming server event for a job.
   * Returns "handle" (it is ours), "hold" (ack pending; kept for replay) or "drop".
   */
  route(event, payload) {
    const id = payload?.job_id;
    if (id == null) return "drop";
    if (this.state === JOB.SUBMITTING) {
      if (this.held.length < HELD_MAX || event !== "job_step") {
        this.held.push({ event, payload });
        return "hold";
      }
      return "drop"; // never let previews pile up; plan and end events are still kept
    }
    if (id !== this.jobId) return "drop";
    if (FINISHED.has(this.state)) return "drop"; // nothing may follow the end of a job
    return "handle";
  }

  /** Record what a handled event means for the job's state. */
  note(event) {
    if (event === "job_plan" || event === "job_step") this.state = JOB.RUNNING;
    else if (event === "job_done") this.state = JOB.DONE;
    else if (event === "job_cancelled") this.state = JOB.CANCELLED;
    else if (event === "job_error") this.state = JOB.ERROR;
  }

  /** True while a job is submitted, queued or running (Cancel is meaningful). */
  get active() {
    return this.state === JOB.SUBMITTING || this.state === JOB.QUEUED || this.state === JOB.RUNNING;
  }
}
