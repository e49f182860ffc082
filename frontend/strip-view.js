// The step strip on the page: draws a strip model (strip.js) where stripLayout
// (strip-layout.js) places it, with each step's noise bar (chart.js), and
// reports what a person picks. It is one tab stop (a roving tabindex): the
// arrow keys, Home and End move between the skipped block, the init, the taken
// steps and the output, and select what they land on. It holds no state of its
// own beyond the highlights, the focus and whether the skipped block is open.

import { CELL, initCaption } from "./strip.js";
import { formatSigma, noiseLevels } from "./chart.js";
import { stripLayout } from "./strip-layout.js";

const MOVES = { ArrowLeft: -1, ArrowRight: 1, Home: -Infinity, End: Infinity };

export class StripView {
  /** onSelect({type: "cell", index} | {type: "init"} | {type: "output"}) */
  constructor(doc, { onSelect }) {
    this.doc = doc;
    this.list = doc.getElementById("strip");
    this.scroller = doc.getElementById("strip-scroll");
    this.outputItem = doc.getElementById("strip-output");
    this.outputCell = doc.getElementById("output-cell");
    this.outputImg = doc.getElementById("output");
    this.onSelect = onSelect;
    this.strip = null;
    this.expanded = false; // the skipped steps shown as cells; kept from plan to plan
    this.focusKey = null; // the one item in the tab order
    this.selection = null;
    this.selectedKey = null;
    this.cellEls = []; // li per scheduled step
    this.list.addEventListener("click", (e) => this.#onClick(e));
    this.list.addEventListener("keydown", (e) => this.#onKey(e));
    // Width decides the layout; the window's height decides how tall the strip may be.
    new ResizeObserver(() => this.#layout()).observe(this.scroller);
    doc.defaultView?.addEventListener("resize", () => this.#layout());
  }

  /** Rebuild every cell and the noise bars for a (new) strip and the plan it came from. */
  render(strip, plan, { txt2img = false } = {}) {
    const hadFocus = this.list.contains(this.doc.activeElement);
    this.strip = strip;
    this.noise = noiseLevels(plan, { txt2img });
    this.cellEls = strip.cells.map((cell) => this.#cellElement(cell));
    const items = [];
    this.group = strip.skipped > 0 ? this.#groupElement(this.cellEls.slice(0, strip.skipped)) : null;
    if (this.group) items.push(this.group);
    this.init = strip.hasInit ? this.#initElement() : null;
    if (this.init) items.push(this.init);
    items.push(...this.cellEls.slice(strip.skipped), this.outputItem);
    this.list.replaceChildren(...items);
    this.list.classList.toggle("is-txt2img", txt2img);

    this.setOutput(null);
    this.setSelected(this.selection); // the new elements show what the viewer still shows
    this.#layout();
    this.#rove(hadFocus);
  }

  /** Redraw the cell a frame landed in: a step's index, or "init". */
  update(strip, target) {
    this.strip = strip;
    if (target === "init") this.#fillInit();
    else if (this.cellEls[target]) this.#fillCell(this.cellEls[target], strip.cells[target]);
  }

  /** Mark the cell SD is working on now (-1: none). */
  setCurrent(index) {
    for (const el of this.list.querySelectorAll(".is-current")) el.classList.remove("is-current");
    this.cellEls[index]?.classList.add("is-current");
  }

  /** Highlight what the viewer shows: {type: "cell", index} | {type: "init"} | {type: "output"} | null. */
  setSelected(selection) {
    for (const el of this.list.querySelectorAll(".is-selected")) el.classList.remove("is-selected");
    const el = selection?.type === "cell" ? this.cellEls[selection.index]
      : selection?.type === "init" ? this.init
        : selection?.type === "output" ? this.outputItem : null;
    el?.classList.add("is-selected");
    this.selection = selection ?? null;
    this.selectedKey = el ? keyOf(selection) : null;
  }

  /** The final image at the end of the strip (url) or an empty slot (null). */
  setOutput(url, state = url ? "ready" : "empty") {
    this.outputCell.dataset.state = state;
    this.outputItem.dataset.state = state;
    if (url) {
      this.outputImg.src = url;
      this.outputImg.hidden = false;
    } else {
      this.outputImg.removeAttribute("src");
      this.outputImg.hidden = true;
    }
  }

  // --- building -------------------------------------------------------------------

  #cellElement(cell) {
    const li = this.doc.createElement("li");
    li.className = "cell";
    li.dataset.testid = "strip-cell";
    li.dataset.index = String(cell.index);
    li.style.setProperty("--level", level(this.noise.levels[cell.index]));
    li.append(sigmaBar(this.doc));
    // Skipped steps have nothing to show: not buttons, not in the keyboard's path.
    const main = this.doc.createElement(cell.state === CELL.SKIPPED ? "span" : "button");
    main.className = "cell-main";
    if (cell.state !== CELL.SKIPPED) {
      main.type = "button";
      main.dataset.nav = "cell";
      main.dataset.index = String(cell.index);
      main.tabIndex = -1;
    }
    const label = this.doc.createElement("span");
    label.className = "cell-label";
    main.append(label);
    li.append(main);
    this.#fillCell(li, cell);
    return li;
  }

  #fillCell(li, cell) {
    li.dataset.state = cell.state;
    const main = li.querySelector(".cell-main");
    main.title = cellTitle(cell, this.strip);
    main.setAttribute("aria-label", main.title);
    showPicture(this.doc, main, cell.frame);
    main.querySelector(".cell-label").textContent = cell.state === CELL.SKIPPED ? "skipped" : String(cell.takenStep);
  }

  /** The skipped steps as one block: their cells drawn as slivers, a button to open them. */
  #groupElement(cells) {
    const li = this.doc.createElement("li");
    li.className = "skipped-group";
    li.dataset.testid = "strip-skipped";
    const toggle = this.doc.createElement("button");
    toggle.type = "button";
    toggle.className = "group-toggle";
    toggle.dataset.nav = "group";
    toggle.tabIndex = -1;
    toggle.innerHTML = '<span class="group-label"><span class="group-count"></span> <span class="group-word">skipped</span></span>';
    toggle.querySelector(".group-count").textContent = String(cells.length);
    const list = this.doc.createElement("ol");
    list.className = "group-cells";
    list.setAttribute("aria-label", "Skipped steps");
    list.append(...cells);
    li.append(toggle, list);
    this.#fillGroup(li);
    return li;
  }

  #fillGroup(li) {
    const n = this.strip.skipped;
    li.dataset.expanded = String(this.expanded);
    const toggle = li.querySelector(".group-toggle");
    toggle.setAttribute("aria-expanded", String(this.expanded));
    toggle.title = `${n} scheduled step${n > 1 ? "s" : ""} img2img skips: the init image enters after them. `
      + (this.expanded ? "Fold them into one block." : "Show each of them.");
    toggle.setAttribute("aria-label", `${n} skipped steps`);
  }

  #initElement() {
    const li = this.doc.createElement("li");
    li.className = "tile tile-init";
    li.dataset.testid = "strip-init";
    li.style.setProperty("--level", level(this.noise.levels[this.noise.entryIndex]));
    li.append(sigmaBar(this.doc));
    const main = this.doc.createElement("button");
    main.type = "button";
    main.className = "tile-main";
    main.dataset.nav = "init";
    main.tabIndex = -1;
    main.innerHTML = '<span class="cell-label">what SD sees</span>';
    li.append(main);
    this.init = li;
    this.#fillInit();
    return li;
  }

  #fillInit() {
    if (!this.init) return;
    const main = this.init.querySelector(".tile-main");
    this.init.dataset.state = this.strip.initFrame ? "ready" : "empty";
    main.title = initCaption(this.strip);
    main.setAttribute("aria-label", main.title);
    showPicture(this.doc, main, this.strip.initFrame);
  }

  // --- placing --------------------------------------------------------------------

  #layout() {
    const strip = this.strip;
    if (!strip) return;
    const style = this.doc.defaultView.getComputedStyle(this.scroller);
    const room = { width: this.scroller.clientWidth, maxHeight: parseFloat(style.maxHeight) || 200 };
    const at = stripLayout({ skipped: strip.skipped, taken: strip.taken, init: Boolean(this.init), expanded: this.expanded }, room);
    const vars = { "--cols": at.columns, "--rows": at.rows, "--cell": `${at.cell}px`, "--bar": `${at.bar}px` };
    for (const [name, value] of Object.entries(vars)) this.list.style.setProperty(name, String(value));
    this.scroller.dataset.overflow = String(at.overflow);
    this.list.dataset.rows = at.rows > 1 ? "many" : "one";
    if (this.group) {
      place(this.group, at.group);
      place(this.group.querySelector(".group-toggle"), at.toggle);
      this.cellEls.slice(0, strip.skipped).forEach((li, i) => place(li, at.skipped[i]));
    }
    if (this.init) place(this.init, at.init);
    this.cellEls.slice(strip.skipped).forEach((li, i) => place(li, at.steps[i]));
    place(this.outputItem, at.output);
  }

  // --- picking: clicks and keys --------------------------------------------------

  #onClick(e) {
    const item = e.target.closest("[data-nav]");
    if (!item || !this.list.contains(item)) return;
    this.#rove(false, item);
    if (item.dataset.nav === "group") return this.#toggleGroup();
    if (item.dataset.nav === "output" && this.outputCell.dataset.state !== "ready") return;
    this.onSelect(selectionOf(item));
  }

  #onKey(e) {
    const move = MOVES[e.key];
    const item = e.target.closest?.("[data-nav]");
    if (move === undefined || !item || e.altKey || e.ctrlKey || e.metaKey) return;
    e.preventDefault();
    const items = this.#navItems();
    const at = items.indexOf(item);
    const next = items[Math.min(Math.max(at + move, 0), items.length - 1)] ?? item;
    if (next === item) return;
    this.#rove(true, next);
    // Land on something to show: show it large. A pending step or the closed block has nothing yet.
    const selection = selectionOf(next);
    if (selection && this.#hasPicture(selection) && keyOf(selection) !== this.selectedKey) this.onSelect(selection);
  }

  #toggleGroup() {
    this.expanded = !this.expanded;
    this.#fillGroup(this.group);
    this.#layout();
  }

  #hasPicture(selection) {
    if (selection.type === "cell") return Boolean(this.strip.cells[selection.index]?.frame);
    if (selection.type === "init") return Boolean(this.strip.initFrame);
    return this.outputCell.dataset.state === "ready";
  }

  #navItems() {
    return [...this.list.querySelectorAll("[data-nav]")];
  }

  /** Make `item` (else the remembered one, else the first) the strip's one tab stop; focus it if asked. */
  #rove(focus, item = null) {
    const items = this.#navItems();
    if (item) this.focusKey = navKey(item);
    const chosen = items.find((el) => navKey(el) === this.focusKey) ?? items[0];
    for (const el of items) el.tabIndex = el === chosen ? 0 : -1;
    if (focus) chosen?.focus();
  }
}

function sigmaBar(doc) {
  const bar = doc.createElement("span");
  bar.className = "cell-sigma";
  bar.setAttribute("aria-hidden", "true");
  return bar;
}

/** Put `url` in the button's picture (first child img), or take the picture away. */
function showPicture(doc, main, url) {
  let img = main.querySelector("img");
  if (!url) return img?.remove();
  if (!img) {
    img = doc.createElement("img");
    img.alt = "";
    main.prepend(img);
  }
  if (img.getAttribute("src") !== url) img.src = url;
}

/** Grid placement from a layout area ({row, col, rowSpan?, colSpan?}); null clears it. */
function place(el, area) {
  el.style.gridArea = area ? `${area.row} / ${area.col} / span ${area.rowSpan ?? 1} / span ${area.colSpan ?? 1}` : "";
  if (area) el.style.setProperty("--span", String(area.colSpan ?? 1));
}

function level(value) {
  return Number.isFinite(value) ? value.toFixed(4) : "0";
}

function navKey(el) {
  return el.dataset.nav === "cell" ? `cell:${el.dataset.index}` : el.dataset.nav;
}

function selectionOf(el) {
  const nav = el.dataset.nav;
  if (nav === "cell") return { type: "cell", index: Number(el.dataset.index) };
  return nav === "init" || nav === "output" ? { type: nav } : null;
}

function keyOf(selection) {
  return selection.type === "cell" ? `cell:${selection.index}` : selection.type;
}

function cellTitle(cell, strip) {
  const where = [
    cell.timestep != null ? `t ${Math.round(cell.timestep)}` : null,
    cell.sigma != null ? `σ ${formatSigma(cell.sigma)}` : null,
  ].filter(Boolean).join(", ");
  const what = cell.state === CELL.SKIPPED
    ? `Scheduled step ${cell.index + 1} of ${strip.stepsTotal}: skipped by img2img`
    : `Step ${cell.takenStep} of ${strip.taken}${cell.state === CELL.PENDING ? " (not run yet)" : ""}`;
  return where ? `${what} (${where})` : what;
}
