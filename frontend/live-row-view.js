// The Live row at the top of the gallery panel: this tab's unsaved Live
// results, newest first, each with Keep (save it into the gallery) and Send to
// init. Owns the DOM, reports intents.

import { LIVE } from "./live-row.js";

export class LiveRowView {
  /** onKeep(file); onSendToInit(file). */
  constructor(doc, { onKeep, onSendToInit }) {
    this.section = doc.getElementById("live-row");
    this.list = doc.getElementById("live-items");
    this.count = doc.getElementById("live-count");
    this.template = doc.getElementById("live-item");
    this.message = doc.getElementById("live-row-message");
    this.list.addEventListener("click", (e) => {
      const li = e.target.closest("li.live-item");
      if (!li) return;
      if (e.target.closest(".live-keep")) onKeep(li.dataset.file);
      else if (e.target.closest(".live-to-init")) onSendToInit(li.dataset.file);
    });
  }

  render(entries) {
    this.section.hidden = entries.length === 0;
    const unsaved = entries.filter((entry) => entry.state !== LIVE.KEPT).length;
    this.count.textContent = unsaved === entries.length ? `${entries.length}` : `${unsaved} unsaved of ${entries.length}`;
    const old = new Map([...this.list.children].map((li) => [li.dataset.file, li]));
    this.list.replaceChildren(...entries.map((entry) => this.#fill(old.get(entry.file) ?? this.#create(), entry)));
    // One line for the row: why the last keep that failed did not work (the server's words).
    const failed = entries.find((entry) => entry.state === LIVE.FAILED);
    this.message.textContent = failed?.error ?? "";
    this.message.hidden = !failed;
  }

  #create() {
    return this.template.content.firstElementChild.cloneNode(true);
  }

  #fill(li, entry) {
    li.dataset.file = entry.file;
    li.dataset.state = entry.state;
    const thumb = li.querySelector(".live-thumb");
    thumb.href = entry.state === LIVE.KEPT && entry.keptUrl ? entry.keptUrl : entry.url;
    const img = thumb.querySelector("img");
    if (img.getAttribute("src") !== entry.url) img.src = entry.url;
    const what = [entry.prompt || "(no prompt)", entry.strength != null ? `strength ${entry.strength.toFixed(2)}` : "",
      entry.seed != null ? `seed ${entry.seed}` : ""].filter(Boolean).join(" · ");
    img.alt = `Live result: ${what}`;
    thumb.title = what;
    const keep = li.querySelector(".live-keep");
    const label = { [LIVE.KEEPING]: "Keep…", [LIVE.KEPT]: "Kept ✓", [LIVE.FAILED]: "Retry" }[entry.state] ?? "Keep";
    keep.querySelector(".live-keep-label").textContent = label;
    keep.disabled = entry.state === LIVE.KEEPING || entry.state === LIVE.KEPT;
    keep.title = entry.state === LIVE.KEPT ? `Saved to the gallery as ${entry.keptName ?? "a new output"}`
      : entry.error ?? "Save this Live result into the gallery";
    return li;
  }
}
