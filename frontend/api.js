// fetch helpers for the HTTP half of the contract. Each throws ApiError
// carrying the server's own sentence ({error}) when there is one.

export class ApiError extends Error {
  constructor(message, status = 0) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

async function request(url, options = {}) {
  let response;
  try {
    response = await fetch(url, options);
  } catch (err) {
    if (err?.name === "AbortError") throw err;
    throw new ApiError("The server cannot be reached. Is it still running?", 0);
  }
  let body = null;
  const type = response.headers.get("content-type") || "";
  if (type.includes("application/json")) {
    try {
      body = await response.json();
    } catch {
      body = null;
    }
  }
  if (!response.ok) {
    const message = body?.error || `${response.status} ${response.statusText || "error"} from ${url.split("?")[0]}`;
    throw new ApiError(message, response.status);
  }
  return body;
}

/** GET /api/health: {status, model, device, queue_length, model_progress, model_message, is_demo, native_size, family, defaults}. */
export function getHealth() {
  return request("/api/health", { cache: "no-store" });
}

/**
 * GET /api/models: {current, loaded, models_dir, models: [{name, family, kind, size, sha256?,
 * refused?, detail?, source?}], loras: [{name, family, size, refused?, defaults?}]}.
 */
export async function listModels() {
  const body = await request("/api/models", { cache: "no-store" });
  return {
    ...body,
    models: Array.isArray(body?.models) ? body.models : [],
    loras: Array.isArray(body?.loras) ? body.loras : [],
  };
}

/** GET /api/plan for a query object (see settings.planQuery). Pass an AbortSignal to drop stale asks. */
export function getPlan(query, signal) {
  const params = new URLSearchParams(query);
  return request(`/api/plan?${params}`, { signal });
}

/**
 * POST /api/uploads with a File or Blob: {id, width, height, has_alpha}.
 * `mask` (a PNG Blob the image's size, white = repaint) makes those pixels
 * transparent on the server, so the job inpaints them.
 */
export function uploadImage(blob, filename = "image.png", mask = null) {
  const form = new FormData();
  form.append("image", blob, blob.name || filename);
  if (mask) form.append("mask", mask, "mask.png");
  return request("/api/uploads", { method: "POST", body: form });
}

/** GET /api/outputs: saved images, newest first. Tolerates {outputs: [...]} too. */
export async function listOutputs() {
  const body = await request("/api/outputs", { cache: "no-store" });
  if (Array.isArray(body)) return body;
  if (Array.isArray(body?.outputs)) return body.outputs;
  return [];
}

/** Where the server serves a stored upload (GET /api/uploads/<id>). */
export function uploadUrl(id) {
  return `/api/uploads/${encodeURIComponent(id)}`;
}

/**
 * GET a stored upload's PNG as a Blob. Throws ApiError (status 404 and the
 * server's sentence when the upload is gone).
 */
export async function fetchUpload(url) {
  let response;
  try {
    response = await fetch(url);
  } catch {
    throw new ApiError("The server cannot be reached. Is it still running?", 0);
  }
  if (!response.ok) {
    let message = `${response.status} ${response.statusText || "error"} from ${url}`;
    try {
      message = (await response.json())?.error || message;
    } catch {
      /* not JSON: keep the status line */
    }
    throw new ApiError(message, response.status);
  }
  return response.blob();
}
