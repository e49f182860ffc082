// The gallery column: saved outputs, newest first, each with its prompt,
// seed and strength, the model and LoRAs that made it, a "use these settings" button and a download link.

import { uploadUrl } from "./api.js";
import { loraTag } from "./loras.js";
import { modelLine } from "./models.js";

export class GalleryView {
  /** onUse(item): restore that image's settings. */
  constructor(doc, { onUse, onRefresh }) {
    this.list = doc.getElementById("gallery");
    this.empty = doc.getElementById("gallery-empty");
    this.template = doc.getElementById("gallery-item");
    this.items = [];
    this.list.addEventListener("click", (e) => {
      const button = e.target.closest(".gallery-use");
      if (button) onUse(this.items[Number(button.dataset.index)]);
    });
    doc.getElementById("gallery-refresh").addEventListener("click", onRefresh);
  }

  render(items, { highlight = null } = {}) {
    this.items = items;
    this.empty.hidden = items.length > 0;
    this.list.replaceChildren(...items.map((item, i) => this.#item(item, i, item.name === highlight)));
  }

  showError(message) {
    this.empty.hidden = false;
    this.empty.textContent = message;
  }

  #item(item, index, isNew) {
    const node = this.template.content.firstElementChild.cloneNode(true);
    const meta = item.metadata ?? {};
    const prompt = item.prompt ?? meta.prompt ?? "";
    node.classList.toggle("is-new", isNew);
    const thumb = node.querySelector(".gallery-thumb");
    thumb.href = item.url;
    const img = thumb.querySelector("img");
    img.src = item.url;
    img.alt = prompt ? `Output: ${prompt}` : "Output image";
    const initMeta = meta.init_image;
    if (initMeta && typeof initMeta.id === "string") {
      // The init image as a small inset, like the strip's entry cell; hidden if the upload is gone.
      const inset = node.querySelector(".gallery-init");
      const initImg = inset.querySelector("img");
      initImg.onerror = () => { inset.hidden = true; };
      initImg.src = initMeta.url || uploadUrl(initMeta.id);
      initImg.alt = "Init image";
      inset.hidden = false;
      inset.title = "Init image";
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
    node.querySelector(".gallery-use").dataset.index = String(index);
    const download = node.querySelector(".gallery-download");
    download.href = item.url;
    download.setAttribute("download", item.name ?? "");
    return node;
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
