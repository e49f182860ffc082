// PNG text chunks read from real PNG bytes (png-bytes.js builds them as Pillow and A1111 write them).
import { test } from "node:test";
import assert from "node:assert/strict";
import { isPng, readPngSettings, readTextChunks } from "../png-info.js";
import { chunk, iTXt, png, tEXt, zTXt } from "./png-bytes.js";

const STUDIO = {
  prompt: "café at night ☕", negative_prompt: "blurry", seed: 123, strength: 0.6, steps: 20, sampler: "k_lms",
  cfg_scale: 2, width: 128, height: 128, mode: "img2img", model: { name: "demo", sha256: null }, loras: [],
};

test("tEXt, zTXt and iTXt (plain and compressed) all come back as written, in file order", async () => {
  const bytes = png(
    [tEXt("parameters", "un café, Steps: 3"), zTXt("Comment", "squeezed ü"), iTXt("plain", "ünïcode ☕")],
    [iTXt("img2img-studio", JSON.stringify(STUDIO), { compress: true })],
  );
  const { chunks, problems } = await readTextChunks(bytes);
  assert.deepEqual(problems, []);
  assert.deepEqual(chunks, [
    { keyword: "parameters", text: "un café, Steps: 3" },
    { keyword: "Comment", text: "squeezed ü" },
    { keyword: "plain", text: "ünïcode ☕" },
    { keyword: "img2img-studio", text: JSON.stringify(STUDIO) },
  ]);
});

test("the studio's compressed JSON chunk wins over A1111's text and is summarised", async () => {
  const bytes = png([tEXt("parameters", "other\nSteps: 5, Sampler: Euler, Seed: 9"), iTXt("img2img-studio", JSON.stringify(STUDIO), { compress: true })]);
  const found = await readPngSettings(bytes);
  assert.equal(found.kind, "studio");
  assert.deepEqual(found.meta, STUDIO);
  assert.match(found.summary, /^studio PNG: seed 123, strength 0\.6, 20 steps, k_lms, CFG 2, 128×128, model demo · "café at night ☕"$/);
  assert.deepEqual(found.problems, []);
});

test("a txt2img studio PNG says txt2img instead of a strength", async () => {
  const found = await readPngSettings(png([iTXt("img2img-studio", JSON.stringify({ ...STUDIO, mode: "txt2img" }))]));
  assert.match(found.summary, /seed 123, txt2img, 20 steps/);
});

test("malformed studio JSON falls back to A1111's parameters, saying why", async () => {
  const bytes = png([iTXt("img2img-studio", "{not json"), tEXt("parameters", "a hill\nSteps: 12, Sampler: Euler a, Seed: 5")]);
  const found = await readPngSettings(bytes);
  assert.equal(found.kind, "a1111");
  assert.equal(found.meta.steps, 12);
  assert.equal(found.meta.sampler, "euler_a");
  assert.deepEqual(found.problems, ["The PNG's img2img-studio settings are not valid JSON, so they were not used."]);
});

test("JSON that is not an object is refused the same way", async () => {
  const found = await readPngSettings(png([iTXt("img2img-studio", "[1, 2]")]));
  assert.equal(found.kind, null);
  assert.match(found.problems[0], /not a JSON object/);
});

test("a damaged chunk (bad CRC) is skipped with a sentence, the rest still read", async () => {
  const bytes = png([tEXt("parameters", "a hill\nSteps: 12, Sampler: Euler a, Seed: 5"), tEXt("img2img-studio", JSON.stringify(STUDIO))]);
  // Flip one byte of the studio chunk's text: its CRC no longer matches.
  const at = Buffer.from(bytes).indexOf(Buffer.from('"seed"'));
  bytes[at + 1] ^= 0x20;
  const found = await readPngSettings(bytes);
  assert.equal(found.kind, "a1111");
  assert.deepEqual(found.problems, ["A tEXt chunk is damaged (its checksum does not match) and was skipped."]);
});

test("a file cut short, a broken deflate stream and bad UTF-8 are problems, not exceptions", async () => {
  const full = png([tEXt("parameters", "x\nSteps: 1, Seed: 2, CFG scale: 3")]);
  const cut = await readPngSettings(full.subarray(0, 60));
  assert.equal(cut.kind, null);
  assert.match(cut.problems.join(" "), /cut short inside its tEXt chunk/);

  const garbage = chunk("zTXt", Buffer.concat([Buffer.from("parameters\0\0"), Buffer.from([1, 2, 3, 4, 5])]));
  const badZip = await readTextChunks(png([garbage]));
  assert.equal(badZip.chunks.length, 0);
  assert.match(badZip.problems[0], /^The parameters chunk could not be read \(.+\) and was skipped\.$/);

  const badUtf8 = chunk("iTXt", Buffer.concat([Buffer.from("img2img-studio\0\0\0\0\0"), Buffer.from([0xff, 0xfe, 0x7b])]));
  const found = await readPngSettings(png([badUtf8]));
  assert.equal(found.kind, null);
  assert.match(found.problems[0], /img2img-studio chunk could not be read/);

  const unknownMethod = chunk("iTXt", Buffer.concat([Buffer.from("parameters\0"), Buffer.from([1, 7]), Buffer.from("\0\0"), Buffer.from("x")]));
  assert.match((await readTextChunks(png([unknownMethod]))).problems[0], /unknown compression/);
});

test("not a PNG, and a PNG without settings: nothing found", async () => {
  const jpeg = new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0, 16, 74, 70, 73, 70, 0]);
  assert.equal(isPng(jpeg), false);
  assert.deepEqual(await readPngSettings(jpeg), { kind: null, meta: null, summary: "", unused: [], notes: [], problems: ["This file is not a PNG."] });
  const plain = await readPngSettings(png([tEXt("Software", "GIMP")]));
  assert.equal(plain.kind, null);
  assert.deepEqual(plain.problems, []);
  assert.equal(isPng(png()), true);
});

test("an ArrayBuffer works as well as a Uint8Array", async () => {
  const bytes = png([tEXt("parameters", "a hill\nSteps: 12, Sampler: Euler a, Seed: 5")]);
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  assert.equal((await readPngSettings(buffer)).meta.seed, 5);
});
