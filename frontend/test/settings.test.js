import { test } from "node:test";
import assert from "node:assert/strict";
import { DEFAULTS, LIMITS, applyLimits, generatePayload, parseStrengthList, normalizeSettings, planQuery, settingsFromMetadata } from "../settings.js";
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
  const p = generatePayload({ ...DEFAULTS, prompt: "a cat", strength: 0.7, steps: 10, random_seed: false, seed: 7 }, "abc123");
  assert.deepEqual(p, {
    prompt: "a cat", negative_prompt: "", strength: 0.7, steps: 10, exact_steps: false, min_taken_steps: 0, cfg_scale: 7.5,
    sampler: "k_lms", width: 512, height: 512, fit: true, init_image: "abc123", seed: 7, variation_amount: 0, iterations: 1,
    save_intermediates: "off",
  });
});

test("generate payload: the server decides what the previews show (no preview, no preview_kind)", () => {
  const p = generatePayload({ ...DEFAULTS }, "abc");
  assert.equal("preview" in p, false);
  assert.equal("preview_kind" in p, false);
});

test("generate payload: txt2img omits init_image, a random seed omits seed", () => {
  const p = generatePayload({ ...DEFAULTS, exact_steps: true }, null);
  assert.equal("init_image" in p, false);
  assert.equal("seed" in p, false);
  assert.equal(p.exact_steps, false, "exact steps only means something with an init image");
  assert.equal("supersede" in p, false, "a second Generate queues behind the first");
});

test("generate payload: a batch sends batch_size; a Live run is one take marked live; a sweep is no batch", () => {
  assert.equal(generatePayload({ ...DEFAULTS, batch_size: 4 }, "abc").batch_size, 4);
  assert.equal("batch_size" in generatePayload({ ...DEFAULTS, batch_size: 1 }, "abc"), false);
  const live = generatePayload({ ...DEFAULTS, batch_size: 4 }, "abc", { live: true });
  assert.equal(live.live, true);
  assert.equal("batch_size" in live, false);
  assert.equal("batch_size" in generatePayload({ ...DEFAULTS, batch_size: 4 }, "abc", { strengths: [0.2, 0.4] }), false);
  assert.equal(normalizeSettings({ batch_size: 99 }).batch_size, 16);
  assert.equal(normalizeSettings({ batch_size: "x" }).batch_size, 1);
});

test("plan query: txt2img asks for strength 1's plan", () => {
  assert.deepEqual(planQuery({ ...DEFAULTS, steps: 10, strength: 0.4 }, true),
    { steps: "10", strength: "0.4", sampler: "k_lms", min_taken_steps: "0" });
  assert.deepEqual(planQuery({ ...DEFAULTS, steps: 10, strength: 0.4 }, false),
    { steps: "10", strength: "1", sampler: "k_lms", min_taken_steps: "0" });
  assert.equal(planQuery({ ...DEFAULTS, exact_steps: true }, true).exact_steps, "1");
});

test("at least N taken steps: a whole number 0..200, in every plan query and generate payload", () => {
  assert.equal(normalizeSettings({ min_taken_steps: "6" }).min_taken_steps, 6);
  assert.equal(normalizeSettings({ min_taken_steps: 3.6 }).min_taken_steps, 4);
  assert.equal(normalizeSettings({ min_taken_steps: -2 }).min_taken_steps, 0);
  assert.equal(normalizeSettings({ min_taken_steps: 999 }).min_taken_steps, 200);
  assert.equal(normalizeSettings({ min_taken_steps: "many" }).min_taken_steps, 0);
  // Sent even at 0: left out, the server would use the model's recommended minimum instead.
  assert.equal(planQuery({ ...DEFAULTS, min_taken_steps: 0 }, true).min_taken_steps, "0");
  assert.equal(planQuery({ ...DEFAULTS, min_taken_steps: 10 }, true).min_taken_steps, "10");
  assert.equal(generatePayload({ ...DEFAULTS, min_taken_steps: 10 }, "abc").min_taken_steps, 10);
  assert.equal(generatePayload({ ...DEFAULTS, min_taken_steps: 0 }, null).min_taken_steps, 0);
  // A saved output brings its minimum back; an older one without it means off.
  assert.equal(settingsFromMetadata({ min_taken_steps: 8 }, { ...DEFAULTS, min_taken_steps: 2 }).min_taken_steps, 8);
  assert.equal(settingsFromMetadata({}, { ...DEFAULTS, min_taken_steps: 2 }).min_taken_steps, 0);
});

test("use these settings: metadata restores, live stays", () => {
  const current = { ...DEFAULTS, live: true };
  const s = settingsFromMetadata({ prompt: "p", strength: 0.35, steps: 12, seed: 99, sampler: "ddim", width: 128, height: 96, fit: false }, current);
  assert.equal(s.prompt, "p");
  assert.equal(s.strength, 0.35);
  assert.equal(s.seed, 99);
  assert.equal(s.random_seed, false);
  assert.equal(s.sampler, "ddim");
  assert.equal(s.fit, false);
  assert.equal(s.live, true);
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
  assert.equal(d.inpaint, false);
  // Transparency is no warning any more: it means inpainting, said by the notice.
  const alpha = describeInit({ width: 128, height: 128, has_alpha: true }, { width: 128, height: 128, fit: true }, 128);
  assert.deepEqual(alpha.warnings, []);
  assert.equal(alpha.inpaint, true);
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

test("sweep list: commas or spaces, 2 to 8 strengths from 0 to 1", async () => {
  const { parseStrengthList } = await import("../settings.js");
  assert.deepEqual(parseStrengthList("0.2, 0.4, 0.6, 0.8"), { values: [0.2, 0.4, 0.6, 0.8] });
  assert.deepEqual(parseStrengthList(" .3 .9 "), { values: [0.3, 0.9] });
  assert.match(parseStrengthList("0.5").error, /2 to 8 strengths/);
  assert.match(parseStrengthList("0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9").error, /2 to 8/);
  assert.match(parseStrengthList("0.2, 1.5").error, /"1.5" is not a strength from 0 to 1/);
  assert.match(parseStrengthList("0.2, abc").error, /"abc"/);
});

test("generate payload: variations, iterations, intermediates and a sweep", () => {
  const s = { ...DEFAULTS, variation_amount: 0.3, iterations: 3, save_intermediates: "vae", with_variations: [[11, 0.2]] };
  const p = generatePayload(s, "abc");
  assert.equal(p.variation_amount, 0.3);
  assert.equal(p.iterations, 3);
  assert.equal(p.save_intermediates, "vae");
  assert.deepEqual(p.with_variations, [[11, 0.2]]);
  assert.equal("strengths" in p, false);
  const sweep = generatePayload(s, "abc", { strengths: [0.2, 0.4] });
  assert.deepEqual(sweep.strengths, [0.2, 0.4]);
  assert.equal(sweep.iterations, 1, "a sweep is not combined with iterations");
  assert.equal("with_variations" in generatePayload(DEFAULTS, "abc"), false);
});

test("new settings are clamped; a broken variation list is dropped", () => {
  const s = normalizeSettings({ variation_amount: "1.7", iterations: "40", save_intermediates: "gif", with_variations: [[1, 0.5], [2]] });
  assert.equal(s.variation_amount, 1);
  assert.equal(s.iterations, 16);
  assert.equal(s.save_intermediates, "off");
  assert.deepEqual(s.with_variations, []);
  assert.deepEqual(normalizeSettings({ with_variations: [[1, 0.5], ["2", "0.25"]] }).with_variations, [[1, 0.5], [2, 0.25]]);
  assert.equal(normalizeSettings({}).sweep_strengths, "0.2, 0.4, 0.6, 0.8");
});

test("use these settings: an output's variation list, amount and iterations come back", () => {
  const current = { ...DEFAULTS, save_intermediates: "preview", sweep_strengths: "0.1, 0.9", variation_amount: 0.5, iterations: 4 };
  // The server records each output in single-output form: its full variation list, amount 0, 1 iteration.
  const s = settingsFromMetadata({ seed: 42, with_variations: [[1234, 0.3]], variation_amount: 0, iterations: 1 }, current);
  assert.deepEqual(s.with_variations, [[1234, 0.3]]);
  assert.equal(s.variation_amount, 0);
  assert.equal(s.iterations, 1);
  assert.equal(s.seed, 42);
  assert.equal(s.save_intermediates, "preview", "where files go is a choice of now, not of the image");
  assert.equal(s.sweep_strengths, "0.1, 0.9");
  assert.equal(settingsFromMetadata({ seed: 5, strengths: [0.3, 0.6] }, current).sweep_strengths, "0.3, 0.6");
  assert.equal(settingsFromMetadata({ seed: 5, strengths: [] }, current).sweep_strengths, "0.1, 0.9");
  const older = settingsFromMetadata({ seed: 1 }, current);
  assert.deepEqual(older.with_variations, []);
  assert.equal(older.variation_amount, 0);
  assert.equal(older.iterations, 1);
});

test("the server's limits replace the page's: batch, iterations, steps and sweep follow /api/health", () => {
  const before = { ...LIMITS };
  try {
    applyLimits({ steps: [1, 150], iterations: [1, 8], batch_size: [1, 4], sweep: [2, 6], seed: [0, 2 ** 32 - 1], junk: 1 });
    assert.equal(normalizeSettings({ batch_size: 9 }).batch_size, 4);
    assert.equal(normalizeSettings({ iterations: 9 }).iterations, 8);
    assert.equal(normalizeSettings({ steps: 199 }).steps, 150);
    assert.match(parseStrengthList("0.1,0.2,0.3,0.4,0.5,0.6,0.7").error, /2 to 6 strengths/);
    applyLimits({ steps: "lots", batch_size: [1] }); // malformed: nothing changes
    assert.equal(LIMITS.steps, 150);
    assert.equal(LIMITS.batch_size, 4);
  } finally {
    Object.assign(LIMITS, before);
  }
});
