// This tab's Live results: which job_done payloads are Live, newest first, a
// dozen at most, and keeping one.
import { test } from "node:test";
import assert from "node:assert/strict";
import { LIVE, LiveSession, isLiveResult, liveFile, liveResults } from "../live-row.js";

const done = (n, extra = {}) => ({
  job_id: `job-${n}`,
  name: `${String(n).padStart(6, "0")}.42.png`,
  url: `/outputs/live/${String(n).padStart(6, "0")}.42.png`,
  seed: 42,
  metadata: { live: true, prompt: "fire", strength: 0.55, seed: 42 },
  ...extra,
});

test("a Live result is told by its metadata or its URL; gallery outputs are not", () => {
  assert.equal(isLiveResult(done(1)), true);
  assert.equal(isLiveResult({ url: "/outputs/live/000001.1.png", metadata: {} }), true);
  assert.equal(isLiveResult({ url: "/outputs/000001.1.png", metadata: { prompt: "fire" } }), false);
  assert.equal(isLiveResult(null), false);
  assert.equal(liveFile("/outputs/live/000003.42.png"), "000003.42.png");
  assert.equal(liveFile("/outputs/000003.42.png"), null);
  assert.equal(liveFile("/outputs/live/a/b.png"), null);
});

test("a result carries what the row shows", () => {
  const [entry] = liveResults(done(5));
  assert.deepEqual(entry, {
    file: "000005.42.png", url: "/outputs/live/000005.42.png", seed: 42, prompt: "fire", strength: 0.55,
    state: LIVE.NEW, keptName: null, keptUrl: null, error: null,
  });
});

test("newest first, each once, at most a dozen", () => {
  const session = new LiveSession();
  for (let n = 1; n <= 15; n += 1) session.add(done(n));
  assert.equal(session.add(done(15)), 0, "the same result again is not a new one");
  assert.equal(session.entries.length, 12);
  assert.deepEqual(session.entries.slice(0, 2).map((e) => e.file), ["000015.42.png", "000014.42.png"]);
  assert.equal(session.entries.at(-1).file, "000004.42.png");
});

test("a batch's outputs join the row, the last one first", () => {
  const session = new LiveSession();
  const outputs = [1, 2, 3].map((n) => ({ url: `/outputs/live/00000${n}.9.png`, seed: 9 + n, metadata: { live: true, prompt: "sun" } }));
  assert.equal(session.add({ ...done(3), outputs }), 3);
  assert.deepEqual(session.entries.map((e) => [e.file, e.seed]), [["000003.9.png", 12], ["000002.9.png", 11], ["000001.9.png", 10]]);
});

test("keep: once at a time, kept names its gallery copy, a failure can be retried", () => {
  const session = new LiveSession();
  session.add(done(1));
  assert.equal(session.keeping("000001.42.png"), true);
  assert.equal(session.keeping("000001.42.png"), false, "a keep already under way");
  session.failed("000001.42.png", "Not kept: gone");
  assert.equal(session.find("000001.42.png").state, LIVE.FAILED);
  assert.equal(session.keeping("000001.42.png"), true, "retry after a failure");
  session.kept("000001.42.png", { name: "000007.42.png", url: "/outputs/000007.42.png" });
  const entry = session.find("000001.42.png");
  assert.equal(entry.state, LIVE.KEPT);
  assert.equal(entry.keptName, "000007.42.png");
  assert.equal(entry.error, null);
  assert.equal(session.keeping("000001.42.png"), false, "kept twice");
  assert.equal(session.keeping("nothing.png"), false);
});
