// A model's recommended settings (its folder's studio_defaults.json, sent in
// /api/health as `defaults`): which of them the form differs from, in words.

import { SAMPLERS } from "./settings.js";

const LABELS = { cfg_scale: "CFG scale", steps: "steps", sampler: "sampler", min_taken_steps: "at least" };

/** Only the settings a model may recommend, dropping anything else the server sent. */
export function recommendedSettings(defaults) {
  if (!defaults || typeof defaults !== "object") return {};
  return Object.fromEntries(Object.entries(defaults).filter(([key]) => key in LABELS));
}

function shown(key, value) {
  if (key === "sampler") return SAMPLERS.find(([v]) => v === value)?.[1] ?? String(value);
  if (key === "min_taken_steps") return `${value} taken steps`;
  return String(value);
}

/** "This model recommends CFG scale 2." for the recommendations `settings` does not follow; "" when it does. */
export function recommendationText(defaults, settings) {
  const differing = Object.entries(recommendedSettings(defaults))
    .filter(([key, value]) => settings[key] !== value)
    .map(([key, value]) => `${LABELS[key]} ${shown(key, value)}`);
  if (!differing.length) return "";
  const list = differing.length > 1 ? `${differing.slice(0, -1).join(", ")} and ${differing.at(-1)}` : differing[0];
  return `This model recommends ${list}.`;
}
