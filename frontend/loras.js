// LoRAs on the page as plain data: which are enabled at which weight, which
// fit the selected model, the `loras` of a generate payload, the tags the
// gallery shows, and restoring them from an output's metadata. Pure.

export const WEIGHT_MIN = -2;
export const WEIGHT_MAX = 2;
export const WEIGHT_STEP = 0.05;
export const DEFAULT_WEIGHT = 1;

/** A weight from a slider, a number field, storage or metadata: clamped, two decimals. */
export function normalizeWeight(value, fallback = DEFAULT_WEIGHT) {
  const n = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
  if (typeof n !== "number" || !Number.isFinite(n)) return fallback;
  return Math.round(Math.min(WEIGHT_MAX, Math.max(WEIGHT_MIN, n)) * 100) / 100;
}

/** {name: {enabled, weight}} cleaned up (from localStorage, or anything). */
export function normalizeLoraState(raw) {
  const state = {};
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) return state;
  for (const [name, value] of Object.entries(raw).slice(0, 500)) {
    if (!value || typeof value !== "object") continue;
    state[name] = { enabled: value.enabled === true, weight: normalizeWeight(value.weight) };
  }
  return state;
}

/** A new state with one LoRA changed: {enabled?, weight?}. */
export function withLora(state, name, change) {
  const before = state[name] ?? { enabled: false, weight: DEFAULT_WEIGHT };
  const after = {
    enabled: typeof change.enabled === "boolean" ? change.enabled : before.enabled,
    weight: "weight" in change ? normalizeWeight(change.weight, before.weight) : before.weight,
  };
  return { ...state, [name]: after };
}

/**
 * Whether a LoRA made for `loraFamily` fits a model of `modelFamily` (labels as /api/models
 * gives them). Unknown on either side fits (the server still refuses a misfit by name); a
 * model's label may say more than its base ("Stable Diffusion XL Turbo", "… inpainting").
 */
export function familyFits(loraFamily, modelFamily) {
  if (!loraFamily || !modelFamily) return true;
  return modelFamily === loraFamily || modelFamily.startsWith(`${loraFamily} `);
}

/**
 * One row per listed LoRA: {name, family, enabled, weight, usable, reason, defaults}.
 * A refused LoRA, or one for another family than the model's, is not usable (reason says why);
 * its checkbox stays as the person left it, but it is not sent.
 */
export function loraRows(listed, state, modelFamily) {
  return (Array.isArray(listed) ? listed : []).filter((l) => typeof l?.name === "string").map((l) => {
    const own = state[l.name] ?? { enabled: false, weight: DEFAULT_WEIGHT };
    let reason = "";
    if (l.refused) reason = l.refused;
    else if (!familyFits(l.family, modelFamily)) reason = `For ${l.family}; the model is ${modelFamily}.`;
    return {
      name: l.name,
      family: l.family ?? null,
      enabled: own.enabled,
      weight: own.weight,
      usable: !reason,
      reason,
      defaults: l.defaults && typeof l.defaults === "object" ? l.defaults : null,
    };
  });
}

/** generate's `loras`: the enabled, usable rows as [{name, weight}], in listed order. */
export function lorasPayload(rows) {
  return rows.filter((r) => r.enabled && r.usable).map((r) => ({ name: r.name, weight: r.weight }));
}

/** The recommended settings the enabled LoRAs bring (later rows win), {} when none. */
export function lorasDefaults(rows) {
  return Object.assign({}, ...rows.filter((r) => r.enabled && r.usable && r.defaults).map((r) => r.defaults));
}

/** A1111's prompt tag for a LoRA: <lora:ink:0.5> (the file's name without folder and extension). */
export function loraTag({ name, weight }) {
  const stem = String(name).split("/").pop().replace(/\.(safetensors|ckpt|pt)$/i, "");
  const w = typeof weight === "number" ? String(Math.round(weight * 100) / 100) : "?";
  return `<lora:${stem}:${w}>`;
}

/**
 * Rows as an output recorded them (metadata.loras: [{name, weight, sha256}]): every LoRA off,
 * then the recorded ones on at their weights, found by SHA-256 first, then name. Returns the
 * new {state, missing: [names]}; weights of LoRAs not recorded are kept, only switched off.
 */
export function lorasFromMetadata(recorded, listed, state) {
  const next = {};
  for (const [name, value] of Object.entries(state)) next[name] = { ...value, enabled: false };
  const missing = [];
  const usable = (Array.isArray(listed) ? listed : []).filter((l) => l && !l.refused);
  for (const r of Array.isArray(recorded) ? recorded : []) {
    if (!r || typeof r.name !== "string") continue;
    const found = (r.sha256 && usable.find((l) => l.sha256 === r.sha256)) || usable.find((l) => l.name === r.name);
    if (!found) {
      missing.push(r.name);
      continue;
    }
    next[found.name] = { enabled: true, weight: normalizeWeight(r.weight) };
  }
  return { state: next, missing };
}
