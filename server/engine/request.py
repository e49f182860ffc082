"""What one generation asks for, validated once at the edge so the engine can trust it."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from .plan import MAX_STEPS
from .samplers import DEFAULT_SAMPLER, SAMPLERS

# "auto": the studio picks the large view's decoder per model from measured cost (preview_budget.py).
PREVIEW_DECODERS = ("auto", "latent", "patch", "taesd", "vae", "off")
# "both": each step frame carries the noisy latent x_t (the strip) and the predicted result x0 (the
# large view); "x_t" and "x0" send one of them, as before.
PREVIEW_KINDS = ("both", "x_t", "x0")
INTERMEDIATE_DECODERS = ("off", "vae", "preview")  # "preview": the job's own preview decoder
MAX_ITERATIONS = 16
MAX_BATCH = 16
MAX_SWEEP = 8
MIN_SIDE, MAX_SIDE = 64, 2048
MAX_SEED = 2**32 - 1
MAX_LORAS = 8
LORA_WEIGHT_RANGE = (-4.0, 4.0)  # A1111 allows any number; past ±4 a LoRA only breaks the picture


def request_limits() -> dict:
    """The limits a generate request is checked against, as [lowest, highest]: GET /api/health
    publishes them so the page clamps its fields to the server's numbers, not copies of them."""
    return {"steps": [1, MAX_STEPS], "seed": [0, MAX_SEED], "iterations": [1, MAX_ITERATIONS],
            "batch_size": [1, MAX_BATCH], "sweep": [2, MAX_SWEEP], "side": [MIN_SIDE, MAX_SIDE],
            "loras": [0, MAX_LORAS]}


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str = ""
    negative_prompt: str = ""
    init_image: str | None = None  # an upload id; the job layer resolves it to pixels
    strength: float = 0.75
    steps: int = 20
    exact_steps: bool = False
    # At least this many steps taken (0: off): a plan that would take fewer gets a larger total
    # instead (plan.py). Ignored with exact_steps, which already says how many are taken.
    min_taken_steps: int = 0
    cfg_scale: float = 7.5
    seed: int | None = None  # None: pick one at random (and report it)
    sampler: str = DEFAULT_SAMPLER
    width: int | None = None  # None: the model's native size
    height: int | None = None
    fit: bool = False
    preview: str = "auto"
    preview_kind: str = "both"
    # Variations (InvokeAI's -v/-V): the seed's noise is slerped toward each listed seed's noise
    # in turn, then toward variation_seed's by variation_amount. Outputs record the full list.
    variation_amount: float = 0.0
    variation_seed: int | None = None  # None with an amount > 0: pick one (and report it)
    with_variations: tuple[tuple[int, float], ...] = ()
    iterations: int = 1  # > 1: each output becomes the next one's init
    batch_size: int = 1  # > 1: independent takes of the same settings, each from the same init (seed + i)
    strengths: tuple[float, ...] = ()  # a strength sweep: one output per strength, same seed
    save_intermediates: str = "off"
    # LoRAs as (name, weight) pairs, in order: names the studio layer resolves in the models folder's
    # loras/ (the engine knows no folders); an output's metadata records them with each file's SHA-256.
    loras: tuple[tuple[str, float], ...] = ()

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_payload(cls, payload, defaults: dict | None = None) -> "GenerationRequest":
        """Build from untrusted JSON, raising ValueError with a sentence a person can act on.
        `defaults` (the model's recommended settings) fill in what the payload leaves out."""
        if not isinstance(payload, dict):
            raise ValueError("generate expects a JSON object of settings.")
        known = {f.name for f in fields(cls)}
        # Extra keys belong to the transport (e.g. supersede) or to newer clients; ignore them.
        given = {k: v for k, v in payload.items() if k in known and v is not None}
        values = {**{k: v for k, v in (defaults or {}).items() if k in known}, **given}
        # JSON has lists, not tuples; keep the request hashable and immutable.
        if isinstance(values.get("strengths"), list):
            values["strengths"] = tuple(values["strengths"])
        if isinstance(values.get("with_variations"), list):
            values["with_variations"] = tuple(tuple(v) if isinstance(v, list) else v
                                              for v in values["with_variations"])
        if "loras" in values:
            values["loras"] = parse_loras(values["loras"])
        req = cls(**values)
        req._validate()
        return req

    def _validate(self) -> None:
        for name in ("prompt", "negative_prompt"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name} must be text.")
        if len(self.prompt) > 2000 or len(self.negative_prompt) > 2000:
            raise ValueError("Prompts are limited to 2000 characters.")
        if self.init_image is not None and not isinstance(self.init_image, str):
            raise ValueError("init_image must be an upload id from POST /api/uploads.")
        _number("strength", self.strength, 0.0, 1.0)
        _whole("steps", self.steps, 1, MAX_STEPS)
        if isinstance(self.min_taken_steps, bool) or not isinstance(self.min_taken_steps, int) \
                or not 0 <= self.min_taken_steps <= MAX_STEPS:
            raise ValueError(f"min_taken_steps (at least this many steps taken) must be a whole number from 0 (off) "
                             f"to {MAX_STEPS}, got {self.min_taken_steps!r}.")
        _number("cfg_scale", self.cfg_scale, 0.0, 50.0)
        if self.seed is not None:
            _whole("seed", self.seed, 0, MAX_SEED)
        for name in ("exact_steps", "fit"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false.")
        _choice("sampler", self.sampler, SAMPLERS)
        _choice("preview", self.preview, PREVIEW_DECODERS)
        _choice("preview_kind", self.preview_kind, PREVIEW_KINDS)
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None:
                _whole(name, value, MIN_SIDE, MAX_SIDE)
                if value % 8:
                    raise ValueError(f"{name} must be a multiple of 8, got {value} (try {value // 8 * 8}).")
        self._validate_batch()
        if parse_loras(self.loras) != self.loras:
            raise ValueError("loras must be a list of {name, weight} objects.")
        if self.exact_steps and self.init_image is not None and self.strength == 0:
            raise ValueError("exact steps needs a strength above 0: at strength 0 the image is returned unchanged.")


    def _validate_batch(self) -> None:
        """Variations, iterations, sweeps and intermediates."""
        _number("variation_amount", self.variation_amount, 0.0, 1.0)
        if self.variation_seed is not None:
            _whole("variation_seed", self.variation_seed, 0, MAX_SEED)
        if not isinstance(self.with_variations, tuple) or not all(
                isinstance(v, tuple) and len(v) == 2 for v in self.with_variations):
            raise ValueError("with_variations must be a list of [seed, weight] pairs.")
        for seed, weight in self.with_variations:
            _whole("a with_variations seed", seed, 0, MAX_SEED)
            _number("a with_variations weight", weight, 0.0, 1.0)
        _whole("iterations", self.iterations, 1, MAX_ITERATIONS)
        _whole("batch_size", self.batch_size, 1, MAX_BATCH)
        if self.batch_size > 1 and self.iterations > 1:
            raise ValueError("Choose either a batch (independent takes) or iterations (each output feeding the "
                             "next), not both in one job.")
        _choice("save_intermediates", self.save_intermediates, INTERMEDIATE_DECODERS)
        if not isinstance(self.strengths, tuple):
            raise ValueError("strengths must be a list of numbers from 0 to 1.")
        if self.strengths:
            if not 2 <= len(self.strengths) <= MAX_SWEEP:
                raise ValueError(f"A strength sweep takes 2 to {MAX_SWEEP} strengths, got {len(self.strengths)}.")
            for value in self.strengths:
                _number("each sweep strength", value, 0.0, 1.0)
            if self.init_image is None:
                raise ValueError("A strength sweep needs an init image: strength only means something in img2img.")
            if self.iterations > 1:
                raise ValueError("Choose either a strength sweep or iterations, not both in one job.")
            if self.batch_size > 1:
                raise ValueError("Choose either a strength sweep or a batch, not both in one job.")

    @property
    def outputs_count(self) -> int:
        if self.strengths:
            return len(self.strengths)
        return self.iterations if self.iterations > 1 else self.batch_size


def parse_loras(value) -> tuple[tuple[str, float], ...]:
    """`loras` as a request gives it ([{name, weight?}], weight 1 when left out) or as the studio holds it
    ([(name, weight)]) -> ((name, weight), ...), or a ValueError naming what is wrong. Names are only
    checked as text here; the studio layer resolves them inside the models folder's loras/."""
    if not isinstance(value, (list, tuple)):
        raise ValueError("loras must be a list of {name, weight} objects, e.g. [{\"name\": \"ink.safetensors\", "
                         "\"weight\": 0.8}].")
    if len(value) > MAX_LORAS:
        raise ValueError(f"loras takes at most {MAX_LORAS} LoRAs, got {len(value)}.")
    pairs = []
    for entry in value:
        if isinstance(entry, dict):
            # An output's metadata records may come back as they are (their hashes are ignored here).
            unknown = sorted(set(entry) - {"name", "weight", "sha256", "a1111_hash"})
            if unknown:
                raise ValueError(f"a loras entry has only name and weight, not {', '.join(map(str, unknown))}.")
            name, weight = entry.get("name"), entry.get("weight", 1.0)
        elif isinstance(entry, (list, tuple)) and len(entry) == 2:
            name, weight = entry
        else:
            raise ValueError(f"each loras entry must be an object {{name, weight}}, got {entry!r:.80}.")
        if not isinstance(name, str) or not 0 < len(name) <= 1024 or "\0" in name:
            raise ValueError("a loras entry's name must be the text GET /api/models lists under loras.")
        lo, hi = LORA_WEIGHT_RANGE
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not lo <= weight <= hi:
            raise ValueError(f"the weight of the LoRA {name} must be a number from {lo:g} to {hi:g}, got {weight!r}.")
        pairs.append((name, float(weight)))
    return tuple(pairs)


def _number(name, value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise ValueError(f"{name} must be a number from {lo:g} to {hi:g}, got {value!r}.")


def _whole(name, value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{name} must be a whole number from {lo} to {hi}, got {value!r}.")


def _choice(name, value, options):
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(options)}; got {value!r}.")
