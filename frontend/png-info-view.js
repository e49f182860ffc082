// The dialog a PNG with settings opens when it is dropped, pasted or chosen:
// what was found, and "Restore settings" / "Use as init" / "Both". DOM only;
// artist-tools.js decides what each choice does.

import { Modal } from "./modal.js";

export const CHOICES = Object.freeze(["restore", "init", "both"]);

export class PngInfoDialog {
  constructor(doc) {
    const $ = (id) => doc.getElementById(id);
    this.doc = doc;
    this.dialog = $("png-info");
    this.title = $("png-info-title");
    this.summary = $("png-info-summary");
    this.notes = $("png-info-notes");
    this.resolve = null;
    this.modal = new Modal(this.dialog, { onDismiss: () => this.#answer(null) });
    this.dialog.addEventListener("click", (e) => {
      const button = e.target.closest("button[data-choice]");
      if (!button) return;
      this.modal.close();
      this.#answer(CHOICES.includes(button.dataset.choice) ? button.dataset.choice : null);
    });
  }

  /**
   * Show what a PNG carries (readPngSettings' result) and wait for the person's choice:
   * resolves "restore" | "init" | "both", or null when dismissed.
   */
  ask(found, opener = null) {
    this.#answer(null); // a dialog still waiting (a second drop) counts as dismissed
    this.title.textContent = found.kind === "studio" ? "This PNG was made by the studio" : "This PNG carries A1111 parameters";
    this.summary.textContent = found.summary;
    const lines = [
      ...found.notes,
      ...(found.unused.length ? [`Not used: ${found.unused.join(", ")}.`] : []),
      ...found.problems,
    ];
    this.notes.replaceChildren(...lines.map((text) => {
      const li = this.doc.createElement("li");
      li.textContent = text;
      return li;
    }));
    this.notes.hidden = lines.length === 0;
    const answer = new Promise((resolve) => {
      this.resolve = resolve;
    });
    this.modal.open(opener);
    this.dialog.querySelector('[data-choice="both"]').focus();
    return answer;
  }

  #answer(choice) {
    const resolve = this.resolve;
    this.resolve = null;
    resolve?.(choice);
  }
}
