import { test } from "node:test";
import assert from "node:assert/strict";
import { scheduleChart } from "../chart.js";
import { FrameUrls, frameBlob } from "../frames.js";
import { PageStore } from "../store.js";

test("chart: one point per step, skipped region shaded, entry marked at the first taken step", () => {
  const chart = scheduleChart({ steps_total: 10, skipped: 3, taken: 7, sigmas: [10, 9, 8, 7, 6, 5, 4, 3, 2, 1] });
  assert.match(chart.svg, /^<svg class="chart"/);
  assert.match(chart.svg, /<rect class="chart-skipped" x="0" y="0" width="300"/);
  assert.match(chart.svg, /<line class="chart-entry" x1="350" x2="350"/);
  assert.equal((chart.svg.match(/ L/g) || []).length >= 10, true);
  assert.equal(chart.entrySigma, 7);
  assert.equal(chart.maxSigma, 10);
  assert.equal(chart.entryIndex, 3);
});

test("chart: nothing skipped has no shade; no sigmas falls back to timesteps", () => {
  const chart = scheduleChart({ steps_total: 4, skipped: 0, taken: 4, timesteps: [999, 666, 333, 1] });
  assert.doesNotMatch(chart.svg, /chart-skipped/);
  assert.equal(chart.maxSigma, null);
  assert.equal(scheduleChart({ steps_total: 0 }).svg, "");
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
