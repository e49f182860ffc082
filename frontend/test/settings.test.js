import { test } from "node:test";
import assert from "node:assert/strict";
import { DEFAULTS, generatePayload, normalizeSettings, planQuery, settingsFromMetadata } from "../settings.js";
import { describeInit, fitInside, workingSize } from "../fit.js";

test("settings from form strings are coerced and clamped", () => {
  const s = normalizeSettings({ strength: "0.4", steps: "500", seed: "-3", width: "500", height: "abc", sampler: "nope", random_seed: false });
  assert.equal(s.strength, 0.4);
  assert.equal(s.steps, 200);
  assert.equal(s.seed, 0);
  assert.equal(s.width, 504, "snapped to a multiple of 8");
  assert.equal(s.height, DEFAULTS.height);
  assert.equal(s.sampler, "k_lms");
  assert.equal(s.random_seed, false);
});

test("generate payload: img2img with a fixed seed", () => {
  const p = generatePayload({ ...DEFAULTS, prompt: "a cat", strength: 0.7, steps: 10, random_seed: false, seed: 7 }, "abc123", { supersede: true });
  assert.deepEqual(p, {
    prompt: "a cat", negative_prompt: "", strength: 0.7, steps: 10, exact_steps: false, cfg_scale: 7.5,
    sampler: "k_lms", width: 512, height: 512, fit: true, preview: "latent", preview_kind: "x_t",
    supersede: true, init_image: "abc123", seed: 7,
  });
});

test("generate payload: txt2img omits init_image, a random seed omits seed", () => {
  const p = generatePayload({ ...DEFAULTS, exact_steps: true }, null);
  assert.equal("init_image" in p, false);
  assert.equal("seed" in p, false);
  assert.equal(p.exact_steps, false, "exact steps only means something with an init image");
  assert.equal(p.supersede, false);
});

test("plan query: txt2img asks for strength 1's plan", () => {
  assert.deepEqual(planQuery({ ...DEFAULTS, steps: 10, strength: 0.4 }, true), { steps: "10", strength: "0.4", sampler: "k_lms" });
  assert.deepEqual(planQuery({ ...DEFAULTS, steps: 10, strength: 0.4 }, false), { steps: "10", strength: "1", sampler: "k_lms" });
  assert.equal(planQuery({ ...DEFAULTS, exact_steps: true }, true).exact_steps, "1");
});

test("use these settings: metadata restores, live and preview kind stay", () => {
  const current = { ...DEFAULTS, live: true, preview_kind: "x0" };
  const s = settingsFromMetadata({ prompt: "p", strength: 0.35, steps: 12, seed: 99, sampler: "ddim", width: 128, height: 96, fit: false }, current);
  assert.equal(s.prompt, "p");
  assert.equal(s.strength, 0.35);
  assert.equal(s.seed, 99);
  assert.equal(s.random_seed, false);
  assert.equal(s.sampler, "ddim");
  assert.equal(s.fit, false);
  assert.equal(s.live, true);
  assert.equal(s.preview_kind, "x0");
});

test("fit shrinks to fit inside, never enlarges, rounds down to 8", () => {
  assert.deepEqual(fitInside(1024, 768, 512, 512), { width: 512, height: 384 });
  assert.deepEqual(fitInside(100, 50, 512, 512), { width: 96, height: 48 });
  assert.deepEqual(workingSize({ width: 1001, height: 333 }, { width: 512, height: 512, fit: false }), { width: 1000, height: 328 });
  assert.deepEqual(workingSize(null, { width: 256, height: 192, fit: true }), { width: 256, height: 192 });
});

test("init description: the size line and warnings", () => {
  const d = describeInit({ width: 1024, height: 768 }, { width: 512, height: 512, fit: true }, 512);
  assert.equal(d.line, "1024×768 → fit inside 512×512 → 512×384");
  assert.equal(d.warnings.length, 1);
  assert.match(d.warnings[0], /smaller than the model's native 512×512/);
  const alpha = describeInit({ width: 128, height: 128, has_alpha: true }, { width: 128, height: 128, fit: true }, 128);
  assert.deepEqual(alpha.warnings.length, 1);
  assert.match(alpha.warnings[0], /transparent areas will be repainted/);
  assert.match(describeInit(null, { width: 128, height: 128 }, 128).line, /text-to-image at 128×128/);
  assert.match(describeInit({ width: 130, height: 130 }, { width: 512, height: 512, fit: false }, 128).line, /rounded down.*128×128/);
});

test("init description: sizes that need no change, and a restored init without a size", () => {
  assert.equal(describeInit({ width: 128, height: 128 }, { width: 128, height: 128, fit: true }, 128).line, "128×128 → used as is (fits inside 128×128)");
  assert.equal(describeInit({ width: 128, height: 96 }, { width: 512, height: 512, fit: false }, 64).line, "128×96 → used as is, fit off");
  const restored = describeInit({ id: "766363d4dee8d4ee" }, { width: 128, height: 128, fit: true }, 128);
  assert.match(restored.line, /766363d4…/);
  assert.deepEqual(restored.warnings, []);
});
