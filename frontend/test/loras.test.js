// LoRA rows as data: weights, family fit, the generate payload, tags, and restoring from metadata.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  familyFits, loraRows, loraTag, lorasDefaults, lorasFromMetadata, lorasPayload, normalizeLoraState, normalizeWeight, withLora,
} from "../loras.js";

const LISTED = [
  { name: "ink.safetensors", family: "Stable Diffusion 1.x", size: 10, sha256: "aa" },
  { name: "xl/detail.safetensors", family: "Stable Diffusion XL", size: 10 },
  { name: "any.safetensors", family: null, size: 10 },
  { name: "broken.ckpt", family: null, size: 10, refused: "a pickle; LoRAs are read from .safetensors only" },
  { name: "lcm.safetensors", family: "Stable Diffusion 1.x", size: 10, defaults: { sampler: "lcm", steps: 4, cfg_scale: 1 } },
];

test("weights are clamped to -2..2 with two decimals; junk falls back", () => {
  assert.equal(normalizeWeight("0.5"), 0.5);
  assert.equal(normalizeWeight(3), 2);
  assert.equal(normalizeWeight(-7), -2);
  assert.equal(normalizeWeight(0.333333), 0.33);
  assert.equal(normalizeWeight("x"), 1);
  assert.equal(normalizeWeight(undefined, 0.4), 0.4);
});

test("stored state is cleaned up, and withLora changes one row", () => {
  assert.deepEqual(normalizeLoraState({ a: { enabled: true, weight: 9 }, b: "x", c: { enabled: "yes" } }),
    { a: { enabled: true, weight: 2 }, c: { enabled: false, weight: 1 } });
  assert.deepEqual(normalizeLoraState(null), {});
  const s = withLora({}, "ink.safetensors", { enabled: true });
  assert.deepEqual(s, { "ink.safetensors": { enabled: true, weight: 1 } });
  assert.deepEqual(withLora(s, "ink.safetensors", { weight: "0.25" })["ink.safetensors"], { enabled: true, weight: 0.25 });
});

test("a LoRA fits its family, the family's variants, and anything unknown", () => {
  assert.ok(familyFits("Stable Diffusion XL", "Stable Diffusion XL Turbo"));
  assert.ok(familyFits("Stable Diffusion 1.x", "Stable Diffusion 1.x inpainting"));
  assert.ok(familyFits("Stable Diffusion 2.x", "Stable Diffusion 2.x (768, v-prediction)"));
  assert.ok(!familyFits("Stable Diffusion XL", "Stable Diffusion 1.x"));
  assert.ok(familyFits(null, "Stable Diffusion 1.x"));
  assert.ok(familyFits("Stable Diffusion XL", null));
});

test("rows: refused and other-family LoRAs are not usable and say why; only enabled usable ones are sent", () => {
  const state = {
    "ink.safetensors": { enabled: true, weight: 0.5 },
    "xl/detail.safetensors": { enabled: true, weight: 1 },
    "broken.ckpt": { enabled: true, weight: 1 },
  };
  const rows = loraRows(LISTED, state, "Stable Diffusion 1.x");
  assert.deepEqual(rows.map((r) => [r.name, r.usable]), [
    ["ink.safetensors", true], ["xl/detail.safetensors", false], ["any.safetensors", true], ["broken.ckpt", false],
    ["lcm.safetensors", true],
  ]);
  assert.equal(rows[1].reason, "For Stable Diffusion XL; the model is Stable Diffusion 1.x.");
  assert.match(rows[3].reason, /pickle/);
  assert.deepEqual(lorasPayload(rows), [{ name: "ink.safetensors", weight: 0.5 }]);
  assert.deepEqual(rows[2], { name: "any.safetensors", family: null, enabled: false, weight: 1, usable: true, reason: "", defaults: null });
});

test("an enabled LoRA's defaults join the advice; a disabled one's do not", () => {
  const off = loraRows(LISTED, {}, "Stable Diffusion 1.x");
  assert.deepEqual(lorasDefaults(off), {});
  const on = loraRows(LISTED, { "lcm.safetensors": { enabled: true, weight: 1 } }, "Stable Diffusion 1.x");
  assert.deepEqual(lorasDefaults(on), { sampler: "lcm", steps: 4, cfg_scale: 1 });
  assert.deepEqual(lorasDefaults(loraRows(LISTED, { "lcm.safetensors": { enabled: true } }, "Stable Diffusion XL")), {});
});

test("tags read as A1111 writes them", () => {
  assert.equal(loraTag({ name: "ink.safetensors", weight: 0.5 }), "<lora:ink:0.5>");
  assert.equal(loraTag({ name: "styles/ink-v2.safetensors", weight: -1.25 }), "<lora:ink-v2:-1.25>");
  assert.equal(loraTag({ name: "x.safetensors", weight: 1 }), "<lora:x:1>");
});

test("restoring from metadata: recorded ones on (by SHA-256, then name), the rest off with their weights kept", () => {
  const state = { "any.safetensors": { enabled: true, weight: 0.7 } };
  const recorded = [
    { name: "renamed.safetensors", weight: 0.25, sha256: "aa" }, // the same file as ink, renamed since
    { name: "lcm.safetensors", weight: 1.5, sha256: "zz" },
    { name: "gone.safetensors", weight: 1, sha256: "bb" },
  ];
  const { state: next, missing } = lorasFromMetadata(recorded, LISTED, state);
  assert.deepEqual(next, {
    "any.safetensors": { enabled: false, weight: 0.7 },
    "ink.safetensors": { enabled: true, weight: 0.25 },
    "lcm.safetensors": { enabled: true, weight: 1.5 },
  });
  assert.deepEqual(missing, ["gone.safetensors"]);
  // An output made without LoRAs turns them all off.
  assert.deepEqual(lorasFromMetadata(undefined, LISTED, state).state, { "any.safetensors": { enabled: false, weight: 0.7 } });
});
