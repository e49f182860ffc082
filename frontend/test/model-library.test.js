// The models folder controller with a stub view and server: switching, a refused switch going
// back, model_error, LoRA rows, and "use these settings" choosing the recorded model.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ModelLibrary } from "../model-library.js";

const LISTING = {
  current: "a.safetensors",
  models: [
    { name: "a.safetensors", family: "Stable Diffusion 1.x", sha256: "sa" },
    { name: "b.safetensors", family: "Stable Diffusion XL" },
    { name: "bad.bin", family: null, refused: "a .bin file" },
  ],
  loras: [{ name: "ink.safetensors", family: "Stable Diffusion 1.x" }],
};

function make({ ack = (name) => ({ ok: true, model: name, family: "Stable Diffusion XL", defaults: {}, native_size: 1024 }) } = {}) {
  const shown = { picked: [], loras: [], said: [], switched: [] };
  const view = {
    showModels: (options, current) => shown.picked.push(current),
    showPicked: (name) => shown.picked.push(name),
    showLoras: (rows) => shown.loras.push(rows),
    showModelsError: (m) => shown.said.push(m),
  };
  const saved = [];
  const library = new ModelLibrary({
    view, store: { loadLoras: () => null, saveLoras: (s) => saved.push(s) },
    listModels: async () => structuredClone(LISTING),
    selectModel: async (name) => ack(name),
    onSwitched: (a) => shown.switched.push(a),
    say: (text) => shown.said.push(text),
  });
  return { library, shown, saved };
}

test("a switch selects the model; the LoRAs follow its family", async () => {
  const { library, shown } = make();
  await library.refresh();
  assert.equal(library.current, "a.safetensors");
  library.setLora("ink.safetensors", { enabled: true, weight: "0.5" });
  assert.deepEqual(library.payload(), [{ name: "ink.safetensors", weight: 0.5 }]);
  assert.ok(await library.choose("b.safetensors"));
  assert.equal(library.current, "b.safetensors");
  assert.equal(shown.switched.length, 1);
  assert.deepEqual(library.payload(), []); // an SD 1.x LoRA does not go to an SDXL model
  assert.equal(shown.loras.at(-1)[0].usable, false);
});

test("a refused switch puts the picker back and says why; model_error does too", async () => {
  const { library, shown } = make({ ack: () => ({ error: "bad.bin cannot be used: a .bin file" }) });
  await library.refresh();
  assert.equal(await library.choose("bad.bin"), false);
  assert.equal(shown.picked.at(-1), "a.safetensors");
  assert.match(shown.said.at(-1), /^Model not switched: bad\.bin cannot be used/);
  library.onError({ model: "b.safetensors", error: "truncated", current: "a.safetensors" });
  assert.equal(library.current, "a.safetensors");
  assert.equal(shown.said.at(-1), "b.safetensors could not be loaded: truncated Still using a.safetensors.");
});

test("another tab's switch (model_status current) moves the picker", async () => {
  const { library, shown } = make();
  await library.refresh();
  assert.equal(library.onStatus({ status: "loading", current: "b.safetensors" }), true);
  assert.equal(shown.picked.at(-1), "b.safetensors");
  assert.equal(library.onStatus({ status: "ready", current: "b.safetensors" }), false);
});

test("use these settings: the LoRAs come back and the recorded model is chosen, or said missing", async () => {
  const { library } = make();
  await library.refresh();
  let notes = await library.restore({ model: { name: "b.safetensors", sha256: null }, loras: [{ name: "ink.safetensors", weight: 0.25 }] });
  assert.deepEqual(notes, []);
  assert.equal(library.current, "b.safetensors");
  assert.deepEqual(library.state, { "ink.safetensors": { enabled: true, weight: 0.25 } });
  notes = await library.restore({ model: "gone.safetensors", loras: [{ name: "gone-lora.safetensors", weight: 1 }] });
  assert.deepEqual(notes, [
    "Not in the LoRA folder, so left out: gone-lora.safetensors.",
    "The model gone.safetensors that made this image is not in the models folder; the selected model stays.",
  ]);
});
