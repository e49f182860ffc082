// The page's DOM outside the form, strip, outputs row and gallery: header
// status, init panel, drawing-pad notices, the large viewer and the progress
// line. Methods take plain values; nothing here decides anything.

const CONNECTION_TEXT = {
  connecting: "connecting…",
  connected: "connected",
  reconnecting: "reconnecting…",
  disconnected: "offline",
};

export class StudioView {
  constructor(doc) {
    const $ = (id) => doc.getElementById(id);
    this.doc = doc;
    this.el = {
      modelName: $("model-name"),
      demoBadge: $("demo-badge"),
      modelStatus: $("model-status"),
      modelStatusText: $("model-status-text"),
      modelStatusFill: $("model-status-fill"),
      connection: $("connection"),
      connectionText: $("connection-text"),
      tabUpload: $("tab-upload"),
      tabDraw: $("tab-draw"),
      panelUpload: $("panel-upload"),
      panelDraw: $("panel-draw"),
      dropzone: $("dropzone"),
      initThumb: $("init-thumb"),
      initClear: $("init-clear"),
      uploadError: $("upload-error"),
      initSize: $("init-size"),
      initWarnings: $("init-warnings"),
      inpaintNotice: $("inpaint-notice"),
      initEdit: $("init-edit"),
      padNotice: $("pad-notice"),
      toolBrush: $("tool-brush"),
      toolEraser: $("tool-eraser"),
      viewer: $("viewer"),
      viewerImg: $("viewer-img"),
      viewerEmpty: $("viewer-empty"),
      viewerCaption: $("viewer-caption"),
      viewerNote: $("viewer-note"),
      fullDecode: $("full-decode"),
      viewerSend: doc.querySelector('#viewer [data-testid="send-to-init"]'),
      viewerEnlarge: $("viewer-enlarge"),
      progress: $("progress"),
      progressBar: doc.querySelector("#progress .progress-bar"),
      progressFill: $("progress-fill"),
      progressStatus: $("progress-status"),
      progressTiming: $("progress-timing"),
      jobMessage: $("job-message"),
      planSummary: $("plan-summary"),
      jobMode: $("job-mode"),
      generate: $("generate"),
      cancel: $("cancel"),
    };
    // The message floats over the viewer: a click puts it away.
    this.el.jobMessage.title = "Click to dismiss";
    this.el.jobMessage.addEventListener("click", () => {
      this.el.jobMessage.hidden = true;
    });
  }

  // --- header -------------------------------------------------------------

  showModel({ status, progress, message, model, is_demo, family }) {
    const el = this.el;
    if (model) el.modelName.textContent = model;
    // What a checkpoint file was detected as ("Stable Diffusion XL Turbo"), on hover.
    if (family) el.modelName.title = `${model || el.modelName.textContent} · ${family}`;
    if (typeof is_demo === "boolean") el.demoBadge.hidden = !is_demo;
    el.modelStatus.dataset.status = status || "unknown";
    if (model) el.modelStatus.dataset.model = model; // which model the status is about (tests, scripts)
    const pct = Math.round(Math.min(Math.max(Number(progress) || 0, 0), 1) * 100);
    el.modelStatusFill.style.width = `${status === "ready" ? 100 : pct}%`;
    el.modelStatusText.textContent =
      status === "ready" ? "model ready"
        : status === "error" ? `model failed: ${message || "see the server log"}`
          : status === "loading" ? `loading ${model || "model"} ${pct}%${message ? ` · ${message}` : ""}`
            : "checking the model…";
    el.modelStatus.title = message || "";
  }

  showConnection(state, detail = "") {
    this.el.connection.dataset.state = state;
    this.el.connectionText.textContent = CONNECTION_TEXT[state] ?? state;
    this.el.connection.title = detail;
  }

  // --- init panel -----------------------------------------------------------

  /** Switch the init source tab ("upload" | "draw"). */
  showTab(which) {
    const draw = which === "draw";
    this.el.tabUpload.setAttribute("aria-selected", String(!draw));
    this.el.tabDraw.setAttribute("aria-selected", String(draw));
    this.el.tabUpload.tabIndex = draw ? -1 : 0;
    this.el.tabDraw.tabIndex = draw ? 0 : -1;
    this.el.panelUpload.hidden = draw;
    this.el.panelDraw.hidden = !draw;
  }

  showInit(init) {
    const { initThumb, dropzone, initClear, initEdit } = this.el;
    dropzone.dataset.hasImage = String(Boolean(init));
    initClear.hidden = !init;
    initEdit.hidden = !init;
    const note = this.doc.getElementById("init-note");
    const noPreview = (why) => {
      initThumb.removeAttribute("src");
      initThumb.hidden = true;
      note.hidden = false;
      note.textContent = `Init image ${String(init.id).slice(0, 8)}… (${why})`;
    };
    initThumb.onerror = null;
    note.hidden = true;
    note.textContent = "";
    if (!init) {
      initThumb.removeAttribute("src");
      initThumb.hidden = true;
    } else if (init.thumb) {
      initThumb.onerror = () => noPreview("its preview could not be loaded");
      initThumb.src = init.thumb;
      initThumb.hidden = false;
      initThumb.alt = init.width > 0 ? `Init image, ${init.width}×${init.height}` : "Init image";
    } else {
      noPreview("no preview in this browser");
    }
  }

  /**
   * The size line ("1024×768 → fit inside 512×512 → 512×384"), warnings, and
   * the inpainting notice when the init image has transparency.
   */
  showInitFacts({ line, warnings, inpaint = false }) {
    this.el.initSize.textContent = line;
    this.el.inpaintNotice.hidden = !inpaint;
    this.#syncPadNotice();
    this.el.initWarnings.replaceChildren(...warnings.map((w) => {
      const li = this.doc.createElement("li");
      li.textContent = w;
      return li;
    }));
  }

  /** Busy veil over the drop zone; text says what it waits for. */
  setUploading(busy, text = "Uploading…") {
    this.el.dropzone.classList.toggle("is-busy", busy);
    const veil = this.el.dropzone.querySelector(".dropzone-busy");
    veil.hidden = !busy;
    if (busy) veil.textContent = text;
    this.el.dropzone.setAttribute("aria-busy", String(busy));
  }

  showUploadError(message) {
    this.el.uploadError.textContent = message || "";
    this.el.uploadError.hidden = !message;
  }

  setDragOver(on) {
    this.el.dropzone.classList.toggle("is-dragover", on);
  }

  // --- drawing pad ------------------------------------------------------------

  /** Which pad tool is on: "brush" | "eraser". */
  showPadTool(tool) {
    const eraser = tool === "eraser";
    this.el.toolBrush.setAttribute("aria-checked", String(!eraser));
    this.el.toolEraser.setAttribute("aria-checked", String(eraser));
    this.doc.getElementById("pad").dataset.tool = eraser ? "eraser" : "brush";
  }

  /** The pad has erased (checkerboard) pixels: they will be repainted. */
  showPadNotice(erased) {
    this.padErased = erased;
    this.#syncPadNotice();
  }

  /** The init panel's notice already says the same sentence: say it once. */
  #syncPadNotice() {
    this.el.padNotice.hidden = !this.padErased || !this.el.inpaintNotice.hidden;
  }
  // --- viewer, progress -----------------------------------------------------

  /**
   * Show an image large. kind: "preview" | "init" | "output" | "decoded";
   * url null empties the viewer. Any full-decode offer or note goes away.
   */
  showLarge(url, caption = "", kind = "preview") {
    const { viewer, viewerImg, viewerEmpty, viewerCaption } = this.el;
    this.offerFullDecode(null);
    this.showViewerNote("");
    viewer.dataset.showing = url ? kind : "empty";
    if (url) {
      viewerImg.src = url;
      viewerImg.alt = caption;
      viewerImg.hidden = false;
      viewerEmpty.hidden = true;
    } else {
      viewerImg.hidden = true;
      viewerImg.removeAttribute("src");
      viewerEmpty.hidden = false;
    }
    viewerCaption.textContent = caption;
    // An output or a full decode can become the init image; anything shown can be enlarged.
    this.el.viewerSend.hidden = !(url && (kind === "output" || kind === "decoded"));
    this.el.viewerEnlarge.hidden = !url;
  }

  /** What the viewer shows now: {url, kind, caption}; url is null when it is empty. */
  largeShown() {
    const { viewer, viewerImg, viewerCaption } = this.el;
    const kind = viewer.dataset.showing;
    if (kind === "empty" || viewerImg.hidden) return { url: null, kind: "empty", caption: "" };
    return { url: viewerImg.getAttribute("src"), kind, caption: viewerCaption.textContent };
  }

  /**
   * The "full decode" button under a strip frame shown large.
   * state: null (hidden) | "ready" | "busy"; title says what it decodes.
   */
  offerFullDecode(state, title = "") {
    const button = this.el.fullDecode;
    button.hidden = !state;
    button.disabled = state === "busy";
    button.classList.toggle("is-busy", state === "busy");
    button.textContent = state === "busy" ? "Decoding…" : "Full decode";
    button.title = title;
  }

  /** A line beside the caption (e.g. why a full decode failed). tone: "error" | "info". */
  showViewerNote(text, tone = "info") {
    const note = this.el.viewerNote;
    note.textContent = text || "";
    note.hidden = !text;
    note.dataset.tone = tone;
  }

  /**
   * state: idle | submitting | queued | running | done | cancelled | error.
   * fraction 0..1 fills the bar; text and timing are shown as given.
   */
  showProgress({ state, fraction = 0, text = "", timing = "" }) {
    const { progress, progressBar, progressFill, progressStatus, progressTiming } = this.el;
    progress.dataset.state = state;
    const pct = Math.round(Math.min(Math.max(fraction, 0), 1) * 100);
    progressFill.style.width = `${pct}%`;
    progressBar.setAttribute("aria-valuenow", String(pct));
    progressStatus.textContent = text;
    progressTiming.textContent = timing;
    const active = state === "submitting" || state === "queued" || state === "running";
    this.el.cancel.disabled = !active;
    this.el.generate.classList.toggle("is-busy", active);
  }

  /**
   * A message under the progress bar: errors, cancel notes, the server's
   * warnings, where files went. Each line is text (in `tone`) or {text, tone}.
   */
  showJobMessage(lines, tone = "warning") {
    const list = (Array.isArray(lines) ? lines : [lines]).filter((l) => l && (typeof l === "string" || l.text));
    const { jobMessage } = this.el;
    jobMessage.hidden = list.length === 0;
    jobMessage.dataset.tone = tone;
    jobMessage.replaceChildren(...list.map((line) => {
      const span = this.doc.createElement("span");
      span.textContent = typeof line === "string" ? line : line.text;
      span.dataset.tone = typeof line === "string" ? tone : line.tone ?? tone;
      return span;
    }));
  }

  showPlanSummary(text, { pending = false } = {}) {
    this.el.planSummary.textContent = text;
    this.el.planSummary.classList.toggle("is-pending", pending);
  }

  /**
   * The strip header's job badge: the followed job's mode and, for several
   * outputs, which one the strip shows ("inpaint · output 2 of 4 · strength 0.4").
   * null hides it (the strip shows the next run's plan).
   */
  showJobMode(text) {
    this.el.jobMode.textContent = text || "";
    this.el.jobMode.hidden = !text;
  }

  showPlanError(message) {
    this.el.planSummary.textContent = message;
    this.el.planSummary.classList.add("is-error");
  }

  clearPlanError() {
    this.el.planSummary.classList.remove("is-error");
  }
}

/** "3.2 s", "1 min 05 s" */
export function formatSeconds(s) {
  if (!Number.isFinite(s) || s < 0) return "";
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 60) return `${Math.round(s)} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${String(Math.round(s % 60)).padStart(2, "0")} s`;
}
