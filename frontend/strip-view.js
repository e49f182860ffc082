// The step strip and noise-schedule chart on the page: draws a strip model
// (strip.js) into the DOM and reports clicks. It holds no state of its own
// beyond which cell is highlighted.

import { CELL } from "./strip.js";
import { scheduleChart } from "./chart.js";

export class StripView {
  /** onSelect({type: "cell", index} | {type: "init", index} | {type: "output"}) */
  constructor(doc, { onSelect }) {
    this.list = doc.getElementById("strip");
    this.area = doc.getElementById("strip-area");
    this.chartWindow = doc.getElementById("chart-window");
    this.scroller = doc.getElementById("strip-scroll");
    this.chart = doc.getElementById("chart");
    this.chartMax = doc.getElementById("chart-max");
    this.chartEntry = doc.getElementById("chart-entry-label");
    this.outputCell = doc.getElementById("output-cell");
    this.outputImg = doc.getElementById("output");
    this.onSelect = onSelect;
    this.list.addEventListener("click", (e) => {
      const button = e.target.closest("button[data-index]");
      if (!button) return;
      const index = Number(button.dataset.index);
      this.onSelect({ type: button.classList.contains("cell-init") ? "init" : "cell", index });
    });
    this.scroller.addEventListener("scroll", () => this.#syncWindow(), { passive: true });
    new ResizeObserver(() => this.#syncWindow()).observe(this.scroller);
    this.outputCell.addEventListener("click", () => {
      if (this.outputCell.dataset.state === "ready") this.onSelect({ type: "output" });
    });
  }

  /** Rebuild every cell and the chart for a (new) strip and the plan it came from. */
  render(strip, plan, { txt2img = false } = {}) {
    this.list.classList.toggle("is-txt2img", txt2img);
    this.area.style.setProperty("--n", String(Math.max(strip.stepsTotal, 1)));
    this.txt2img = txt2img;
    this.list.replaceChildren(...strip.cells.map((cell) => this.#cellElement(cell, strip)));
    const chart = scheduleChart(plan, { txt2img });
    this.chart.innerHTML = chart.svg; // our own markup: numbers and fixed class names only
    this.chartMax.textContent = chart.maxSigma != null ? `σ ${formatSigma(chart.maxSigma)}` : "";
    this.chartEntry.textContent = chart.entrySigma != null ? `init enters at σ ${formatSigma(chart.entrySigma)}` : "";
    if (chart.entryIndex >= 0) {
      this.chartEntry.style.left = `${((chart.entryIndex + 0.5) / strip.stepsTotal) * 100}%`;
      this.chartEntry.classList.toggle("flip", chart.entryIndex / strip.stepsTotal > 0.6);
      // Keep the label off the curve: below it while the curve is still high.
      this.chartEntry.classList.toggle("low", chart.entrySigma != null && chart.entrySigma > 0.45 * chart.maxSigma);
    }
    this.setOutput(null);
    this.scroller.scrollLeft = 0;
    this.#syncWindow();
  }

  /**
   * On long strips the cells scroll but the chart shows the whole schedule;
   * a frame on the chart marks which steps are in view.
   */
  #syncWindow() {
    const { scrollWidth, clientWidth, scrollLeft } = this.scroller;
    const overflowing = scrollWidth > clientWidth + 1;
    this.chartWindow.hidden = !overflowing;
    if (overflowing) {
      this.chartWindow.style.setProperty("--win-left", String(scrollLeft / scrollWidth));
      this.chartWindow.style.setProperty("--win-width", String(clientWidth / scrollWidth));
    }
  }

  /** Redraw one cell after a frame landed in it. */
  update(strip, index) {
    const old = this.list.children[index];
    if (!old) return;
    const next = this.#cellElement(strip.cells[index], strip);
    next.classList.toggle("is-selected", old.classList.contains("is-selected"));
    old.replaceWith(next);
    this.#reveal(next);
  }

  /** Mark the cell SD is working on now (-1: none). */
  setCurrent(index) {
    for (const li of this.list.querySelectorAll(".is-current")) li.classList.remove("is-current");
    const li = this.list.children[index];
    if (li) li.classList.add("is-current");
  }

  setSelected(selection) {
    for (const el of this.list.querySelectorAll(".is-selected")) el.classList.remove("is-selected");
    this.outputCell.classList.toggle("is-selected", selection?.type === "output");
    if (selection?.type === "cell" || selection?.type === "init") this.list.children[selection.index]?.classList.add("is-selected");
  }

  /** The final image at the end of the strip (url) or an empty slot (null). */
  setOutput(url, state = url ? "ready" : "empty") {
    this.outputCell.dataset.state = state;
    if (url) {
      this.outputImg.src = url;
      this.outputImg.hidden = false;
    } else {
      this.outputImg.removeAttribute("src");
      this.outputImg.hidden = true;
    }
  }

  #cellElement(cell, strip) {
    const txt2img = this.txt2img;
    const li = document.createElement("li");
    li.className = "cell";
    li.dataset.testid = "strip-cell";
    li.dataset.state = cell.state;
    li.dataset.index = String(cell.index);
    if (!txt2img && cell.index === strip.skipped && cell.state !== CELL.SKIPPED) li.classList.add("is-entry");

    const main = document.createElement("button");
    main.type = "button";
    main.className = "cell-main";
    main.dataset.index = String(cell.index);
    main.title = cellTitle(cell, strip);
    main.setAttribute("aria-label", main.title);
    const shown = cell.frame ?? cell.initFrame;
    if (shown) {
      const img = document.createElement("img");
      img.src = shown;
      img.alt = "";
      main.append(img);
    } else {
      main.disabled = cell.state === CELL.SKIPPED;
    }
    const label = document.createElement("span");
    label.className = "cell-label";
    label.textContent = cellLabel(cell);
    main.append(label);
    li.append(main);

    // Once step 0 covers the init frame, keep the init visible as an inset.
    if (cell.initFrame && cell.frame) {
      const inset = document.createElement("button");
      inset.type = "button";
      inset.className = "cell-init";
      inset.dataset.index = String(cell.index);
      inset.dataset.testid = "strip-init";
      inset.title = "The initial image SD sees (init latent noised to this step)";
      inset.setAttribute("aria-label", inset.title);
      const img = document.createElement("img");
      img.src = cell.initFrame;
      img.alt = "";
      inset.append(img);
      li.append(inset);
    }
    return li;
  }

  /** Keep the newest filled cell in view on long strips. */
  #reveal(li) {
    const box = this.scroller.getBoundingClientRect();
    const cell = li.getBoundingClientRect();
    if (cell.right > box.right || cell.left < box.left) {
      this.scroller.scrollLeft += cell.left - box.left - box.width / 2 + cell.width / 2;
    }
  }
}

function cellLabel(cell) {
  if (cell.state === CELL.SKIPPED) return "skipped";
  if (cell.state === CELL.INIT) return "init";
  return String(cell.takenStep);
}

function cellTitle(cell, strip) {
  const where = [
    cell.timestep != null ? `t ${Math.round(cell.timestep)}` : null,
    cell.sigma != null ? `σ ${formatSigma(cell.sigma)}` : null,
  ].filter(Boolean).join(", ");
  const what = cell.state === CELL.SKIPPED
    ? `Scheduled step ${cell.index + 1} of ${strip.stepsTotal}: skipped by img2img`
    : cell.state === CELL.INIT
      ? `Step ${cell.takenStep} of ${strip.taken}: the initial image SD sees`
      : `Step ${cell.takenStep} of ${strip.taken}${cell.state === CELL.PENDING ? " (not run yet)" : ""}`;
  return where ? `${what} (${where})` : what;
}

export function formatSigma(s) {
  return s >= 10 ? s.toFixed(1) : s >= 1 ? s.toFixed(2) : s.toFixed(3);
}
