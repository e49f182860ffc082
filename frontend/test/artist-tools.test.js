// The artist-tools controller with stub views and studio: which files ask about their
// settings, what each choice does, and what the lightbox compares an image with.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ArtistTools } from "../artist-tools.js";
import { iTXt, png, tEXt } from "./png-bytes.js";

const A1111 = "a hill <lora:ink:0.5>\nSteps: 12, Sampler: Euler a, CFG scale: 3.5, Seed: 5, Model hash: 0123456789, Model: dream, Clip skip: 2";

function setup({ choice = "both", display = {}, jobInits = {} } = {}) {
  const calls = [];
  const messages = [];
  const studio = {
    display: { batch: null, stripJob: null, run: null, ...display },
    library: {
      listing: null,
      refresh: async () => ({ models: [{ name: "sd/dream.safetensors", sha256: "0123456789ffff" }], loras: [{ name: "ink.safetensors" }] }),
    },
    jobInit: (id) => jobInits[id],
    uploadFile: async (file, source) => calls.push(["upload", file.name, source]) && true,
    restoreSettings: async (meta) => {
      calls.push(["restore", meta]);
      return ["a library note"];
    },
    sendToInit: async (url, options) => calls.push(["send", url, options]),
  };
  const asked = [];
  const lightboxCalls = [];
  const tools = new ArtistTools({
    studio,
    view: { showJobMessage: (lines) => messages.push(lines), largeShown: () => tools.shown, showUploadError: (t) => messages.push([t]) },
    lightbox: {
      open: (what) => lightboxCalls.push(["open", what]) && 7,
      showCompare: (token, url) => lightboxCalls.push(["compare", token, url]),
      showNoCompare: (token, why) => lightboxCalls.push(["none", token, why]),
    },
    pngDialog: { ask: async (found) => asked.push(found) && choice },
    imageToPng: async (url) => new Blob([url]),
  });
  return { tools, calls, messages, asked, lightboxCalls };
}

const file = (bytes, name = "x.png") => new File([bytes], name, { type: "image/png" });
const settled = () => new Promise((resolve) => setTimeout(resolve, 10));

test("a PNG without settings, and a JPEG, are uploaded as the init without a question", async () => {
  const { tools, calls, asked } = setup();
  await tools.takeImageFile(file(png([tEXt("Software", "GIMP")])));
  await tools.takeImageFile(new File([new Uint8Array([0xff, 0xd8, 0xff, 0xe0])], "y.jpg", { type: "image/jpeg" }));
  assert.deepEqual(asked, []);
  assert.deepEqual(calls, [["upload", "x.png", "upload"], ["upload", "y.jpg", "upload"]]);
});

test("A1111 parameters: Both restores the settings (names found in the listing) and then uploads", async () => {
  const { tools, calls, asked, messages } = setup({ choice: "both" });
  await tools.takeImageFile(file(png([tEXt("parameters", A1111)])));
  assert.equal(asked[0].kind, "a1111");
  assert.equal(calls.length, 2);
  const [[what, meta], upload] = calls;
  assert.equal(what, "restore");
  assert.deepEqual(meta.model, { name: "sd/dream.safetensors", sha256: "0123456789ffff" });
  assert.deepEqual(meta.loras, [{ name: "ink.safetensors", weight: 0.5 }]);
  assert.deepEqual(upload, ["upload", "x.png", "upload"]);
  const lines = messages[0].map((l) => (typeof l === "string" ? l : l.text));
  assert.deepEqual(lines, ["Settings restored from the A1111 PNG.", "Not used: Clip skip.", "a library note"]);
});

test("Restore settings leaves the init alone; Use as init only uploads; a dismissed dialog does nothing", async () => {
  const studioPng = file(png([iTXt("img2img-studio", JSON.stringify({ prompt: "p", seed: 3 }), { compress: true })]));
  for (const [choice, expected] of [["restore", ["restore"]], ["init", ["upload"]], [null, []]]) {
    const { tools, calls, asked } = setup({ choice });
    await tools.takeImageFile(studioPng);
    assert.equal(asked[0].kind, "studio");
    assert.deepEqual(calls.map((c) => c[0]), expected, String(choice));
  }
});

test("the lightbox compares an output with the init its metadata names; txt2img says why not", async () => {
  const batch = {
    entries: [
      { url: "/outputs/000001.1.png", metadata: { mode: "img2img", init_image: { id: "abc", url: "/api/uploads/abc" } } },
      { url: "/outputs/000002.2.png", metadata: { mode: "txt2img", init_image: null } },
    ],
  };
  const { tools, lightboxCalls } = setup({ display: { batch } });
  tools.shown = { url: "/outputs/000001.1.png", kind: "output", caption: "Output" };
  tools.openLightbox();
  tools.shown = { url: "/outputs/000002.2.png", kind: "output", caption: "Output" };
  tools.openLightbox();
  await settled();
  assert.deepEqual(lightboxCalls[0], ["open", { url: "/outputs/000001.1.png", caption: "Output", after: "output" }]);
  const answers = lightboxCalls.filter(([kind]) => kind !== "open");
  assert.deepEqual(answers[0], ["compare", 7, "/api/uploads/abc"]);
  assert.equal(answers[1][0], "none");
  assert.match(answers[1][2], /txt2img/);
});

test("an output the page did not run is read from its own PNG", async () => {
  const bytes = png([iTXt("img2img-studio", JSON.stringify({ mode: "img2img", init_image: { id: "zz9" } }), { compress: true })]);
  globalThis.fetch = async () => ({ ok: true, blob: async () => new Blob([bytes]) });
  const { tools, lightboxCalls } = setup();
  tools.shown = { url: "/outputs/000009.9.png", kind: "output", caption: "" };
  tools.openLightbox();
  await settled();
  assert.deepEqual(lightboxCalls.at(-1), ["compare", 7, "/api/uploads/zz9"]);
});

test("a strip frame compares with the init its job was sent with", async () => {
  const cases = [[{ J1: "up1" }, ["compare", 7, "/api/uploads/up1"]], [{ J1: null }, "none"]];
  for (const [jobInits, expected] of cases) {
    const { tools, lightboxCalls } = setup({ display: { stripJob: { jobId: "J1", item: 0 }, run: { mode: "img2img" } }, jobInits });
    tools.shown = { url: "blob:frame", kind: "preview", caption: "Step 2" };
    tools.openLightbox();
    await settled();
    const last = lightboxCalls.at(-1);
    if (expected === "none") assert.equal(last[0], "none");
    else assert.deepEqual(last, expected);
    assert.equal(lightboxCalls[0][1].after, "preview");
  }
});

test("send to init: an output by its URL, a full decode as a PNG made from what is shown", async () => {
  const { tools, calls } = setup();
  tools.shown = { url: "/outputs/000001.1.png", kind: "output", caption: "" };
  await tools.sendShownToInit();
  tools.shown = { url: "blob:decoded", kind: "decoded", caption: "" };
  await tools.sendShownToInit();
  assert.deepEqual(calls[0], ["send", "/outputs/000001.1.png", undefined]);
  assert.equal(calls[1][1], "blob:decoded");
  assert.equal(calls[1][2].label, "The full decode shown large");
  assert.equal(await calls[1][2].image.text(), "blob:decoded");
});
