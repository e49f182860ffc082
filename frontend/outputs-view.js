// The outputs row: every output of the job shown (a batch, iterations,
// variations, a strength sweep, or a single take) side by side, each labelled,
// plus the sweep's contact sheet. Draws a batch (batch.js) and reports clicks: on an output
// (show it large) and on its "send to init" button.

import { ENTRY, batchHeader, entryLabel, entryParts, isMulti } from "./batch.js";

export class OutputsView {
  /** onSelect({type: "batch", item}) when a finished output is clicked; onSend(url) for its send-to-init button. */
  constructor(doc, { onSelect, onSend = () => {} }) {
    this.doc = doc;
    this.section = doc.getElementById("outputs-row");
    this.list = doc.getElementById("outputs");
    this.count = doc.getElementById("outputs-count");
    this.sheet = doc.getElementById("contact-sheet");
    this.selected = null;
    this.list.addEventListener("click", (e) => {
      const send = e.target.closest("button[data-send]");
      if (send) return onSend(send.dataset.send);
      const button = e.target.closest("button[data-item]");
      if (button && !button.disabled) onSelect({ type: "batch", item: Number(button.dataset.item) });
    });
  }

  /**
   * Draw the batch. The row is always there, a single output included, so the viewer above
   * keeps its size from run to run; before the first run it says what will appear in it.
   */
  render(batch) {
    this.section.hidden = false;
    this.section.classList.toggle("is-empty", !batch);
    this.section.classList.toggle("is-single", !isMulti(batch)); // a narrow screen has no room to spare for it
    if (!batch) {
      this.count.textContent = "each run's outputs appear here";
      this.list.replaceChildren();
      this.sheet.hidden = true;
      return;
    }
    this.count.textContent = isMulti(batch) ? batchHeader(batch) : "this run";
    this.list.style.setProperty("--items", String(batch.items));
    this.list.replaceChildren(...batch.entries.map((entry) => this.#item(entry, batch)));
    if (batch.contactSheet) {
      this.sheet.href = batch.contactSheet.url;
      this.sheet.hidden = false;
    } else {
      this.sheet.hidden = true;
      this.sheet.removeAttribute("href");
    }
    this.setSelected(this.selected);
  }

  /** Outline the output shown large (null: none). */
  setSelected(item) {
    this.selected = item;
    for (const li of this.list.children) li.classList.toggle("is-selected", Number(li.dataset.item) === item);
  }

  #item(entry, batch) {
    const li = this.doc.createElement("li");
    li.className = "output-item";
    li.dataset.testid = "output-item";
    li.dataset.state = entry.state;
    li.dataset.item = String(entry.item);
    if (entry.item === batch.current) li.classList.add("is-current");
    const button = this.doc.createElement("button");
    button.type = "button";
    button.dataset.item = String(entry.item);
    const label = entryLabel(entry, batch.kind);
    button.title = `Output ${entry.item + 1} of ${batch.items}: ${label}`;
    button.disabled = entry.state !== ENTRY.DONE;
    const frame = this.doc.createElement("span");
    frame.className = "output-item-frame";
    if (entry.url) {
      const img = this.doc.createElement("img");
      img.src = entry.url;
      img.alt = `Output ${entry.item + 1}: ${label}`;
      frame.append(img);
    } else {
      frame.textContent = String(entry.item + 1);
    }
    // Two lines (what, then taken/skipped); the hidden " · " keeps the text one readable sentence.
    const { what, counts } = entryParts(entry, batch.kind);
    const caption = this.doc.createElement("span");
    caption.className = "output-item-label";
    caption.dataset.testid = "output-item-label";
    const line = (text, className) => {
      const span = this.doc.createElement("span");
      span.className = className;
      span.textContent = text;
      return span;
    };
    caption.append(line(what, "output-item-what"), line(" · ", "output-item-sep"), line(counts, "output-item-counts"));
    button.append(frame, caption);
    li.append(button);
    if (entry.state === ENTRY.DONE && entry.url) li.append(this.#sendButton(entry, batch));
    return li;
  }

  #sendButton(entry, batch) {
    const send = this.doc.createElement("button");
    send.type = "button";
    send.className = "output-send";
    send.dataset.testid = "send-to-init";
    send.dataset.send = entry.url;
    send.title = `Make output ${entry.item + 1} of ${batch.items} the init image`;
    send.setAttribute("aria-label", send.title);
    send.innerHTML = '<svg class="icon" aria-hidden="true"><use href="#i-send"/></svg>';
    return send;
  }
}
