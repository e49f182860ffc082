// The gallery panel's controller against a fake outputs API (an in-memory
// folder answering as GET /api/outputs does) and views that record what they
// were asked to draw.
import { test } from "node:test";
import assert from "node:assert/strict";
import { GalleryPanel } from "../gallery-panel.js";
import { LIVE } from "../live-row.js";

const nameOf = (n) => `${String(n).padStart(6, "0")}.5.png`;

/** A folder of n outputs (prompt "fire" for even, "lake" for odd), newest first, with the routes' behaviour. */
function fakeServer(n) {
  let outputs = Array.from({ length: n }, (_, i) => n - i).map((k) => ({
    name: nameOf(k), url: `/outputs/${nameOf(k)}`, prompt: k % 2 ? "lake" : "fire", starred: false,
  }));
  const trash = [];
  const asked = [];
  const gates = []; // when set, listOutputsPage waits for the test to open the gate
  const api = {
    hold: false,
    async listOutputsPage(query) {
      asked.push(query);
      if (api.hold) await new Promise((resolve) => gates.push(resolve));
      const matching = outputs.filter((o) => (!query.q || o.prompt.includes(query.q)) && (!query.starred || o.starred));
      const offset = Number(query.offset);
      return { items: matching.slice(offset, offset + Number(query.limit)).map((o) => ({ ...o })), total: matching.length };
    },
    async trashOutput(name) {
      const found = outputs.find((o) => o.name === name);
      if (!found) throw new Error(`No output named ${name}.`);
      outputs = outputs.filter((o) => o !== found);
      trash.push(found);
      return { name, trashed: true };
    },
    async restoreOutput(name) {
      const found = trash.find((o) => o.name === name);
      outputs = [...outputs, found].sort((a, b) => b.name.localeCompare(a.name));
      return { name };
    },
    async starOutput(name, starred) {
      outputs.find((o) => o.name === name).starred = starred;
      return { name, starred };
    },
    async keepLiveResult(file) {
      if (file === "gone.png") throw new Error("No Live result named gone.png.");
      const name = nameOf(n + 1);
      outputs = [{ name, url: `/outputs/${name}`, prompt: "fire", starred: false }, ...outputs];
      return { name, url: `/outputs/${name}` };
    },
  };
  return { api, asked, gates, outputs: () => outputs };
}

function views() {
  const drawn = { list: null, notices: [], live: null, errors: [], scrolledUp: 0 };
  const view = {
    render: (items, options) => { drawn.list = { names: items.map((i) => i.name), items, ...options }; },
    showNotice: (text, options = {}) => drawn.notices.push({ text, ...options }),
    showError: (text) => drawn.errors.push(text),
    setLoading: () => {},
    scrollToTop: () => { drawn.scrolledUp += 1; },
  };
  const liveView = { render: (entries) => { drawn.live = entries.map((e) => ({ ...e })); } };
  return { view, liveView, drawn };
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

test("first page, load more, then a refresh keeps as many items as were shown, and the filter", async () => {
  const server = fakeServer(130);
  const { view, liveView, drawn } = views();
  const panel = new GalleryPanel({ api: server.api, view, liveView });
  await panel.refresh();
  assert.equal(drawn.list.names.length, 48);
  assert.equal(drawn.list.countText, "48 of 130");
  assert.equal(drawn.list.hasMore, true);
  await panel.loadMore();
  assert.equal(drawn.list.names.length, 96);
  assert.equal(drawn.list.names[48], nameOf(82));
  server.asked.length = 0;
  await panel.refresh({ highlight: nameOf(130) });
  assert.deepEqual(server.asked, [{ offset: "0", limit: "96" }]);
  assert.equal(drawn.list.names.length, 96);
  assert.equal(drawn.list.highlight, nameOf(130));
});

test("a filter starts over at the top; an answer for an older filter is dropped", async () => {
  const server = fakeServer(20);
  const { view, liveView, drawn } = views();
  const panel = new GalleryPanel({ api: server.api, view, liveView });
  await panel.refresh();
  server.api.hold = true;
  const slow = panel.setFilter({ q: "lake", starred: false });
  const fast = panel.setFilter({ q: "fire", starred: false });
  await flush();
  assert.equal(server.gates.length, 2);
  server.gates[1](); // "fire" answers first
  await fast;
  server.gates[0](); // then the stale "lake"
  await slow;
  assert.equal(drawn.list.names.length, 10);
  assert.ok(drawn.list.items.every((i) => i.prompt === "fire"));
  assert.equal(drawn.list.countText, "10 matching");
  assert.equal(drawn.scrolledUp, 2);
});

test("star: the item shows starred and the starred filter finds it", async () => {
  const server = fakeServer(5);
  const { view, liveView, drawn } = views();
  const panel = new GalleryPanel({ api: server.api, view, liveView });
  await panel.refresh();
  await panel.star(drawn.list.items[1], true);
  assert.deepEqual(drawn.list.items.map((i) => i.starred), [false, true, false, false, false]);
  await panel.setFilter({ q: "", starred: true });
  assert.deepEqual(drawn.list.names, [nameOf(4)]);
});

test("delete takes it out with an Undo notice; a load begun before it does not bring it back; undo does", async () => {
  const server = fakeServer(5);
  const { view, liveView, drawn } = views();
  const panel = new GalleryPanel({ api: server.api, view, liveView });
  await panel.refresh();
  server.api.hold = true;
  const loading = panel.refresh(); // asks the server before the delete lands
  await flush();
  server.api.hold = false;
  await panel.trash(drawn.list.items[0]);
  assert.equal(drawn.notices.at(-1).undo, true);
  assert.equal(drawn.notices.at(-1).text, "Deleted “lake”");
  server.gates[0](); // the old listing, which still has it
  await loading;
  assert.deepEqual(drawn.list.names, [4, 3, 2, 1].map(nameOf));
  assert.equal(drawn.list.countText, "4 images");
  await panel.undo();
  assert.deepEqual(drawn.list.names, [5, 4, 3, 2, 1].map(nameOf));
  assert.equal(drawn.notices.at(-1).text, "Restored “lake”");
});

test("a delete the server refuses leaves the item and says why", async () => {
  const server = fakeServer(2);
  const { view, liveView, drawn } = views();
  const panel = new GalleryPanel({ api: server.api, view, liveView });
  await panel.refresh();
  await panel.trash({ name: "999999.1.png" });
  assert.equal(drawn.list.names.length, 2);
  assert.deepEqual(drawn.notices.at(-1), { text: "Not deleted: No output named 999999.1.png.", tone: "error" });
});

test("Live results join the row, not the gallery; keep saves one and highlights it in the gallery", async () => {
  const server = fakeServer(3);
  const { view, liveView, drawn } = views();
  const panel = new GalleryPanel({ api: server.api, view, liveView });
  await panel.refresh();
  panel.addLive({ url: "/outputs/live/000001.9.png", seed: 9, metadata: { live: true, prompt: "fire" } });
  panel.addLive({ url: "/outputs/live/000002.9.png", seed: 9, metadata: { live: true, prompt: "fire" } });
  assert.deepEqual(drawn.live.map((e) => e.file), ["000002.9.png", "000001.9.png"]);
  assert.equal(drawn.list.names.length, 3, "the gallery is not touched");
  await panel.keep("000001.9.png");
  assert.deepEqual(drawn.live.map((e) => e.state), [LIVE.NEW, LIVE.KEPT]);
  assert.equal(drawn.list.names[0], nameOf(4));
  assert.equal(drawn.list.highlight, nameOf(4));
  assert.equal(panel.liveUrl("000001.9.png"), `/outputs/${nameOf(4)}`, "send to init uses the gallery copy once kept");
  assert.equal(panel.liveUrl("000002.9.png"), "/outputs/live/000002.9.png");
});

test("a keep that fails says so on the row and may be tried again", async () => {
  const server = fakeServer(1);
  const { view, liveView, drawn } = views();
  const panel = new GalleryPanel({ api: server.api, view, liveView });
  panel.addLive({ url: "/outputs/live/gone.png", metadata: { live: true } });
  await panel.keep("gone.png");
  assert.equal(drawn.live[0].state, LIVE.FAILED);
  assert.equal(drawn.live[0].error, "Not kept: No Live result named gone.png.");
});
