// The page's DOM outside the form, strip and gallery: header status, init
// panel, the large viewer and the progress line. Methods take plain values;
// nothing here decides anything.

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
      viewer: $("viewer"),
      viewerImg: $("viewer-img"),
      viewerEmpty: $("viewer-empty"),
      viewerCaption: $("viewer-caption"),
      progress: $("progress"),
      progressBar: doc.querySelector("#progress .progress-bar"),
      progressFill: $("progress-fill"),
      progressStatus: $("progress-status"),
      progressTiming: $("progress-timing"),
      jobMessage: $("job-message"),
      planSummary: $("plan-summary"),
      generate: $("generate"),
      cancel: $("cancel"),
    };
  }

  // --- header -------------------------------------------------------------

  showModel({ status, progress, message, model, is_demo }) {
    const el = this.el;
    if (model) el.modelName.textContent = model;
    if (typeof is_demo === "boolean") el.demoBadge.hidden = !is_demo;
    el.modelStatus.dataset.status = status || "unknown";
    const pct = Math.round(Math.min(Math.max(Number(progress) || 0, 0), 1) * 100);
    el.modelStatusFill.style.width = `${status === "ready" ? 100 : pct}%`;
    el.modelStatusText.textContent =
      status === "ready" ? "model ready"
        : status === "error" ? `model failed: ${message || "see the server log"}`
          : status === "loading" ? `loading model ${pct}%${message ? ` · ${message}` : ""}`
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
    const { initThumb, dropzone, initClear } = this.el;
    dropzone.dataset.hasImage = String(Boolean(init));
    initClear.hidden = !init;
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

  /** The size line ("1024×768 → fit inside 512×512 → 512×384") and warnings. */
  showInitFacts({ line, warnings }) {
    this.el.initSize.textContent = line;
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
    this.doc.getElementById("use-drawing").disabled = busy;
  }

  showUploadError(message) {
    this.el.uploadError.textContent = message || "";
    this.el.uploadError.hidden = !message;
  }

  setDragOver(on) {
    this.el.dropzone.classList.toggle("is-dragover", on);
  }

  // --- viewer, progress -----------------------------------------------------

  /** Show an image large. kind: "preview" | "init" | "output"; url null empties the viewer. */
  showLarge(url, caption = "", kind = "preview") {
    const { viewer, viewerImg, viewerEmpty, viewerCaption } = this.el;
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

  /** A message under the progress bar: errors, cancel notes, the server's warnings. */
  showJobMessage(lines, tone = "warning") {
    const list = (Array.isArray(lines) ? lines : [lines]).filter(Boolean);
    const { jobMessage } = this.el;
    jobMessage.hidden = list.length === 0;
    jobMessage.dataset.tone = tone;
    jobMessage.replaceChildren(...list.map((line) => {
      const span = this.doc.createElement("span");
      span.textContent = line;
      return span;
    }));
  }

  showPlanSummary(text, { pending = false } = {}) {
    this.el.planSummary.textContent = text;
    this.el.planSummary.classList.toggle("is-pending", pending);
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
