// The models listing: the picker's options, finding a recorded model, the gallery's model line.
import { test } from "node:test";
import assert from "node:assert/strict";
import { findRecordedModel, modelLine, modelOptions, recordedName, sizeText } from "../models.js";
import { loraTag } from "../loras.js";

const LISTING = {
  current: "sd15.safetensors",
  models: [
    { name: "demo", family: null, kind: "folder", size: 1000, source: "embedded" },
    { name: "sd15.safetensors", family: "Stable Diffusion 1.x", kind: "file", size: 2_132_674_318, sha256: "s15" },
    { name: "sd_xl_base_1.0.safetensors", family: "Stable Diffusion XL", kind: "file", size: 6_900_000_000 },
    { name: "old.ckpt", family: null, kind: "file", size: 10, detail: "detected at load" },
    { name: "flux.safetensors", family: null, kind: "file", size: 10, refused: "a Flux model; this studio runs SD 1.x, 2.x and SDXL" },
  ],
  loras: [],
};

test("options show the family, disable refused files with the reason", () => {
  const options = modelOptions(LISTING);
  assert.deepEqual(options.map((o) => o.label), [
    "demo — built-in demo",
    "sd15.safetensors — Stable Diffusion 1.x",
    "sd_xl_base_1.0.safetensors — Stable Diffusion XL",
    "old.ckpt — detected at load",
    "flux.safetensors — refused: a Flux model; this studio runs SD 1.x, 2.x and SDXL",
  ]);
  assert.deepEqual(options.map((o) => o.disabled), [false, false, false, false, true]);
  assert.equal(options[1].title, "Stable Diffusion 1.x · 2.1 GB");
  assert.equal(options[4].title, "a Flux model; this studio runs SD 1.x, 2.x and SDXL");
  assert.deepEqual(modelOptions(null), []);
});

test("a recorded model is found by SHA-256 first, then by name; old outputs name it as a string", () => {
  assert.equal(findRecordedModel(LISTING, { name: "renamed.safetensors", sha256: "s15" }).entry.name, "sd15.safetensors");
  assert.equal(findRecordedModel(LISTING, { name: "sd_xl_base_1.0.safetensors", sha256: "other" }).entry.name,
    "sd_xl_base_1.0.safetensors");
  assert.equal(findRecordedModel(LISTING, "sd_xl_base_1.0.safetensors").entry.name, "sd_xl_base_1.0.safetensors");
  assert.match(findRecordedModel(LISTING, { name: "gone.safetensors", sha256: "x" }).missing, /gone\.safetensors .*not in the models folder/);
  assert.match(findRecordedModel(LISTING, "flux.safetensors").missing, /cannot be used: a Flux model/);
  assert.equal(recordedName({ name: "a", sha256: "b" }), "a");
  assert.equal(recordedName(7), null);
});

test("the gallery's line names the model and each LoRA with its weight", () => {
  const meta = { model: { name: "sd15.safetensors", sha256: "s15" }, loras: [{ name: "ink.safetensors", weight: 0.5, sha256: "a" }] };
  assert.equal(modelLine(meta, loraTag), "sd15.safetensors · <lora:ink:0.5>");
  assert.equal(modelLine({ model: "old-name.ckpt" }, loraTag), "old-name.ckpt");
  assert.equal(modelLine({}, loraTag), "");
});

test("sizes read as people write them", () => {
  assert.equal(sizeText(9_486_862), "9.5 MB");
  assert.equal(sizeText(0), "");
  assert.equal(sizeText(512), "512 B");
});
