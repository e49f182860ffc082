// What a dropped PNG says about how it was made: its text chunks (tEXt, zTXt,
// iTXt), the studio's own `img2img-studio` JSON and A1111's `parameters` text.
// Pure: bytes in, plain data out, and never an exception for a damaged file
// (each problem is a sentence to show). Hand-written because the npm readers
// (png-chunks-extract, png-chunk-text) are CommonJS without iTXt/zTXt, and the
// page has no build step; inflating is the browser's own DecompressionStream.

import { a1111Summary, clip, readA1111 } from "./a1111.js";

export const STUDIO_KEY = "img2img-studio";
export const A1111_KEY = "parameters";

const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];
const MAX_TEXT_BYTES = 4 * 1024 * 1024; // an inflated chunk larger than this is not settings

/** True when the bytes start with the PNG signature. */
export function isPng(bytes) {
  return bytes.length >= 8 && SIGNATURE.every((b, i) => bytes[i] === b);
}

/**
 * Every text chunk of a PNG, in file order: {chunks: [{keyword, text}], problems: [sentence]}.
 * A chunk that is damaged (bad CRC, cut short, undecodable) is left out with a problem saying
 * which; reading stops at IEND or where the file ends.
 */
export async function readTextChunks(input) {
  const bytes = input instanceof Uint8Array ? input : new Uint8Array(input);
  const chunks = [];
  const problems = [];
  if (!isPng(bytes)) return { chunks, problems: ["This file is not a PNG."] };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 8;
  while (at + 12 <= bytes.length) {
    const length = view.getUint32(at);
    const type = latin1(bytes.subarray(at + 4, at + 8));
    const end = at + 12 + length;
    if (end > bytes.length) {
      problems.push(`The PNG is cut short inside its ${type} chunk.`);
      break;
    }
    if (type === "IEND") break;
    if (type === "tEXt" || type === "zTXt" || type === "iTXt") {
      const data = bytes.subarray(at + 8, at + 8 + length);
      if (length > MAX_TEXT_BYTES) {
        problems.push(`A ${type} chunk of ${length} bytes is too large to be settings and was skipped.`);
      } else if (crc32(bytes.subarray(at + 4, at + 8 + length)) !== view.getUint32(at + 8 + length)) {
        problems.push(`A ${type} chunk is damaged (its checksum does not match) and was skipped.`);
      } else {
        const chunk = await decodeTextChunk(type, data);
        if (chunk.problem) problems.push(chunk.problem);
        else chunks.push({ keyword: chunk.keyword, text: chunk.text });
      }
    }
    at = end;
  }
  return { chunks, problems };
}

/**
 * The settings a PNG carries, preferring the studio's JSON (it has everything) over A1111's
 * text. {kind: "studio"|"a1111"|null, meta, summary, unused, notes, problems}:
 * meta is metadata-shaped (settings.settingsFromMetadata and library.restore take it),
 * summary the dialog's sentence, unused the A1111 fields that were not used, notes what was
 * adjusted, problems why something could not be read. kind null: nothing usable found.
 */
export async function readPngSettings(input) {
  const { chunks, problems } = await readTextChunks(input);
  const text = (key) => chunks.find((c) => c.keyword === key)?.text ?? null;
  const studioText = text(STUDIO_KEY);
  if (studioText != null) {
    const meta = parseStudioJson(studioText);
    if (meta.error) problems.push(meta.error);
    else return { kind: "studio", meta: meta.value, summary: studioSummary(meta.value), unused: [], notes: [], problems };
  }
  const parameters = text(A1111_KEY);
  if (parameters != null) {
    const found = readA1111(parameters);
    if (found.error) problems.push(found.error);
    else return { kind: "a1111", meta: found.meta, summary: a1111Summary(found), unused: found.unused, notes: found.notes, problems };
  }
  return { kind: null, meta: null, summary: "", unused: [], notes: [], problems };
}

function parseStudioJson(text) {
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    return { error: `The PNG's ${STUDIO_KEY} settings are not valid JSON, so they were not used.` };
  }
  if (!value || typeof value !== "object" || Array.isArray(value)) {
    return { error: `The PNG's ${STUDIO_KEY} settings are not a JSON object, so they were not used.` };
  }
  return { value };
}

/** "studio PNG: seed 123, strength 0.6, 20 steps, k_lms, CFG 2, 128×128 · "a tree on a hill"" */
export function studioSummary(meta) {
  const parts = [];
  if (Number.isInteger(meta.seed)) parts.push(`seed ${meta.seed}`);
  if (meta.mode === "txt2img") parts.push("txt2img");
  else if (typeof meta.strength === "number") parts.push(`strength ${meta.strength}`);
  if (Number.isInteger(meta.steps)) parts.push(`${meta.steps} steps`);
  if (typeof meta.sampler === "string") parts.push(meta.sampler);
  if (typeof meta.cfg_scale === "number") parts.push(`CFG ${meta.cfg_scale}`);
  if (Number.isInteger(meta.width) && Number.isInteger(meta.height)) parts.push(`${meta.width}×${meta.height}`);
  const model = typeof meta.model === "string" ? meta.model : meta.model?.name;
  if (typeof model === "string" && model) parts.push(`model ${model}`);
  const prompt = typeof meta.prompt === "string" && meta.prompt ? ` · "${clip(meta.prompt, 80)}"` : "";
  return `studio PNG: ${parts.join(", ") || "no settings recorded"}${prompt}`;
}

// --- chunk decoding ---------------------------------------------------------------

async function decodeTextChunk(type, data) {
  const nul = data.indexOf(0);
  if (nul < 1 || nul > 79) return { problem: `A ${type} chunk has no valid keyword and was skipped.` };
  const keyword = latin1(data.subarray(0, nul));
  try {
    if (type === "tEXt") return { keyword, text: latin1(data.subarray(nul + 1)) };
    if (type === "zTXt") {
      if (data[nul + 1] !== 0) return { problem: `The ${keyword} chunk uses an unknown compression and was skipped.` };
      return { keyword, text: latin1(await inflate(data.subarray(nul + 2))) };
    }
    // iTXt: keyword \0 compressed-flag method language \0 translated-keyword \0 text (UTF-8)
    const compressed = data[nul + 1];
    const method = data[nul + 2];
    const langEnd = data.indexOf(0, nul + 3);
    const transEnd = langEnd < 0 ? -1 : data.indexOf(0, langEnd + 1);
    if (transEnd < 0 || (compressed !== 0 && compressed !== 1)) {
      return { problem: `The ${keyword} chunk is malformed and was skipped.` };
    }
    if (compressed && method !== 0) return { problem: `The ${keyword} chunk uses an unknown compression and was skipped.` };
    const body = data.subarray(transEnd + 1);
    const raw = compressed ? await inflate(body) : body;
    return { keyword, text: new TextDecoder("utf-8", { fatal: true }).decode(raw) };
  } catch (err) {
    return { problem: `The ${keyword} chunk could not be read (${err?.message || "damaged data"}) and was skipped.` };
  }
}

/** zlib-inflate with the platform's DecompressionStream, refusing absurd sizes. */
async function inflate(bytes) {
  if (typeof DecompressionStream !== "function") throw new Error("this browser cannot decompress PNG text");
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
  const reader = stream.getReader();
  const parts = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > MAX_TEXT_BYTES) {
      await reader.cancel();
      throw new Error("it inflates to more than 4 MB");
    }
    parts.push(value);
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function latin1(bytes) {
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return text;
}

// The PNG CRC-32 (ISO 3309, the same as zlib's), over a chunk's type and data.
const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
