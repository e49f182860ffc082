// AUTOMATIC1111's `parameters` text (its "infotext") as studio settings:
//
//   a tree on a hill <lora:ink:0.5>
//   Negative prompt: blurry
//   Steps: 20, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7, Seed: 123, Size: 512x768,
//   Model hash: 0123456789, Model: dreamshaper_8, Denoising strength: 0.6, Lora hashes: "ink: abcdef123456"
//
// Read as A1111's own parse_generation_parameters reads it (modules/infotext_utils.py): the
// last line holds the settings when it has at least 3 "key: value" pairs; values may be
// JSON-quoted (and then hold commas); "Negative prompt:" starts the negative prompt, which may
// span lines. Pure.

import { SAMPLERS } from "./settings.js";

const PARAM = /\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)/g;
const SIZE = /^(\d+)x(\d+)$/;
const MAX_SETTINGS_LINE = 8000;
// Extra networks in the prompt: <lora:name:weight>, <lyco:…> (LoRAs), <hypernet:…> (not here).
const NETWORK_TAG = /<(lora|lyco|hypernet):([^:>]+)(?::([^:>]*))?(?::[^>]*)?>/gi;

const OUR_SAMPLERS = new Set(SAMPLERS.map(([name]) => name));
// A1111 sampler labels (and their k_ aliases) -> ours. A " Karras" label is the karras schedule.
const SAMPLER_NAMES = new Map([
  ["euler a", "euler_a"], ["k_euler_a", "euler_a"], ["k_euler_ancestral", "euler_a"],
  ["euler", "euler"], ["k_euler", "euler"],
  ["lms", "k_lms"],
  ["ddim", "ddim"],
  ["plms", "pndm"], // diffusers' PNDM with skipped Runge-Kutta steps is PLMS
  ["dpm++ 2m", "dpmpp_2m"], ["k_dpmpp_2m", "dpmpp_2m"], ["dpm++ 2m karras", "dpmpp_2m_karras"], ["k_dpmpp_2m_ka", "dpmpp_2m_karras"],
  ["lcm", "lcm"],
]);
// Schedule types that are the sampler's own schedule here. "Automatic" is the sampler's default,
// which for A1111's DPM++ 2M is Karras.
const DEFAULT_SCHEDULES = new Set(["automatic", "uniform"]);
const HIRES_KEYS = ["Hires upscale", "Hires upscaler", "Hires steps", "Hires resize-1"];
const USED_KEYS = new Set(["Steps", "Sampler", "Schedule type", "CFG scale", "Seed", "Size-1", "Size-2", "Model", "Model hash",
  "Denoising strength", "Lora hashes"]);

/** A1111's text split as A1111 splits it: {prompt, negative, fields: {key: value}}. */
export function splitParameters(text) {
  const lines = String(text).trim().split("\n");
  let last = lines.pop() ?? "";
  // PARAM backtracks over each word run, quadratic in a long line without colons: a settings
  // line is a few hundred characters, so a longer last line is taken as prompt text.
  if (last.length > MAX_SETTINGS_LINE || [...last.matchAll(PARAM)].length < 3) {
    lines.push(last);
    last = "";
  }
  let prompt = "";
  let negative = "";
  let inNegative = false;
  for (let line of lines) {
    line = line.trim();
    if (line.startsWith("Negative prompt:")) {
      inNegative = true;
      line = line.slice("Negative prompt:".length).trim();
    }
    if (inNegative) negative += (negative ? "\n" : "") + line;
    else prompt += (prompt ? "\n" : "") + line;
  }
  const fields = {};
  for (const [, key, raw] of last.matchAll(PARAM)) {
    let value = raw.trim();
    if (value.length > 1 && value.startsWith('"') && value.endsWith('"')) {
      try {
        value = JSON.parse(value);
      } catch {
        /* a quote A1111 would not have written: keep the raw text */
      }
    }
    const size = SIZE.exec(value);
    if (size) {
      fields[`${key}-1`] = size[1];
      fields[`${key}-2`] = size[2];
    } else {
      fields[key] = value;
    }
  }
  return { prompt, negative, fields };
}

/**
 * The settings an A1111 text gives: {meta, unused, notes, sampler} or {error}. meta is
 * metadata-shaped (prompt, negative_prompt, steps, sampler, cfg_scale, seed, width, height,
 * strength, model: {name, sha256: null, a1111_hash}, loras: [{name, weight, a1111_hash?}]); a
 * field that is missing or out of range is left out (the page keeps its own) and notes say so.
 * unused: the A1111 fields this studio has no use for.
 */
export function readA1111(text) {
  if (typeof text !== "string" || !text.trim()) return { error: "The PNG's A1111 parameters are empty." };
  const { prompt, negative, fields } = splitParameters(text);
  const notes = [];
  const unused = [];
  const { text: cleanPrompt, loras, hypernets } = extractNetworks(prompt);
  const meta = { prompt: cleanPrompt, negative_prompt: negative, loras };
  for (const name of hypernets) unused.push(`hypernetwork ${name}`);

  const number = (key, { min, max, integer = false }) => {
    if (!(key in fields)) return undefined;
    const n = Number(fields[key]);
    if (fields[key] === "" || !Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min || n > max) {
      notes.push(`${key} ${JSON.stringify(fields[key])} is not ${integer ? "a whole number" : "a number"} from ${min} to ${max}; yours is kept.`);
      return undefined;
    }
    return n;
  };
  meta.steps = number("Steps", { min: 1, max: 200, integer: true });
  meta.cfg_scale = number("CFG scale", { min: 0, max: 50 });
  meta.seed = number("Seed", { min: 0, max: 2 ** 32 - 1, integer: true });
  meta.width = number("Size-1", { min: 64, max: 2048, integer: true });
  meta.height = number("Size-2", { min: 64, max: 2048, integer: true });
  if (meta.width == null || meta.height == null) {
    meta.width = undefined;
    meta.height = undefined;
  } else if (meta.width % 8 || meta.height % 8) notes.push(`Size ${meta.width}x${meta.height} is rounded to multiples of 8.`);

  // With the hires fix, "Denoising strength" is the upscale pass's, not an img2img strength.
  const hires = HIRES_KEYS.some((k) => k in fields);
  if ("Denoising strength" in fields && hires) {
    notes.push("Denoising strength belongs to A1111's hires fix here, so the strength is kept.");
  } else {
    meta.strength = number("Denoising strength", { min: 0, max: 1 });
  }

  const sampler = mapSampler(fields.Sampler, fields["Schedule type"]);
  if (sampler.name) meta.sampler = sampler.name;
  if (sampler.note) notes.push(sampler.note);

  if (fields.Model || fields["Model hash"]) {
    meta.model = { name: fields.Model || null, sha256: null, a1111_hash: fields["Model hash"] || null };
  }
  const hashes = loraHashes(fields["Lora hashes"]);
  for (const lora of loras) if (hashes.has(lora.name)) lora.a1111_hash = hashes.get(lora.name);

  for (const key of Object.keys(fields)) {
    if (USED_KEYS.has(key) && !(hires && key === "Denoising strength")) continue;
    unused.push(key.endsWith("-1") ? key.slice(0, -2) : key.endsWith("-2") ? null : key);
  }
  for (const key of Object.keys(meta)) if (meta[key] === undefined) delete meta[key];
  return { meta, unused: unused.filter(Boolean), notes, sampler };
}

/**
 * A1111's sampler label (and schedule type) -> {name: ours or null, label, note}. Our own names
 * (the studio writes them) pass as they are.
 */
export function mapSampler(label, scheduleType) {
  if (label == null || label === "") return { name: null, label: null, note: null };
  const key = String(label).trim().toLowerCase();
  const schedule = typeof scheduleType === "string" ? scheduleType.trim().toLowerCase() : "";
  let name = SAMPLER_NAMES.get(key) ?? null;
  if (!name && OUR_SAMPLERS.has(key)) return { name: key, label, note: null };
  if (!name) return { name: null, label, note: `Sampler "${label}" has no match here (${[...OUR_SAMPLERS].join(", ")}); yours is kept.` };
  if (name === "dpmpp_2m" && (schedule === "karras" || schedule === "automatic")) name = "dpmpp_2m_karras";
  const karrasDone = name === "dpmpp_2m_karras" && (schedule === "karras" || schedule === "automatic" || !schedule);
  if (schedule && !DEFAULT_SCHEDULES.has(schedule) && !karrasDone) {
    return { name, label, note: `Schedule type "${scheduleType}" is not available for ${name} here; its own schedule is used.` };
  }
  return { name, label, note: null };
}

/** "ink: abcdef123456, other: 0123…" -> Map(alias -> hash) */
function loraHashes(text) {
  const map = new Map();
  if (typeof text !== "string") return map;
  for (const part of text.split(",")) {
    const at = part.lastIndexOf(":");
    if (at > 0) map.set(part.slice(0, at).trim(), part.slice(at + 1).trim());
  }
  return map;
}

/** The prompt without its extra-network tags, and the LoRAs they named ([{name, weight}]). */
function extractNetworks(prompt) {
  const loras = [];
  const hypernets = [];
  const text = prompt.replace(NETWORK_TAG, (_, kind, name, weight) => {
    if (kind.toLowerCase() === "hypernet") hypernets.push(name.trim());
    else {
      const w = weight === undefined || weight.trim() === "" ? 1 : Number(weight);
      loras.push({ name: name.trim(), weight: Number.isFinite(w) ? w : 1 });
    }
    return "";
  });
  return { text: text.split("\n").map(tidyLine).join("\n").trim(), loras, hypernets };
}

/**
 * A tag removed from "a, <lora:x:1>, b" leaves "a, , b": tidy what it leaves. Lines too long
 * for these backtracking patterns are only trimmed (the form keeps 2000 characters anyway).
 */
function tidyLine(line) {
  if (line.length > MAX_SETTINGS_LINE) return line.trim();
  return line.replace(/\s+,/g, ",").replace(/,(\s*,)+/g, ",").replace(/ {2,}/g, " ").replace(/^[\s,]+|[\s,]+$/g, "");
}

/** "A1111 parameters: seed 123, strength 0.6, 20 steps, Euler a → euler_a, CFG 7, 512×768 · "…"" */
export function a1111Summary({ meta, sampler }) {
  const parts = [];
  if (meta.seed != null) parts.push(`seed ${meta.seed}`);
  if (meta.strength != null) parts.push(`strength ${meta.strength}`);
  if (meta.steps != null) parts.push(`${meta.steps} steps`);
  if (sampler?.name) parts.push(sampler.label === sampler.name ? sampler.name : `${sampler.label} → ${sampler.name}`);
  if (meta.cfg_scale != null) parts.push(`CFG ${meta.cfg_scale}`);
  if (meta.width != null) parts.push(`${meta.width}×${meta.height}`);
  if (meta.model?.name) parts.push(`model ${meta.model.name}`);
  for (const lora of meta.loras) parts.push(`LoRA ${lora.name} ${lora.weight}`);
  const prompt = meta.prompt ? ` · "${clip(meta.prompt, 80)}"` : "";
  return `A1111 parameters: ${parts.join(", ") || "a prompt only"}${prompt}`;
}

/**
 * A1111 names models and LoRAs by file name without extension (and a short hash): find them
 * in GET /api/models' listing. The model by its hash (the first 10 hex of the file's SHA-256,
 * for files the studio has hashed), then by name; LoRAs by name. Unfound names stay as they
 * are, so library.restore says they are missing.
 */
export function withListedNames(meta, listing) {
  const out = { ...meta };
  const usable = (list) => (Array.isArray(list) ? list : []).filter((m) => m && !m.refused && typeof m.name === "string");
  if (meta.model) {
    const hash = typeof meta.model.a1111_hash === "string" ? meta.model.a1111_hash.toLowerCase() : "";
    const models = usable(listing?.models);
    const entry = (hash && models.find((m) => typeof m.sha256 === "string" && m.sha256.toLowerCase().startsWith(hash)))
      || (meta.model.name && models.find((m) => fileStem(m.name) === fileStem(meta.model.name)));
    out.model = entry ? { name: entry.name, sha256: entry.sha256 ?? null } : { name: meta.model.name, sha256: null };
  }
  const loras = usable(listing?.loras);
  out.loras = (meta.loras ?? []).map((l) => {
    const entry = loras.find((e) => fileStem(e.name) === fileStem(l.name));
    return entry ? { ...l, name: entry.name } : l;
  });
  return out;
}

export function clip(text, max) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function fileStem(name) {
  return String(name ?? "").split("/").pop().replace(/\.(safetensors|ckpt|pt|pth|bin)$/i, "").toLowerCase();
}
