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
];

export const MAX_STEPS = 200;
export const MAX_SEED = 2 ** 32 - 1;

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
  preview_kind: "x_t",
  live: false,
});

const SAMPLER_NAMES = new Set(SAMPLERS.map(([name]) => name));

/** Coerce and clamp anything (form values, localStorage, gallery metadata) into valid settings. */
export function normalizeSettings(raw = {}) {
  const s = { ...DEFAULTS };
  if (typeof raw.prompt === "string") s.prompt = raw.prompt.slice(0, 2000);
  if (typeof raw.negative_prompt === "string") s.negative_prompt = raw.negative_prompt.slice(0, 2000);
  s.strength = round2(clamp(num(raw.strength, DEFAULTS.strength), 0, 1));
  s.steps = Math.round(clamp(num(raw.steps, DEFAULTS.steps), 1, MAX_STEPS));
  s.cfg_scale = round2(clamp(num(raw.cfg_scale, DEFAULTS.cfg_scale), 0, 50));
  s.seed = Math.round(clamp(num(raw.seed, DEFAULTS.seed), 0, MAX_SEED));
  s.random_seed = bool(raw.random_seed, DEFAULTS.random_seed);
  s.sampler = SAMPLER_NAMES.has(raw.sampler) ? raw.sampler : DEFAULTS.sampler;
  s.width = side(raw.width, DEFAULTS.width);
  s.height = side(raw.height, DEFAULTS.height);
  s.fit = bool(raw.fit, DEFAULTS.fit);
  s.exact_steps = bool(raw.exact_steps, DEFAULTS.exact_steps);
  s.preview_kind = raw.preview_kind === "x0" ? "x0" : "x_t";
  s.live = bool(raw.live, DEFAULTS.live);
  return s;
}

/** The `generate` event payload. `initId` null means txt2img (init_image omitted). */
export function generatePayload(settings, initId, { supersede = false } = {}) {
  const s = normalizeSettings(settings);
  const payload = {
    prompt: s.prompt,
    negative_prompt: s.negative_prompt,
    strength: s.strength,
    steps: s.steps,
    exact_steps: s.exact_steps && initId != null,
    cfg_scale: s.cfg_scale,
    sampler: s.sampler,
    width: s.width,
    height: s.height,
    fit: s.fit,
    preview: "latent",
    preview_kind: s.preview_kind,
    supersede,
  };
  if (initId != null) payload.init_image = initId;
  if (!s.random_seed) payload.seed = s.seed;
  return payload;
}

/**
 * Query parameters for GET /api/plan. Without an init image the run is
 * txt2img, which skips nothing: that is strength 1's plan.
 */
export function planQuery(settings, hasInit) {
  const s = normalizeSettings(settings);
  const q = { steps: String(s.steps), strength: String(hasInit ? s.strength : 1), sampler: s.sampler };
  if (hasInit && s.exact_steps) q.exact_steps = "1";
  return q;
}

/** Settings from a saved output's metadata ("use these settings"). Keeps live as it is now. */
export function settingsFromMetadata(meta, current = DEFAULTS) {
  const m = meta ?? {};
  return normalizeSettings({
    ...current,
    prompt: m.prompt ?? current.prompt,
    negative_prompt: m.negative_prompt ?? "",
    strength: m.strength ?? current.strength,
    steps: m.steps ?? current.steps,
    exact_steps: m.exact_steps ?? false,
    cfg_scale: m.cfg_scale ?? current.cfg_scale,
    seed: m.seed ?? current.seed,
    random_seed: m.seed == null,
    sampler: m.sampler ?? current.sampler,
    width: m.width ?? current.width,
    height: m.height ?? current.height,
    fit: m.fit ?? current.fit,
    live: current.live,
    preview_kind: current.preview_kind,
  });
}

/** A random seed in the server's range. */
export function randomSeed(random = Math.random) {
  return Math.floor(random() * MAX_SEED);
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
