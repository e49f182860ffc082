// The workers of a cluster in the header: "2 workers", then one line per worker
// ("gpu-0 · sd15.safetensors · cuda:0 · busy"). /api/health's `workers` and `mode`
// decide it; the embedded studio (mode absent or "embedded") shows nothing here,
// so it looks as it always did. workerRows is pure, for node --test.

const STATES = new Set(["loading", "idle", "busy", "error"]);

/**
 * The rows to show for a /api/health answer: null in embedded mode (nothing shown), else
 * {label, rows: [{name, state, text, title}]}, one row per worker in the order the server lists them.
 */
export function workerRows(health) {
  if (!health || typeof health !== "object" || health.mode !== "cluster") return null;
  const workers = Array.isArray(health.workers) ? health.workers.filter((w) => w && typeof w === "object") : [];
  const rows = workers.map((worker) => {
    const name = String(worker.name ?? "worker");
    const state = STATES.has(worker.state) ? worker.state : "unknown";
    const model = worker.model ? String(worker.model) : "no model";
    const device = worker.device ? String(worker.device) : "unknown device";
    const seen = Number(worker.seen_s_ago);
    const done = Number.isInteger(worker.jobs_done) ? worker.jobs_done : null;
    // The line stays short; the rest (jobs done, last heartbeat) is on hover.
    const title = [
      `${name}: ${state}`,
      done == null ? null : `${done} job${done === 1 ? "" : "s"} done`,
      Number.isFinite(seen) ? `last heard from ${seen.toFixed(1)} s ago` : null,
    ].filter(Boolean).join(" · ");
    return { name, state, text: `${name} · ${model} · ${device} · ${state}`, title };
  });
  return { label: workersLabel(rows.length), rows };
}

/** "no workers", "1 worker", "3 workers". */
export function workersLabel(count) {
  if (count === 0) return "no workers";
  return `${count} worker${count === 1 ? "" : "s"}`;
}

export class WorkersView {
  constructor(doc) {
    this.doc = doc;
    this.panel = doc.getElementById("workers-panel");
    this.count = doc.getElementById("workers-count");
    this.list = doc.getElementById("workers");
  }

  /** shown: workerRows' answer (null hides the panel). */
  render(shown) {
    this.panel.hidden = !shown;
    if (!shown) {
      this.list.replaceChildren();
      return;
    }
    this.count.textContent = shown.label;
    this.panel.dataset.empty = String(shown.rows.length === 0);
    this.list.setAttribute("aria-label", shown.label);
    this.list.replaceChildren(...shown.rows.map((row) => this.#item(row)));
  }

  #item({ name, state, text, title }) {
    const li = this.doc.createElement("li");
    li.className = "worker";
    li.dataset.testid = "worker";
    li.dataset.state = state;
    li.dataset.name = name;
    li.title = title;
    const dot = this.doc.createElement("span");
    dot.className = "dot";
    dot.setAttribute("aria-hidden", "true");
    li.append(dot, text);
    return li;
  }
}
