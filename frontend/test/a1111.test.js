// A1111's parameters text read as A1111 reads it, and mapped onto the studio's settings.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mapSampler, readA1111, splitParameters, withListedNames } from "../a1111.js";

// As A1111 1.10 writes it: quoted values hold commas and colons.
const A1111_TEXT = [
  "a tree on a hill, <lora:ink:0.5>, sunset",
  "golden light",
  "Negative prompt: blurry, night",
  "low quality",
  'Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 3735928559, Size: 512x768, Model hash: 0123456789, ' +
    'Model: dreamshaper_8, Denoising strength: 0.6, Clip skip: 2, Lora hashes: "ink: abcdef123456, other: 111111111111", ' +
    'ADetailer prompt: "a face, smiling", Version: v1.10.1',
].join("\n");

test("prompt lines, negative prompt lines and quoted values split as A1111 splits them", () => {
  const { prompt, negative, fields } = splitParameters(A1111_TEXT);
  assert.equal(prompt, "a tree on a hill, <lora:ink:0.5>, sunset\ngolden light");
  assert.equal(negative, "blurry, night\nlow quality");
  assert.equal(fields["Lora hashes"], "ink: abcdef123456, other: 111111111111");
  assert.equal(fields["ADetailer prompt"], "a face, smiling");
  assert.equal(fields["Size-1"], "512");
  assert.equal(fields["Size-2"], "768");
  assert.equal(fields.Version, "v1.10.1");
});

test("an A1111 text becomes the studio's settings; LoRA tags leave the prompt; unused fields are named", () => {
  const { meta, unused, notes } = readA1111(A1111_TEXT);
  assert.deepEqual(meta, {
    prompt: "a tree on a hill, sunset\ngolden light",
    negative_prompt: "blurry, night\nlow quality",
    loras: [{ name: "ink", weight: 0.5, a1111_hash: "abcdef123456" }],
    steps: 20, cfg_scale: 7, seed: 3735928559, width: 512, height: 768, strength: 0.6,
    sampler: "dpmpp_2m_karras",
    model: { name: "dreamshaper_8", sha256: null, a1111_hash: "0123456789" },
  });
  assert.deepEqual(unused, ["Clip skip", "ADetailer prompt", "Version"]);
  assert.deepEqual(notes, []);
});

test("the studio's own parameters line (our sampler names, no quotes needed) reads back", () => {
  const text = "fire <lora:ink:0.8>\nSteps: 10, Sampler: k_lms, CFG scale: 2, Seed: 42, Size: 128x128, Model hash: 9a8b7c6d5e, Model: demo, Denoising strength: 0.7";
  const { meta, unused } = readA1111(text);
  assert.equal(meta.prompt, "fire");
  assert.deepEqual(meta.loras, [{ name: "ink", weight: 0.8 }]);
  assert.equal(meta.sampler, "k_lms");
  assert.equal(meta.strength, 0.7);
  assert.deepEqual(unused, []);
});

test("a text with fewer than three settings is all prompt, as in A1111", () => {
  const { meta } = readA1111("just a prompt: with a colon\nand a second line");
  assert.equal(meta.prompt, "just a prompt: with a colon\nand a second line");
  assert.equal(meta.steps, undefined);
  assert.equal(meta.negative_prompt, "");
});

test("sampler names map onto ours, schedule types included; the rest say why", () => {
  const cases = [
    ["Euler a", "Automatic", "euler_a"], ["Euler", undefined, "euler"], ["LMS", "Uniform", "k_lms"], ["DDIM", undefined, "ddim"],
    ["PLMS", undefined, "pndm"], ["DPM++ 2M", undefined, "dpmpp_2m"], ["DPM++ 2M", "Automatic", "dpmpp_2m_karras"],
    ["DPM++ 2M", "Karras", "dpmpp_2m_karras"], ["DPM++ 2M Karras", undefined, "dpmpp_2m_karras"], ["LCM", undefined, "lcm"],
    ["euler_a", undefined, "euler_a"],
  ];
  for (const [label, schedule, ours] of cases) {
    const mapped = mapSampler(label, schedule);
    assert.equal(mapped.name, ours, `${label} / ${schedule}`);
    assert.equal(mapped.note, null, `${label} / ${schedule}`);
  }
  assert.match(mapSampler("DPM++ SDE Karras").note, /^Sampler "DPM\+\+ SDE Karras" has no match here \(k_lms, .*\); yours is kept\.$/);
  assert.equal(mapSampler("DPM++ SDE Karras").name, null);
  const karrasEuler = mapSampler("Euler", "Karras");
  assert.equal(karrasEuler.name, "euler");
  assert.equal(karrasEuler.note, 'Schedule type "Karras" is not available for euler here; its own schedule is used.');
});

test("out-of-range and malformed values are left out with a note; the page keeps its own", () => {
  const { meta, notes } = readA1111("x\nSteps: 500, CFG scale: abc, Seed: -1, Size: 4096x512, Denoising strength: 0.5");
  for (const key of ["steps", "cfg_scale", "seed", "width", "height"]) assert.equal(key in meta, false, key);
  assert.equal(meta.strength, 0.5);
  assert.deepEqual(notes, [
    'Steps "500" is not a whole number from 1 to 200; yours is kept.',
    'CFG scale "abc" is not a number from 0 to 50; yours is kept.',
    'Seed "-1" is not a whole number from 0 to 4294967295; yours is kept.',
    'Size-1 "4096" is not a whole number from 64 to 2048; yours is kept.',
  ]);
});

test("a hires-fix denoising strength is not an img2img strength", () => {
  const { meta, notes, unused } = readA1111("x\nSteps: 20, Seed: 1, Denoising strength: 0.4, Hires upscale: 2, Hires upscaler: Latent");
  assert.equal("strength" in meta, false);
  assert.match(notes[0], /hires fix/);
  assert.deepEqual(unused, ["Denoising strength", "Hires upscale", "Hires upscaler"]);
});

test("empty text is an error, not settings", () => {
  assert.deepEqual(readA1111("  \n "), { error: "The PNG's A1111 parameters are empty." });
});

test("A1111's model and LoRA names are found in the listing: by hash, then by file name", () => {
  const listing = {
    models: [
      { name: "sd15/dreamshaper_8.safetensors", sha256: "ffff" },
      { name: "other.safetensors", sha256: "0123456789abcdef" },
      { name: "refused.safetensors", refused: "a VAE" },
    ],
    loras: [{ name: "styles/ink.safetensors", sha256: "aa" }],
  };
  const { meta } = readA1111(A1111_TEXT);
  const byHash = withListedNames(meta, listing);
  assert.deepEqual(byHash.model, { name: "other.safetensors", sha256: "0123456789abcdef" });
  assert.deepEqual(byHash.loras, [{ name: "styles/ink.safetensors", weight: 0.5, a1111_hash: "abcdef123456" }]);
  const byName = withListedNames({ ...meta, model: { ...meta.model, a1111_hash: "9999999999" } }, listing);
  assert.deepEqual(byName.model, { name: "sd15/dreamshaper_8.safetensors", sha256: "ffff" });
  const missing = withListedNames({ ...meta, model: { name: "refused", a1111_hash: null } }, listing);
  assert.deepEqual(missing.model, { name: "refused", sha256: null });
});

test("a huge last line is read as prompt text (no settings line is that long)", () => {
  const { meta } = readA1111(`${"word ".repeat(400_000)}`);
  assert.equal(meta.steps, undefined);
  assert.equal(meta.prompt.length, 2_000_000 - 1);
  const spaces = readA1111(`a <lora:x:1>${" ".repeat(1_000_000)}b\nSteps: 1, Seed: 2, CFG scale: 3`);
  assert.equal(spaces.meta.prompt.startsWith("a"), true);
  assert.equal(spaces.meta.steps, 1);
});
