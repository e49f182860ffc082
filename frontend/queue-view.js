// The queue panel: the tab's jobs not yet ended, oldest first, each with what it
// is, where it stands and a cancel button. Draws what it is given; clicks go to
// onCancel(entry key).

import { JOB } from "./job.js";

const STATE_TEXT = {
  [JOB.SUBMITTING]: "sending",
  [JOB.QUEUED]: "queued",
  [JOB.RUNNING]: "running",
};

export class QueueView {
  constructor(doc, { onCancel }) {
    this.doc = doc;
    this.list = doc.getElementById("queue");
    this.list.addEventListener("click", (e) => {
      const button = e.target.closest("button[data-key]");
      if (button) onCancel(Number(button.dataset.key));
    });
  }

  /** entries: the unfinished jobs (JobQueue.unfinished). */
  render(entries) {
    this.list.hidden = entries.length === 0;
    this.list.replaceChildren(...entries.map((entry, i) => this.#item(entry, i)));
  }

  #item(entry, position) {
    const li = this.doc.createElement("li");
    li.className = "queue-item";
    li.dataset.testid = "queue-item";
    li.dataset.state = entry.state;
    li.dataset.jobId = entry.jobId ?? "";
    const text = this.doc.createElement("span");
    text.className = "queue-text";
    const state = this.doc.createElement("b");
    state.textContent = STATE_TEXT[entry.state] ?? entry.state;
    text.append(state, ` ${jobLabel(entry.payload ?? {}, entry.strengths, entry.live)}`);
    text.title = `Job ${position + 1} of this tab: ${text.textContent}`;
    const cancel = this.doc.createElement("button");
    cancel.type = "button";
    cancel.className = "icon-button queue-cancel";
    cancel.dataset.testid = "cancel";
    cancel.dataset.key = String(entry.key);
    cancel.setAttribute("aria-label", `Cancel: ${text.textContent}`);
    cancel.title = "Cancel this job";
    cancel.innerHTML = '<svg class="icon"><use href="#i-close"/></svg>'; // our own fixed markup
    li.append(text, cancel);
    return li;
  }
}

/** "batch of 4 · strength 0.7 · “a red house”": what a job makes, from its payload. */
export function jobLabel(payload, strengths = null, live = false) {
  const parts = [];
  if (live) parts.push("live");
  if (strengths?.length) parts.push(`sweep of ${strengths.length}`);
  else if ((payload.batch_size ?? 1) > 1) parts.push(`batch of ${payload.batch_size}`);
  else if ((payload.iterations ?? 1) > 1) parts.push(`${payload.iterations} iterations`);
  if (payload.init_image && !strengths?.length && typeof payload.strength === "number") parts.push(`strength ${payload.strength}`);
  if (!payload.init_image) parts.push("txt2img");
  const prompt = String(payload.prompt ?? "").trim();
  if (prompt) parts.push(`“${prompt.length > 28 ? `${prompt.slice(0, 27)}…` : prompt}”`);
  return parts.join(" · ");
}
