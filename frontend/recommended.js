// Recommended settings: a model's (its folder's studio_defaults.json or its family's, sent in
// /api/health as `defaults`, with its native size after a switch) and its enabled LoRAs'
// (their `defaults` in /api/models). Which of them the form differs from, in words.

import { SAMPLERS } from "./settings.js";

const LABELS = {
  cfg_scale: "CFG scale", steps: "steps", sampler: "sampler", min_taken_steps: "at least",
  width: "size", height: "size",
};

/** Only the settings that may be recommended, dropping anything else the server sent. */
export function recommendedSettings(defaults) {
  if (!defaults || typeof defaults !== "object") return {};
  return Object.fromEntries(Object.entries(defaults).filter(([key]) => key in LABELS));
}

/**
 * The advice in one object: the model's defaults, its native size when `size` is given (a
 * switch to a model of another size), then the LoRAs' defaults, which win (a few-step LoRA's
 * sampler and steps are what make it work). `subject` says whose advice it is.
 */
export function combinedAdvice(modelDefaults, { size = null, loraDefaults = {} } = {}) {
  const fromLoras = recommendedSettings(loraDefaults);
  const advice = {
    ...recommendedSettings(modelDefaults),
    ...(Number.isInteger(size) && size > 0 ? { width: size, height: size } : {}),
    ...fromLoras,
  };
  return { advice, subject: Object.keys(fromLoras).length ? "This model and its LoRAs recommend" : "This model recommends" };
}

function shown(key, value, settings) {
  if (key === "sampler") return SAMPLERS.find(([v]) => v === value)?.[1] ?? String(value);
  if (key === "min_taken_steps") return `${value} taken steps`;
  return String(value);
}

/** "This model recommends CFG scale 2." for the recommendations `settings` does not follow; "" when it does. */
export function recommendationText(defaults, settings, subject = "This model recommends") {
  const wanted = recommendedSettings(defaults);
  const differing = [];
  let sizeSaid = false;
  for (const [key, value] of Object.entries(wanted)) {
    if (key === "width" || key === "height") {
      const w = wanted.width ?? settings.width;
      const h = wanted.height ?? settings.height;
      if (!sizeSaid && (w !== settings.width || h !== settings.height)) differing.push(`size ${w}×${h}`);
      sizeSaid = true;
      continue;
    }
    if (settings[key] !== value) differing.push(`${LABELS[key]} ${shown(key, value, settings)}`);
  }
  if (!differing.length) return "";
  const list = differing.length > 1 ? `${differing.slice(0, -1).join(", ")} and ${differing.at(-1)}` : differing[0];
  return `${subject} ${list}.`;
}
