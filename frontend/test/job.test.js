import { test } from "node:test";
import assert from "node:assert/strict";
import { JOB, JobQueue } from "../job.js";

function started(queue, jobId, info = {}) {
  const entry = queue.submit(info);
  queue.acknowledged(entry, jobId);
  return entry;
}

test("events are routed to the job they name; unknown jobs and id-less events are dropped", () => {
  const queue = new JobQueue();
  const a = queue.submit();
  queue.follow(a);
  assert.deepEqual(queue.acknowledged(a, "a"), []);
  assert.equal(queue.state, JOB.QUEUED);
  assert.deepEqual(queue.route("job_plan", { job_id: "a" }), { action: "handle", entry: a });
  queue.note(a, "job_plan");
  assert.equal(queue.state, JOB.RUNNING);
  assert.equal(queue.route("job_step", { job_id: "old", index: 5 }).action, "drop");
  assert.equal(queue.route("job_step", { index: 5 }).action, "drop", "no job_id: not ours");
});

test("a second job waits beside the first: both unfinished, in order, each routed to itself", () => {
  const queue = new JobQueue();
  const first = started(queue, "first");
  queue.follow(first);
  queue.note(first, "job_plan");
  const second = started(queue, "second");
  assert.deepEqual(queue.unfinished.map((e) => [e.jobId, e.state]), [["first", JOB.RUNNING], ["second", JOB.QUEUED]]);
  assert.equal(queue.route("job_step", { job_id: "first", index: 3 }).entry, first);
  assert.equal(queue.route("job_plan", { job_id: "second" }).entry, second);
  queue.note(first, "job_done");
  assert.deepEqual(queue.unfinished.map((e) => e.jobId), ["second"]);
  assert.equal(queue.followed, first, "the finished job stays shown until another is followed");
  queue.follow(second);
  assert.deepEqual(queue.entries.map((e) => e.jobId), ["second"], "finished jobs leave once not shown");
});

test("events that beat the ack are held, then replayed for the right job only", () => {
  const queue = new JobQueue();
  const entry = queue.submit();
  assert.equal(queue.route("job_plan", { job_id: "new" }).action, "hold");
  assert.equal(queue.route("job_step", { job_id: "older", index: 4 }).action, "hold");
  assert.equal(queue.route("job_step", { job_id: "new", index: -1, kind: "init" }).action, "hold");
  const replay = queue.acknowledged(entry, "new");
  assert.deepEqual(replay.map((h) => [h.event, h.payload.job_id]), [["job_plan", "new"], ["job_step", "new"]]);
  assert.equal(queue.route("job_step", { job_id: "older", index: 5 }).action, "drop");
});

test("with two acks outstanding, each gets its own held events", () => {
  const queue = new JobQueue();
  const one = queue.submit();
  const two = queue.submit();
  queue.route("job_plan", { job_id: "b" });
  queue.route("job_plan", { job_id: "a" });
  assert.deepEqual(queue.acknowledged(one, "a").map((h) => h.payload.job_id), ["a"]);
  assert.deepEqual(queue.acknowledged(two, "b").map((h) => h.payload.job_id), ["b"]);
});

test("a refused submission ends at once and leaves the queue", () => {
  const queue = new JobQueue();
  const entry = queue.submit();
  queue.follow(entry);
  assert.deepEqual(queue.acknowledged(entry, null), []);
  assert.equal(queue.state, JOB.ERROR);
  assert.equal(queue.active, false);
  assert.deepEqual(queue.unfinished, []);
});

test("nothing is handled after a job ended", () => {
  for (const end of ["job_done", "job_cancelled", "job_error"]) {
    const queue = new JobQueue();
    const entry = started(queue, "j");
    queue.follow(entry);
    queue.note(entry, "job_plan");
    assert.equal(queue.active, true);
    queue.note(entry, end);
    assert.equal(queue.active, false);
    assert.equal(queue.route("job_step", { job_id: "j", index: 9 }).action, "drop", `after ${end}`);
  }
});

test("held previews are bounded, plan and end events are always kept", () => {
  const queue = new JobQueue();
  const entry = queue.submit();
  for (let i = 0; i < 200; i++) queue.route("job_step", { job_id: "j", index: i });
  assert.equal(queue.route("job_step", { job_id: "j", index: 999 }).action, "drop");
  assert.equal(queue.route("job_done", { job_id: "j" }).action, "hold");
  const replay = queue.acknowledged(entry, "j");
  assert.equal(replay.length, 65);
  assert.equal(replay.at(-1).event, "job_done");
});
