// The gallery column: saved outputs, newest first, each with its prompt,
// seed and strength, the model and LoRAs that made it, a star, "use these
// settings", send to init, download and delete; above them the filter (prompt
// text, starred only), below them "Load more". Owns the DOM, reports intents.

import { debounce } from "./timing.js";
import { FILTER_DEBOUNCE_MS } from "./gallery.js";
import { uploadUrl } from "./api.js";
import { loraTag } from "./loras.js";
import { modelLine } from "./models.js";

const NOTICE_MS = 6000;

export class GalleryView {
  /**
   * onUse(item): restore its settings; onSendToInit(url); onStar(item, starred); onDelete(item);
   * onUndo(); onFilter({q, starred}); onLoadMore(); onRefresh().
   */
  constructor(doc, handlers) {
    this.doc = doc;
    this.list = doc.getElementById("gallery");
    this.scroller = doc.getElementById("gallery-scroll");
    this.empty = doc.getElementById("gallery-empty");
    this.count = doc.getElementById("gallery-count");
    this.more = doc.getElementById("gallery-more");
    this.notice = doc.getElementById("gallery-notice");
    this.noticeText = doc.getElementById("gallery-notice-text");
    this.undo = doc.getElementById("gallery-undo");
    this.search = doc.getElementById("gallery-filter");
    this.starredOnly = doc.getElementById("gallery-starred");
    this.template = doc.getElementById("gallery-item");
    this.items = new Map(); // name -> item
    this.nodes = new Map(); // name -> its <li>, reused across renders so the scroll position holds

    this.list.addEventListener("click", (e) => this.#onClick(e, handlers));
    this.undo.addEventListener("click", () => {
      this.notice.hidden = true;
      handlers.onUndo();
    });
    this.more.addEventListener("click", () => handlers.onLoadMore());
    doc.getElementById("gallery-refresh").addEventListener("click", () => handlers.onRefresh());

    const filterNow = () => handlers.onFilter(this.filter);
    const filterSoon = debounce(filterNow, FILTER_DEBOUNCE_MS);
    this.search.addEventListener("input", () => filterSoon());
    this.search.addEventListener("keydown", (e) => {
      if (e.key === "Enter") {
        e.preventDefault(); // never a form submit; filter at once instead of waiting
        filterSoon.flush();
      } else if (e.key === "Escape" && this.search.value) {
        e.preventDefault(); // Escape here clears the filter; it does not also cancel the run
        this.search.value = "";
        filterSoon.cancel();
        filterNow();
      }
    });
    this.starredOnly.addEventListener("click", () => {
      this.starredOnly.setAttribute("aria-pressed", String(!this.#pressed(this.starredOnly)));
      filterSoon.cancel();
      filterNow();
    });
  }

  /** What the filter controls say now. */
  get filter() {
    return { q: this.search.value, starred: this.#pressed(this.starredOnly) };
  }

  /** Draw the list: nodes for names already shown are kept (and updated), new ones inserted in order. */
  render(items, { highlight = null, countText = "", countTitle = "", emptyText = "", hasMore = false } = {}) {
    this.items = new Map(items.map((item) => [item.name, item]));
    const nodes = items.map((item) => {
      const node = this.nodes.get(item.name) ?? this.#create();
      this.#fill(node, item, item.name === highlight);
      return node;
    });
    for (const [name, node] of this.nodes) if (!this.items.has(name)) node.remove();
    // Insert or move only what is out of place: moving every node would lose the scroll anchor.
    let before = this.list.firstElementChild;
    for (const node of nodes) {
      if (node === before) before = node.nextElementSibling;
      else this.list.insertBefore(node, before);
    }
    this.nodes = new Map(items.map((item, i) => [item.name, nodes[i]]));
    this.empty.hidden = items.length > 0;
    this.empty.textContent = emptyText;
    this.count.textContent = countText;
    this.count.title = countTitle;
    this.more.hidden = !hasMore;
  }

  showError(message) {
    this.empty.hidden = false;
    this.empty.textContent = message;
  }

  /**
   * A line above the list: "Deleted … Undo" (until the next notice), or why something failed.
   * A plain report ("Restored …") goes away by itself.
   */
  showNotice(text, { undo = false, tone = "info" } = {}) {
    clearTimeout(this.noticeTimer);
    this.noticeText.textContent = text;
    this.undo.hidden = !undo;
    this.notice.dataset.tone = tone;
    this.notice.hidden = false;
    if (!undo && tone === "info") this.noticeTimer = setTimeout(() => { this.notice.hidden = true; }, NOTICE_MS);
  }

  setLoading(on) {
    this.list.setAttribute("aria-busy", String(on));
    this.more.disabled = on;
  }

  scrollToTop() {
    this.scroller.scrollTop = 0;
  }

  #onClick(e, handlers) {
    const li = e.target.closest("li.gallery-item");
    const item = li && this.items.get(li.dataset.name);
    if (!item) return;
    if (e.target.closest(".gallery-use")) handlers.onUse(item);
    else if (e.target.closest(".gallery-to-init")) handlers.onSendToInit(item.url);
    else if (e.target.closest(".gallery-delete")) handlers.onDelete(item);
    else if (e.target.closest(".gallery-star")) handlers.onStar(item, !item.starred);
  }

  #pressed(button) {
    return button.getAttribute("aria-pressed") === "true";
  }

  #create() {
    return this.template.content.firstElementChild.cloneNode(true);
  }

  #fill(node, item, isNew) {
    const meta = item.metadata ?? {};
    const prompt = item.prompt ?? meta.prompt ?? "";
    node.dataset.name = item.name;
    node.classList.toggle("is-new", isNew);
    const thumb = node.querySelector(".gallery-thumb");
    thumb.href = item.url;
    const img = thumb.querySelector("img");
    if (img.getAttribute("src") !== item.url) img.src = item.url;
    img.alt = prompt ? `Output: ${prompt}` : "Output image";
    const inset = node.querySelector(".gallery-init");
    const initMeta = meta.init_image;
    if (initMeta && typeof initMeta.id === "string") {
      // The init image as a small inset, like the strip's entry cell; hidden if the upload is gone.
      const initImg = inset.querySelector("img");
      const src = initMeta.url || uploadUrl(initMeta.id);
      if (initImg.getAttribute("src") !== src) {
        initImg.onerror = () => { inset.hidden = true; };
        initImg.src = src;
        inset.hidden = false;
      }
      initImg.alt = "Init image";
      inset.title = "Init image";
    } else {
      inset.hidden = true;
    }
    node.querySelector(".gallery-prompt").textContent = prompt || "(no prompt)";
    node.querySelector(".gallery-prompt").title = prompt;
    const strength = item.strength ?? meta.strength;
    const sheetOf = Array.isArray(meta.contact_sheet_of) ? meta.contact_sheet_of.length : 0;
    const variations = Array.isArray(meta.with_variations) ? meta.with_variations.length : 0;
    const what = sheetOf ? `contact sheet of ${sheetOf}`
      : meta.mode === "inpaint" ? `inpaint ${fmt(strength)}`
        : meta.init_image ? `strength ${fmt(strength)}` : "text-to-image";
    const size = item.width && item.height ? `${item.width}×${item.height}` : "";
    const seed = `seed ${item.seed ?? meta.seed ?? "?"}${variations ? ` +${variations} var` : ""}`;
    node.querySelector(".gallery-meta").textContent = [seed, what, size].filter(Boolean).join(" · ");
    node.querySelector(".gallery-meta").title = when(item.created);
    const model = node.querySelector(".gallery-model");
    model.textContent = modelLine(meta, loraTag);
    model.title = model.textContent;
    model.hidden = !model.textContent;
    // A contact sheet is a picture of several outputs: it has no settings of its own to restore.
    node.querySelector(".gallery-use").hidden = sheetOf > 0;
    const star = node.querySelector(".gallery-star");
    const starred = item.starred === true;
    star.setAttribute("aria-pressed", String(starred));
    star.title = starred ? "Starred: click to unstar" : "Star it (find it again with the ★ filter)";
    const download = node.querySelector(".gallery-download");
    download.href = item.url;
    download.setAttribute("download", item.name ?? "");
  }
}

function fmt(n) {
  return typeof n === "number" ? n.toFixed(2) : "?";
}

function when(created) {
  if (created == null) return "";
  const date = typeof created === "number" ? new Date(created * (created < 1e12 ? 1000 : 1)) : new Date(created);
  return Number.isNaN(date.getTime()) ? "" : `Created ${date.toLocaleString()}`;
}
