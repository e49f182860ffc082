import { test } from "node:test";
import assert from "node:assert/strict";
import { JOB, JobTracker } from "../job.js";

test("events for the followed job are handled, others dropped", () => {
  const job = new JobTracker();
  const token = job.submit();
  assert.deepEqual(job.acknowledged(token, "a"), []);
  assert.equal(job.state, JOB.QUEUED);
  assert.equal(job.route("job_plan", { job_id: "a" }), "handle");
  job.note("job_plan");
  assert.equal(job.state, JOB.RUNNING);
  assert.equal(job.route("job_step", { job_id: "a", index: 0 }), "handle");
  assert.equal(job.route("job_step", { job_id: "old", index: 5 }), "drop");
  assert.equal(job.route("job_step", { index: 5 }), "drop", "no job_id: not ours");
});

test("frames of a superseded job are stale once a new job is followed", () => {
  const job = new JobTracker();
  job.acknowledged(job.submit(), "first");
  job.note("job_plan");
  const second = job.submit();
  job.acknowledged(second, "second");
  assert.equal(job.route("job_step", { job_id: "first", index: 3 }), "drop");
  assert.equal(job.route("job_done", { job_id: "first" }), "drop");
  assert.equal(job.route("job_step", { job_id: "second", index: 0 }), "handle");
});

test("events that beat the ack are held, then replayed for the right job only", () => {
  const job = new JobTracker();
  const token = job.submit();
  assert.equal(job.route("job_plan", { job_id: "new" }), "hold");
  assert.equal(job.route("job_step", { job_id: "older", index: 4 }), "hold");
  assert.equal(job.route("job_step", { job_id: "new", index: -1, kind: "init" }), "hold");
  const replay = job.acknowledged(token, "new");
  assert.deepEqual(replay.map((h) => [h.event, h.payload.job_id]), [["job_plan", "new"], ["job_step", "new"]]);
  assert.equal(job.route("job_step", { job_id: "older", index: 5 }), "drop");
});

test("an ack for an older submission is ignored", () => {
  const job = new JobTracker();
  const first = job.submit();
  const second = job.submit();
  assert.deepEqual(job.acknowledged(first, "one"), []);
  assert.equal(job.jobId, null);
  assert.equal(job.state, JOB.SUBMITTING);
  job.acknowledged(second, "two");
  assert.equal(job.jobId, "two");
});

test("a failed ack ends the submission", () => {
  const job = new JobTracker();
  job.route("job_plan", { job_id: "x" });
  assert.deepEqual(job.acknowledged(job.submit(), null), []);
  assert.equal(job.state, JOB.ERROR);
  assert.equal(job.active, false);
});

test("nothing is handled after the job ended", () => {
  for (const end of ["job_done", "job_cancelled", "job_error"]) {
    const job = new JobTracker();
    job.acknowledged(job.submit(), "j");
    job.note("job_plan");
    assert.equal(job.active, true);
    job.note(end);
    assert.equal(job.active, false);
    assert.equal(job.route("job_step", { job_id: "j", index: 9 }), "drop", `after ${end}`);
  }
});

test("held previews are bounded, plan and end events are always kept", () => {
  const job = new JobTracker();
  const token = job.submit();
  for (let i = 0; i < 200; i++) job.route("job_step", { job_id: "j", index: i });
  assert.equal(job.route("job_step", { job_id: "j", index: 999 }), "drop");
  assert.equal(job.route("job_done", { job_id: "j" }), "hold");
  const replay = job.acknowledged(token, "j");
  assert.equal(replay.length, 65);
  assert.equal(replay.at(-1).event, "job_done");
});
