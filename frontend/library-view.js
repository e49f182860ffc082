// The model picker in the header and the LoRA list in the settings form. Methods take
// plain values (models.modelOptions, loras.loraRows); nothing here decides anything.

import { WEIGHT_MAX, WEIGHT_MIN, WEIGHT_STEP } from "./loras.js";

export class LibraryView {
  /** onPick(name), onOpen() (the picker is about to open), onLora(name, {enabled?, weight?}). */
  constructor(doc, { onPick, onOpen, onLora }) {
    this.doc = doc;
    this.picker = doc.getElementById("model-picker");
    this.modelName = doc.getElementById("model-name");
    this.list = doc.getElementById("lora-list");
    this.empty = doc.getElementById("lora-empty");
    this.count = doc.getElementById("lora-count");
    this.shownOptions = "";
    this.shownNames = "";
    this.picker.addEventListener("change", () => onPick(this.picker.value));
    for (const event of ["focus", "pointerdown"]) this.picker.addEventListener(event, () => onOpen());
    this.list.addEventListener("change", (e) => {
      const row = e.target.closest("[data-lora-name]");
      if (!row) return;
      const name = row.dataset.loraName;
      if (e.target.dataset.role === "enable") onLora(name, { enabled: e.target.checked });
      else if (e.target.dataset.role === "number") onLora(name, { weight: e.target.value });
    });
    this.list.addEventListener("input", (e) => {
      const row = e.target.closest("[data-lora-name]");
      if (!row || e.target.dataset.role !== "slider") return;
      row.querySelector('[data-role="number"]').value = e.target.value; // the number follows the drag
      onLora(row.dataset.loraName, { weight: e.target.value });
    });
  }

  // --- the picker -------------------------------------------------------------

  /** options: [{value, label, disabled, title}]; current: the selected model's name. */
  showModels(options, current) {
    const key = JSON.stringify(options);
    if (key !== this.shownOptions) {
      this.shownOptions = key;
      this.picker.replaceChildren(...options.map((o) => {
        const option = new Option(o.label, o.value);
        option.disabled = o.disabled;
        option.title = o.title;
        return option;
      }));
    }
    this.picker.hidden = options.length === 0;
    this.modelName.hidden = options.length > 0; // the plain name stays when there is nothing to pick
    this.showPicked(current);
  }

  showPicked(name) {
    if (name == null) return;
    if (![...this.picker.options].some((o) => o.value === name)) {
      this.picker.add(new Option(name, name)); // selected before the listing knew it
      this.shownOptions = "";
    }
    this.picker.value = name;
    const chosen = this.picker.selectedOptions[0];
    this.picker.title = chosen ? [chosen.label, chosen.title].filter(Boolean).join("\n") : "";
  }

  showModelsError(message) {
    this.picker.title = message;
    this.modelName.hidden = !this.picker.hidden;
  }

  // --- the LoRA list ------------------------------------------------------------

  /** rows: loras.loraRows(...); folder names the models folder in the empty note. */
  showLoras(rows, { folder = "models" } = {}) {
    const names = JSON.stringify(rows.map((r) => r.name));
    if (names !== this.shownNames) {
      this.shownNames = names;
      this.list.replaceChildren(...rows.map((row) => this.#row(row)));
    }
    rows.forEach((row, i) => this.#update(this.list.children[i], row));
    const on = rows.filter((r) => r.enabled && r.usable).length;
    this.count.textContent = rows.length ? `${on} of ${rows.length} on` : "";
    this.empty.hidden = rows.length > 0;
    this.empty.textContent = `No LoRAs: put .safetensors LoRA files in ${folder}/loras/.`;
  }

  #row(row) {
    const li = this.doc.createElement("li");
    li.className = "lora-row";
    li.dataset.testid = "lora-row";
    li.dataset.loraName = row.name;
    const id = `lora-${this.list.children.length}-${Math.random().toString(36).slice(2, 8)}`;
    li.innerHTML = `
      <label class="lora-enable">
        <input type="checkbox" data-role="enable" data-testid="lora-enable">
        <span class="lora-name"></span>
      </label>
      <span class="lora-family"></span>
      <div class="lora-weight">
        <input type="range" data-role="slider" data-testid="lora-weight-slider" tabindex="-1"
               min="${WEIGHT_MIN}" max="${WEIGHT_MAX}" step="${WEIGHT_STEP}">
        <input type="number" data-role="number" data-testid="lora-weight" id="${id}" inputmode="decimal"
               min="${WEIGHT_MIN}" max="${WEIGHT_MAX}" step="${WEIGHT_STEP}">
      </div>
      <p class="lora-reason" data-testid="lora-reason" hidden></p>`;
    li.querySelector(".lora-name").textContent = row.name;
    li.querySelector(".lora-name").title = row.name;
    li.querySelector('[data-role="slider"]').setAttribute("aria-label", `Weight of ${row.name}`);
    li.querySelector('[data-role="number"]').setAttribute("aria-label", `Weight of ${row.name}`);
    return li;
  }

  #update(li, row) {
    const enable = li.querySelector('[data-role="enable"]');
    const slider = li.querySelector('[data-role="slider"]');
    const number = li.querySelector('[data-role="number"]');
    enable.checked = row.enabled;
    enable.disabled = !row.usable;
    li.dataset.usable = String(row.usable);
    li.dataset.enabled = String(row.enabled && row.usable);
    li.querySelector(".lora-family").textContent = shortFamily(row.family);
    li.querySelector(".lora-family").title = row.family ?? "family not known from the file";
    // A field being typed in keeps what is typed; the slider under a finger keeps its place.
    if (this.doc.activeElement !== number) number.value = String(row.weight);
    if (this.doc.activeElement !== slider) slider.value = String(row.weight);
    slider.style.setProperty("--fill", `${((row.weight - WEIGHT_MIN) / (WEIGHT_MAX - WEIGHT_MIN)) * 100}%`);
    slider.disabled = number.disabled = !row.usable;
    const reason = li.querySelector(".lora-reason");
    reason.hidden = !row.reason;
    reason.textContent = row.reason;
    li.title = row.reason;
  }
}

/** "Stable Diffusion XL" -> "SDXL", "Stable Diffusion 1.x" -> "SD 1.x"; "?" when not known. */
function shortFamily(family) {
  if (!family) return "?";
  return family.replace(/^Stable Diffusion XL/, "SDXL").replace(/^Stable Diffusion /, "SD ");
}
