// The Socket.IO half of the contract: connection state, the `generate`,
// `cancel` and `promote` emits, and the server events handed on by name. socket.io itself
// reconnects; page state lives elsewhere, so a reconnect loses nothing.

export const JOB_EVENTS = ["job_plan", "job_step", "job_output", "job_done", "job_cancelled", "job_error"];

const ACK_TIMEOUT_MS = 20000;
// A full VAE decode of a strip step can wait behind a running job's step on a slow machine.
const PROMOTE_TIMEOUT_MS = 120000;

/**
 * This tab's id: jobs belong to the tab, so a reconnect keeps them (and only this tab may cancel or
 * full-decode them). sessionStorage is per tab and survives a reload. getRandomValues, unlike
 * randomUUID, also works on plain http from another machine.
 */
export function tabClientId(storage = globalThis.sessionStorage, crypto = globalThis.crypto) {
  const key = "img2img-studio-client-id";
  let id = null;
  try {
    id = storage?.getItem(key);
  } catch {
    id = null; // storage blocked: a fresh id per page load still works
  }
  if (!/^[0-9a-f]{32}$/.test(id ?? "")) {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    id = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    try {
      storage?.setItem(key, id);
    } catch {
      // not kept: this page load keeps its id anyway
    }
  }
  return id;
}

/**
 * `io` is socket.io-client's export (passed in so this module loads in node).
 * handlers: onConnection(state, detail), onModelStatus(payload), onModelError(payload),
 * onJobEvent(name, payload).
 * state is "connecting" | "connected" | "reconnecting" | "disconnected".
 */
export function connectStudio(io, { onConnection, onModelStatus, onModelError = () => {}, onJobEvent }) {
  const socket = io({ reconnectionDelayMax: 4000, auth: { client_id: tabClientId() } });
  let everConnected = false;

  onConnection("connecting");
  socket.on("connect", () => {
    onConnection("connected", everConnected ? "reconnected" : "");
    everConnected = true;
  });
  socket.on("disconnect", (reason) => onConnection("disconnected", reason));
  socket.on("connect_error", (err) => onConnection(everConnected ? "reconnecting" : "connecting", err?.message || ""));
  socket.io.on("reconnect_attempt", (n) => onConnection("reconnecting", `attempt ${n}`));
  socket.on("model_status", (payload) => onModelStatus(payload ?? {}));
  socket.on("model_error", (payload) => onModelError(payload ?? {}));
  for (const name of JOB_EVENTS) socket.on(name, (payload) => onJobEvent(name, payload ?? {}));

  return {
    /** Emit generate; resolves with the ack ({job_id} or {error}), never rejects. */
    generate(payload) {
      return new Promise((resolve) => {
        socket.timeout(ACK_TIMEOUT_MS).emit("generate", payload, (err, ack) => {
          if (err) resolve({ error: "The server did not answer the generate request. Check the connection and try again." });
          else if (ack && typeof ack === "object") resolve(ack);
          else resolve({ error: "The server answered generate without a job id." });
        });
      });
    },
    /** Emit select_model {model}; resolves with the ack ({ok, model, family, defaults, native_size} or {error}). */
    selectModel(model) {
      return new Promise((resolve) => {
        socket.timeout(ACK_TIMEOUT_MS).emit("select_model", { model }, (err, ack) => {
          if (err) resolve({ error: "The server did not answer the model switch. Check the connection and try again." });
          else if (ack && typeof ack === "object") resolve(ack);
          else resolve({ error: "The server answered select_model without saying which model." });
        });
      });
    },
    cancel(jobId) {
      socket.emit("cancel", { job_id: jobId });
    },
    /**
     * Ask for the full-VAE decode of a strip frame: {job_id, index, item}.
     * Resolves with the ack ({ok, image, mime, width, height, ...} or {error}), never rejects.
     */
    promote(request) {
      return new Promise((resolve) => {
        socket.timeout(PROMOTE_TIMEOUT_MS).emit("promote", request, (err, ack) => {
          if (err) resolve({ error: "The server did not answer the full-decode request in time. Try again." });
          else if (ack && typeof ack === "object") resolve(ack);
          else resolve({ error: "The server answered the full-decode request without an image." });
        });
      });
    },
    get connected() {
      return socket.connected;
    },
  };
}
