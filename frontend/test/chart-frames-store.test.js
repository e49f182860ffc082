import { test } from "node:test";
import assert from "node:assert/strict";
import { formatSigma, noiseLevels } from "../chart.js";
import { FrameUrls, frameBlob } from "../frames.js";
import { PageStore } from "../store.js";

test("noise levels: one bar per step, as a share of the largest sigma; the init enters at the first taken step", () => {
  const noise = noiseLevels({ steps_total: 10, skipped: 3, taken: 7, sigmas: [10, 9, 8, 7, 6, 5, 4, 3, 2, 1] });
  assert.deepEqual(noise.levels, [1, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]);
  assert.equal(noise.maxSigma, 10);
  assert.equal(noise.entryIndex, 3);
  assert.equal(noise.entrySigma, 7);
});

test("noise levels: no sigmas falls back to timesteps (no sigma to name); txt2img has no entry", () => {
  const noise = noiseLevels({ steps_total: 4, skipped: 0, taken: 4, timesteps: [1000, 750, 500, 0] });
  assert.deepEqual(noise.levels, [1, 0.75, 0.5, 0]);
  assert.equal(noise.maxSigma, null);
  assert.equal(noise.entrySigma, null);
  assert.equal(noise.entryIndex, 0);
  assert.equal(noiseLevels({ steps_total: 4, skipped: 0, taken: 4, sigmas: [4, 3, 2, 1] }, { txt2img: true }).entryIndex, -1);
  assert.deepEqual(noiseLevels({ steps_total: 0 }).levels, []);
  assert.equal(noiseLevels({ steps_total: 3, skipped: 3, taken: 0, sigmas: [3, 2, 1] }).entryIndex, -1, "nothing taken: nothing enters");
});

test("sigma labels keep three significant figures", () => {
  assert.deepEqual([14.61, 4.9234, 0.02917].map(formatSigma), ["14.6", "4.92", "0.029"]);
});

test("frames: object URLs from bytes, older generations revoked, current kept", () => {
  const revoked = [];
  let n = 0;
  const urlApi = { createObjectURL: () => `blob:${++n}`, revokeObjectURL: (u) => revoked.push(u) };
  const frames = new FrameUrls(urlApi);
  frames.nextGeneration();
  const a = frames.fromStep({ image: new Uint8Array([1, 2, 3]).buffer, mime: "image/png" });
  frames.nextGeneration();
  const b = frames.fromStep({ image: new Uint8Array([4]), mime: "image/webp" });
  assert.equal(frames.fromStep({ mime: "image/png" }), null, "no image, no URL");
  frames.revokeOlder();
  assert.deepEqual(revoked, [a]);
  frames.revokeAll();
  assert.deepEqual(revoked, [a, b]);
  assert.equal(frames.size, 0);
});

test("frame blobs carry the mime type", () => {
  const blob = frameBlob({ image: new Uint8Array([137, 80, 78, 71]), mime: "image/png" });
  assert.equal(blob.type, "image/png");
  assert.equal(blob.size, 4);
});

test("a step's x0 picture is its own blob; a step without one has none", () => {
  const step = { image: new Uint8Array([1]), mime: "image/jpeg", x0_image: new Uint8Array([2, 3]), x0_width: 64, x0_height: 64 };
  assert.equal(frameBlob(step).size, 1);
  assert.equal(frameBlob(step, "x0").size, 2);
  assert.equal(frameBlob(step, "x0").type, "image/jpeg");
  assert.equal(frameBlob({ image: new Uint8Array([1]), mime: "image/jpeg" }, "x0"), null);
});

test("page store round-trips settings and survives broken storage", () => {
  const data = new Map();
  const storage = { getItem: (k) => data.get(k) ?? null, setItem: (k, v) => data.set(k, v), removeItem: (k) => data.delete(k) };
  const store = new PageStore(storage);
  assert.equal(store.loadSettings().stored, false);
  store.saveSettings({ strength: 0.4, steps: 10 });
  const { settings, stored } = store.loadSettings();
  assert.equal(stored, true);
  assert.equal(settings.strength, 0.4);
  store.saveInit({ id: "abc", width: 128, height: 128 });
  assert.equal(store.loadInit().id, "abc");
  store.saveInit(null);
  assert.equal(store.loadInit(), null);

  const broken = new PageStore({ getItem: () => "{not json", setItem: () => { throw new Error("quota"); }, removeItem: () => {} });
  assert.equal(broken.loadSettings().stored, false);
  broken.saveSettings({ strength: 0.5 }); // does not throw
  assert.equal(new PageStore(null).loadInit(), null);
});
