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
  return (await exchange(url, options)).body;
}

/** The answer's JSON body and the response itself (for headers such as X-Total-Count). */
async function exchange(url, options = {}) {
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
  return { body, response };
}

/**
 * GET /api/health: {status, model, device, queue_length, model_progress, model_message, is_demo, native_size,
 * family, defaults, limits, mode?: "embedded"|"cluster", workers?: [{name, model, device, state, job_id, jobs_done, seen_s_ago}]}.
 */
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

/**
 * One page of GET /api/outputs for a query ({q?, starred?, offset, limit}: see gallery.outputsQuery):
 * {items, total}, total from X-Total-Count (null from a server that does not page).
 */
export async function listOutputsPage(query, signal) {
  const params = new URLSearchParams(query);
  const { body, response } = await exchange(`/api/outputs?${params}`, { cache: "no-store", signal });
  const header = response.headers.get("x-total-count");
  const total = header != null && /^\d+$/.test(header.trim()) ? Number(header) : null;
  const items = Array.isArray(body) ? body : Array.isArray(body?.outputs) ? body.outputs : [];
  return { items, total };
}

const outputPath = (name) => `/api/outputs/${encodeURIComponent(name)}`;

/** DELETE /api/outputs/<name>: moved to outputs/.trash/ -> {name, trashed: true}. */
export function trashOutput(name) {
  return request(outputPath(name), { method: "DELETE" });
}

/** POST /api/outputs/<name>/restore: back from the trash (409 when that name is taken again). */
export function restoreOutput(name) {
  return request(`${outputPath(name)}/restore`, { method: "POST" });
}

/** PUT /api/outputs/<name>/star {starred} -> {name, starred}. */
export function starOutput(name, starred) {
  return request(`${outputPath(name)}/star`, {
    method: "PUT",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ starred: Boolean(starred) }),
  });
}

/** POST /api/outputs/live/<file>/keep: a Live result saved into the gallery -> 201 {name, url, …the listing item}. */
export function keepLiveResult(file) {
  return request(`/api/outputs/live/${encodeURIComponent(file)}/keep`, { method: "POST" });
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
