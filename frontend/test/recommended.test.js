// A model's recommended settings, and the words the form shows when it differs from them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { recommendationText, recommendedSettings } from "../recommended.js";
import { DEFAULTS } from "../settings.js";

test("only the settings a model may recommend are kept", () => {
  assert.deepEqual(recommendedSettings({ cfg_scale: 2, strength: 0.1, prompt: "x" }), { cfg_scale: 2 });
  assert.deepEqual(recommendedSettings(undefined), {});
  assert.deepEqual(recommendedSettings("cfg 2"), {});
});

test("the advice names each recommendation the form does not follow, and is empty when it does", () => {
  assert.equal(recommendationText({ cfg_scale: 2 }, { ...DEFAULTS, cfg_scale: 7.5 }), "This model recommends CFG scale 2.");
  assert.equal(recommendationText({ cfg_scale: 2 }, { ...DEFAULTS, cfg_scale: 2 }), "");
  assert.equal(
    recommendationText({ cfg_scale: 2, steps: 30, sampler: "ddim" }, { ...DEFAULTS, cfg_scale: 7.5, steps: 20, sampler: "k_lms" }),
    "This model recommends CFG scale 2, steps 30 and sampler DDIM.",
  );
  assert.equal(recommendationText({}, DEFAULTS), "");
  assert.equal(
    recommendationText({ sampler: "lcm", min_taken_steps: 2 }, { ...DEFAULTS, sampler: "k_lms", min_taken_steps: 0 }),
    "This model recommends sampler LCM and at least 2 taken steps.",
  );
  assert.deepEqual(recommendedSettings({ min_taken_steps: 2, strength: 0.3 }), { min_taken_steps: 2 });
});

test("the advice joins the model's defaults, a switch's size and the enabled LoRAs' defaults (theirs win)", async () => {
  const { combinedAdvice } = await import("../recommended.js");
  const { advice, subject } = combinedAdvice({ cfg_scale: 7, sampler: "euler" }, { size: 1024, loraDefaults: { sampler: "lcm", steps: 4, junk: 1 } });
  assert.deepEqual(advice, { cfg_scale: 7, sampler: "lcm", width: 1024, height: 1024, steps: 4 });
  assert.equal(subject, "This model and its LoRAs recommend");
  assert.equal(combinedAdvice({ cfg_scale: 2 }).subject, "This model recommends");
  assert.equal(
    recommendationText(advice, { ...DEFAULTS, cfg_scale: 7, sampler: "k_lms", steps: 4, width: 512, height: 512 }, subject),
    "This model and its LoRAs recommend sampler LCM and size 1024×1024.",
  );
  assert.equal(recommendationText(advice, { ...DEFAULTS, cfg_scale: 7, sampler: "lcm", steps: 4, width: 1024, height: 1024 }), "");
});
