// The models folder as GET /api/models lists it: the picker's options, the
// selected model's family, and finding the model an output recorded. Pure.

/** A model's name from metadata.model: {name, sha256} now, a plain string on old outputs. */
export function recordedName(recorded) {
  if (typeof recorded === "string") return recorded;
  return typeof recorded?.name === "string" ? recorded.name : null;
}

/** The picker's options: [{value, label, disabled, title}], listed order kept. */
export function modelOptions(listing) {
  const models = Array.isArray(listing?.models) ? listing.models : [];
  return models.filter((m) => typeof m?.name === "string").map((m) => {
    const source = m.source === "embedded" ? "built-in demo" : m.source === "--model" ? "--model" : "";
    const what = m.family || m.detail || source || (m.kind === "folder" ? "diffusers folder" : "");
    if (m.refused) {
      return { value: m.name, label: `${m.name} — refused: ${m.refused}`, disabled: true, title: m.refused };
    }
    const facts = [m.family, m.detail, source, sizeText(m.size)].filter(Boolean).join(" · ");
    return { value: m.name, label: what ? `${m.name} — ${what}` : m.name, disabled: false, title: facts };
  });
}

/** The listed entry for a name (null when it is not listed). */
export function listedModel(listing, name) {
  return (listing?.models ?? []).find((m) => m?.name === name) ?? null;
}

/**
 * The model an output recorded, in the listing: the same file by SHA-256 first (a renamed
 * file still matches), then by name. {entry} when usable, else {missing: "why"}.
 */
export function findRecordedModel(listing, recorded) {
  const name = recordedName(recorded);
  const sha = typeof recorded === "object" && recorded ? recorded.sha256 : null;
  const models = (listing?.models ?? []).filter((m) => m && !m.refused);
  const entry = (sha && models.find((m) => m.sha256 === sha)) || (name && models.find((m) => m.name === name)) || null;
  if (entry) return { entry };
  if (!name) return { missing: "The output does not say which model made it." };
  const refused = (listing?.models ?? []).find((m) => m?.name === name && m.refused);
  return {
    missing: refused
      ? `The model ${name} that made this image is in the models folder but cannot be used: ${refused.refused}`
      : `The model ${name} that made this image is not in the models folder; the selected model stays.`,
  };
}

/** "2.1 GB", "9.5 MB" */
export function sizeText(bytes) {
  if (!(Number(bytes) > 0)) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let n = Number(bytes);
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i += 1;
  }
  return `${n >= 100 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

/** The gallery's model line: "sd15.safetensors · <lora:ink:0.5>"; "" when the output names neither. */
export function modelLine(meta, loraTag) {
  const name = recordedName(meta?.model);
  const loras = Array.isArray(meta?.loras) ? meta.loras.filter((l) => typeof l?.name === "string") : [];
  return [name, ...loras.map(loraTag)].filter(Boolean).join(" · ");
}
