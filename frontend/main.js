// Wiring only: build the pieces, connect their events, start.

import { io } from "/vendor/socket.io.esm.min.js";
import { ArtistTools } from "./artist-tools.js";
import { DrawingPad, PALETTE } from "./canvas.js";
import { imageSize, thumbnailDataUrl } from "./image-files.js";
import { Controls } from "./controls.js";
import * as api from "./api.js";
import { GalleryPanel } from "./gallery-panel.js";
import { GalleryView } from "./gallery-view.js";
import { LibraryView } from "./library-view.js";
import { Lightbox } from "./lightbox.js";
import { LiveRowView } from "./live-row-view.js";
import { ModelLibrary } from "./model-library.js";
import { OutputsView } from "./outputs-view.js";
import { PngInfoDialog } from "./png-info-view.js";
import { connectStudio } from "./socket.js";
import { QueueView } from "./queue-view.js";
import { PageStore } from "./store.js";
import { StripView } from "./strip-view.js";
import { Studio } from "./studio.js";
import { StudioView } from "./view.js";
import { WorkersView } from "./workers-view.js";

const $ = (id) => document.getElementById(id);
const store = new PageStore();
const view = new StudioView(document);
let studio = null;

const pad = new DrawingPad($("pad"), {
  overlay: $("pad-erased"),
  onChange: (change) => {
    $("pad-undo").disabled = !pad.canUndo;
    view.showPadNotice(pad.hasErased);
    store.saveSketch(pad.isBlank ? null : pad.toDataURL(), pad.overlayDataURL());
    studio?.onPadChange(change); // what the pad shows is the init: a person's edit makes it so
  },
});

const controls = new Controls($("settings"), {
  onChange: (settings, info) => studio.onSettingsChange(settings, info),
  onStrengthPreview: (settings) => studio.onStrengthPreview(settings),
  onStrengthCommit: (settings) => studio.onStrengthCommit(settings),
  onSubmit: () => studio.generate(),
  onSweep: () => studio.sweep(),
});

const stripView = new StripView(document, { onSelect: (selection) => studio.select(selection) });
const outputsView = new OutputsView(document, {
  onSelect: (selection) => studio.select(selection),
  onSend: (url) => studio.sendToInit(url),
});
const sendToInit = (url) => { if (url) studio.sendToInit(url); };
const gallery = new GalleryPanel({
  api,
  view: new GalleryView(document, {
    onUse: (item) => studio.useGalleryItem(item),
    onSendToInit: sendToInit,
    onStar: (item, starred) => gallery.star(item, starred),
    onDelete: (item) => gallery.trash(item),
    onUndo: () => gallery.undo(),
    onFilter: (filter) => gallery.setFilter(filter),
    onLoadMore: () => gallery.loadMore(),
    onRefresh: () => studio.refreshGallery(),
  }),
  liveView: new LiveRowView(document, {
    onKeep: (file) => gallery.keep(file),
    onSendToInit: (file) => sendToInit(gallery.liveUrl(file)),
  }),
});

let socket = null;
const library = new ModelLibrary({
  view: new LibraryView(document, {
    onPick: (name) => library.choose(name),
    onOpen: () => library.opened(),
    onLora: (name, change) => library.setLora(name, change),
  }),
  store,
  listModels: api.listModels,
  selectModel: (name) => socket.selectModel(name),
  onChanged: () => studio.recommend(),
  onSwitched: (ack) => studio.onModelSwitched(ack),
  say: (text, tone) => view.showJobMessage(text, tone),
});

const queueView = new QueueView(document, { onCancel: (key) => studio.cancel(key) });
studio = new Studio({
  view, controls, stripView, outputsView, gallery, store, pad, thumbnail: thumbnailDataUrl, imageSize, library, queueView,
  workersView: new WorkersView(document),
});
// A hidden page stops asking the server for its workers; shown again, it asks at once.
const pageVisible = () => studio.onPageVisible(document.visibilityState === "visible");
document.addEventListener("visibilitychange", pageVisible);
pageVisible(); // a tab opened in the background starts hidden
socket = connectStudio(io, {
  onConnection: (state, detail) => studio.onConnection(state, detail),
  onModelStatus: (status) => studio.onModelStatus(status),
  onModelError: (payload) => studio.onModelError(payload),
  onJobEvent: (name, payload) => studio.onJobEvent(name, payload),
});
studio.attachSocket(socket);
const tools = new ArtistTools({ studio, view, lightbox: new Lightbox(document), pngDialog: new PngInfoDialog(document) });

// --- init image: tabs, picker, drag-and-drop, paste, drawing ---------------------

$("tab-upload").addEventListener("click", () => view.showTab("upload"));
$("tab-draw").addEventListener("click", () => view.showTab("draw"));
// Arrow keys move between the two tabs (WAI-ARIA tabs pattern).
document.querySelector(".tabs").addEventListener("keydown", (e) => {
  if (e.key !== "ArrowLeft" && e.key !== "ArrowRight") return;
  const next = document.activeElement === $("tab-upload") ? "draw" : "upload";
  view.showTab(next);
  $(`tab-${next}`).focus();
});
$("upload").addEventListener("change", async (e) => {
  const file = e.target.files?.[0];
  if (file) await tools.takeImageFile(file);
  e.target.value = ""; // choosing the same file again still fires change
});
$("init-clear").addEventListener("click", () => studio.clearInit());
// The pad already shows the init: erasing there repaints those areas.
$("init-edit").addEventListener("click", async () => {
  if (!(await studio.editInit())) return;
  view.showTab("draw");
  setTool("eraser");
});

let dragDepth = 0;
document.addEventListener("dragenter", (e) => {
  if (!e.dataTransfer?.types?.includes("Files")) return;
  dragDepth += 1;
  view.showTab("upload");
  view.setDragOver(true);
});
document.addEventListener("dragleave", () => {
  dragDepth = Math.max(0, dragDepth - 1);
  if (dragDepth === 0) view.setDragOver(false);
});
document.addEventListener("dragover", (e) => {
  if (e.dataTransfer?.types?.includes("Files")) e.preventDefault();
});
document.addEventListener("drop", (e) => {
  const file = e.dataTransfer?.files?.[0];
  dragDepth = 0;
  view.setDragOver(false);
  if (!file) return;
  e.preventDefault();
  tools.takeImageFile(file);
});
document.addEventListener("paste", (e) => {
  const file = [...(e.clipboardData?.files ?? [])].find((f) => f.type.startsWith("image/"));
  if (!file) return; // plain text pastes into the prompt as usual
  e.preventDefault();
  view.showTab("upload");
  tools.takeImageFile(file);
});

const palette = $("palette");
for (const color of PALETTE) {
  const swatch = document.createElement("button");
  swatch.type = "button";
  swatch.className = "swatch";
  swatch.style.setProperty("--swatch", color);
  swatch.setAttribute("role", "radio");
  swatch.setAttribute("aria-label", color);
  swatch.setAttribute("aria-checked", String(color === pad.color));
  swatch.addEventListener("click", () => {
    pad.color = color;
    for (const s of palette.children) s.setAttribute("aria-checked", String(s === swatch));
  });
  palette.append(swatch);
}
function setTool(tool) {
  pad.tool = tool;
  view.showPadTool(tool);
}
$("tool-brush").addEventListener("click", () => setTool("brush"));
$("tool-eraser").addEventListener("click", () => setTool("eraser"));
$("brush-size").addEventListener("input", (e) => {
  pad.size = Number(e.target.value);
  $("brush-size-value").textContent = e.target.value;
});
$("pad-undo").addEventListener("click", () => pad.undo());
$("pad-clear").addEventListener("click", () => pad.clear());
$("pad-fill").addEventListener("click", () => pad.fill());
$("pad").addEventListener("keydown", (e) => {
  if ((e.ctrlKey || e.metaKey) && e.key === "z") pad.undo();
});
$("pad-undo").disabled = true;
setTool("brush");
const sketch = store.loadSketch();
if (sketch) pad.load(sketch, store.loadSketchMask()).catch(() => store.saveSketch(null));

// --- running ----------------------------------------------------------------------

$("cancel").addEventListener("click", () => studio.cancel());
// Escape cancels the run shown (a dialog open on top handles its own Escape and stops it).
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && !e.defaultPrevented && !e.repeat) studio.cancel();
});
$("full-decode").addEventListener("click", () => studio.fullDecode());

// --- the image shown large: send it to init, enlarge it (the lightbox and its compare) ------

$("viewer-send").addEventListener("click", () => tools.sendShownToInit());
$("viewer-enlarge").addEventListener("click", (e) => tools.openLightbox(e.currentTarget));
$("viewer-img").addEventListener("click", (e) => tools.openLightbox(e.currentTarget));
$("viewer-img").addEventListener("keydown", (e) => {
  if (e.key !== "Enter" && e.key !== " ") return;
  e.preventDefault();
  tools.openLightbox(e.currentTarget);
});
studio.start();
