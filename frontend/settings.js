// The generation settings as plain data: defaults, clean-up, and the shapes
// the server wants (the `generate` payload and the /api/plan query). Pure.

export const SAMPLERS = [
  ["k_lms", "LMS (k_lms)"],
  ["ddim", "DDIM"],
  ["euler", "Euler"],
  ["euler_a", "Euler ancestral"],
  ["dpmpp_2m", "DPM++ 2M"],
  ["dpmpp_2m_karras", "DPM++ 2M Karras"],
  ["pndm", "PNDM"],
  ["lcm", "LCM"],
];

/**
 * The server's limits (GET /api/health `limits`, from server/engine/request.py): these values
 * hold until the page has read them, then applyLimits puts the server's in their place.
 */
export const LIMITS = {
  steps: 200,
  seed: 2 ** 32 - 1,
  iterations: 16,
  batch_size: 16,
  sweep_min: 2,
  sweep_max: 8,
};

/** Take the server's limits ({steps: [1, 200], iterations: [1, 16], …}); unknown or malformed ones are left as they are. */
export function applyLimits(limits) {
  const top = (name, key = name) => {
    const range = limits?.[name];
    if (Array.isArray(range) && Number.isInteger(range[1]) && range[1] > 0) LIMITS[key] = range[1];
  };
  top("steps");
  top("seed");
  top("iterations");
  top("batch_size");
  top("sweep", "sweep_max");
  if (Array.isArray(limits?.sweep) && Number.isInteger(limits.sweep[0])) LIMITS.sweep_min = limits.sweep[0];
  return LIMITS;
}

export const DEFAULT_SWEEP = "0.2, 0.4, 0.6, 0.8";

/** save_intermediates choices: [value, label]. */
export const INTERMEDIATES = [
  ["off", "off"],
  ["vae", "full VAE"],
  ["preview", "preview"],
];

export const DEFAULTS = Object.freeze({
  prompt: "",
  negative_prompt: "",
  strength: 0.7,
  steps: 20,
  cfg_scale: 7.5,
  seed: 42,
  random_seed: true,
  sampler: "k_lms",
  width: 512,
  height: 512,
  fit: true,
  exact_steps: false,
  min_taken_steps: 0, // at least this many steps taken (0: off); the server raises the total to meet it
  live: false,
  variation_amount: 0,
  iterations: 1,
  batch_size: 1, // independent takes of one job: seed, seed+1, …
  with_variations: [], // [[seed, weight], ...] from a gallery item: reproduces its variation
  save_intermediates: "off",
  sweep_strengths: DEFAULT_SWEEP, // the text of the sweep list input
});

const SAMPLER_NAMES = new Set(SAMPLERS.map(([name]) => name));
const INTERMEDIATE_NAMES = new Set(INTERMEDIATES.map(([name]) => name));

/** Coerce and clamp anything (form values, localStorage, gallery metadata) into valid settings. */
export function normalizeSettings(raw = {}) {
  const s = { ...DEFAULTS };
  if (typeof raw.prompt === "string") s.prompt = raw.prompt.slice(0, 2000);
  if (typeof raw.negative_prompt === "string") s.negative_prompt = raw.negative_prompt.slice(0, 2000);
  s.strength = round2(clamp(num(raw.strength, DEFAULTS.strength), 0, 1));
  s.steps = Math.round(clamp(num(raw.steps, DEFAULTS.steps), 1, LIMITS.steps));
  s.cfg_scale = round2(clamp(num(raw.cfg_scale, DEFAULTS.cfg_scale), 0, 50));
  s.seed = Math.round(clamp(num(raw.seed, DEFAULTS.seed), 0, LIMITS.seed));
  s.random_seed = bool(raw.random_seed, DEFAULTS.random_seed);
  s.sampler = SAMPLER_NAMES.has(raw.sampler) ? raw.sampler : DEFAULTS.sampler;
  s.width = side(raw.width, DEFAULTS.width);
  s.height = side(raw.height, DEFAULTS.height);
  s.fit = bool(raw.fit, DEFAULTS.fit);
  s.exact_steps = bool(raw.exact_steps, DEFAULTS.exact_steps);
  s.min_taken_steps = Math.round(clamp(num(raw.min_taken_steps, DEFAULTS.min_taken_steps), 0, LIMITS.steps));
  s.live = bool(raw.live, DEFAULTS.live);
  s.variation_amount = round2(clamp(num(raw.variation_amount, DEFAULTS.variation_amount), 0, 1));
  s.iterations = Math.round(clamp(num(raw.iterations, DEFAULTS.iterations), 1, LIMITS.iterations));
  s.batch_size = Math.round(clamp(num(raw.batch_size, DEFAULTS.batch_size), 1, LIMITS.batch_size));
  s.with_variations = variationPairs(raw.with_variations);
  s.save_intermediates = INTERMEDIATE_NAMES.has(raw.save_intermediates) ? raw.save_intermediates : DEFAULTS.save_intermediates;
  s.sweep_strengths = typeof raw.sweep_strengths === "string" ? raw.sweep_strengths.slice(0, 200) : DEFAULTS.sweep_strengths;
  return s;
}

/** [[seed, weight], ...] kept only when every pair is a whole seed and a weight in 0..1. */
function variationPairs(raw) {
  if (!Array.isArray(raw)) return [];
  const pairs = [];
  for (const pair of raw) {
    if (!Array.isArray(pair) || pair.length !== 2) return [];
    const [seed, weight] = pair.map((v) => num(v, NaN));
    if (!Number.isInteger(seed) || seed < 0 || seed > LIMITS.seed || !(weight >= 0 && weight <= 1)) return [];
    pairs.push([seed, weight]);
  }
  return pairs;
}

/**
 * The sweep list input ("0.2, 0.4, 0.6, 0.8") as numbers: {values} or {error}
 * with a sentence to show. 2..8 numbers from 0 to 1, commas or spaces between.
 */
export function parseStrengthList(text) {
  const parts = String(text ?? "").split(/[\s,;]+/).filter(Boolean);
  const values = [];
  for (const part of parts) {
    const n = Number(part);
    if (!Number.isFinite(n) || n < 0 || n > 1) return { error: `"${part}" is not a strength from 0 to 1.` };
    values.push(round2(n));
  }
  if (values.length < LIMITS.sweep_min || values.length > LIMITS.sweep_max) {
    return { error: `A sweep takes ${LIMITS.sweep_min} to ${LIMITS.sweep_max} strengths, e.g. ${DEFAULT_SWEEP}.` };
  }
  return { values };
}

/**
 * The `generate` event payload. `initId` null means txt2img (init_image omitted).
 * `strengths` (a parsed sweep list) makes it a strength sweep: one output per
 * strength, so iterations are left at 1.
 */
export function generatePayload(settings, initId, { live = false, strengths = null } = {}) {
  const s = normalizeSettings(settings);
  const payload = {
    prompt: s.prompt,
    negative_prompt: s.negative_prompt,
    strength: s.strength,
    steps: s.steps,
    exact_steps: s.exact_steps && initId != null,
    min_taken_steps: s.min_taken_steps,
    cfg_scale: s.cfg_scale,
    sampler: s.sampler,
    width: s.width,
    height: s.height,
    fit: s.fit,
    variation_amount: s.variation_amount,
    iterations: strengths ? 1 : s.iterations,
    save_intermediates: s.save_intermediates,
  };
  if (initId != null) payload.init_image = initId;
  if (!s.random_seed) payload.seed = s.seed;
  if (s.with_variations.length) payload.with_variations = s.with_variations.map((pair) => [...pair]);
  if (strengths) payload.strengths = [...strengths];
  // A Live run is one take: the server cancels the tab's earlier Live job for it.
  if (live) payload.live = true;
  else if (!strengths && s.batch_size > 1) payload.batch_size = s.batch_size;
  return payload;
}

/**
 * Query parameters for GET /api/plan. Without an init image the run is
 * txt2img, which skips nothing: that is strength 1's plan. The minimum of taken
 * steps always goes along, 0 included: left out, the server would plan with the
 * model's recommended one, and generate sends the form's.
 */
export function planQuery(settings, hasInit) {
  const s = normalizeSettings(settings);
  const q = {
    steps: String(s.steps),
    strength: String(hasInit ? s.strength : 1),
    sampler: s.sampler,
    min_taken_steps: String(s.min_taken_steps),
  };
  if (hasInit && s.exact_steps) q.exact_steps = "1";
  return q;
}

/**
 * Settings from a saved output's metadata ("use these settings"). Keeps live,
 * the preview kind and the intermediates choice as they are now, and the
 * sweep list unless the metadata has one (a contact sheet's).
 * Variations: with_variations is the output's full list of [seed, weight]
 * (its own variation included), so the same seed + list reproduces the image;
 * variation_amount and iterations come back as they were asked for.
 */
export function settingsFromMetadata(meta, current = DEFAULTS) {
  const m = meta ?? {};
  const cur = normalizeSettings(current);
  return normalizeSettings({
    ...current,
    prompt: m.prompt ?? current.prompt,
    negative_prompt: m.negative_prompt ?? "",
    strength: m.strength ?? current.strength,
    steps: m.steps ?? current.steps,
    exact_steps: m.exact_steps ?? false,
    min_taken_steps: m.min_taken_steps ?? 0,
    cfg_scale: m.cfg_scale ?? current.cfg_scale,
    seed: m.seed ?? current.seed,
    random_seed: m.seed == null,
    sampler: m.sampler ?? current.sampler,
    width: m.width ?? current.width,
    height: m.height ?? current.height,
    fit: m.fit ?? current.fit,
    live: cur.live,
    variation_amount: m.variation_amount ?? 0,
    iterations: m.iterations ?? 1,
    with_variations: m.with_variations ?? [],
    save_intermediates: cur.save_intermediates,
    // A contact sheet records its sweep: bring the list back for another run of it.
    sweep_strengths: Array.isArray(m.strengths) && m.strengths.length ? m.strengths.join(", ") : cur.sweep_strengths,
  });
}

/** A random seed in the server's range. */
export function randomSeed(random = Math.random) {
  return Math.floor(random() * LIMITS.seed);
}

function num(v, fallback) {
  const n = typeof v === "string" && v.trim() !== "" ? Number(v) : v;
  return typeof n === "number" && Number.isFinite(n) ? n : fallback;
}

function bool(v, fallback) {
  return typeof v === "boolean" ? v : fallback;
}

function side(v, fallback) {
  const n = num(v, fallback);
  return clamp(Math.round(n / 8) * 8, 64, 2048);
}

function clamp(n, lo, hi) {
  return Math.min(hi, Math.max(lo, n));
}

function round2(n) {
  return Math.round(n * 100) / 100;
}
