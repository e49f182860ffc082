"""What one generation asks for, validated once at the edge so the engine can trust it."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from .plan import MAX_STEPS
from .samplers import DEFAULT_SAMPLER, SAMPLERS

PREVIEW_DECODERS = ("latent", "taesd", "vae", "off")
PREVIEW_KINDS = ("x_t", "x0")
MIN_SIDE, MAX_SIDE = 64, 2048
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str = ""
    negative_prompt: str = ""
    init_image: str | None = None  # an upload id; the job layer resolves it to pixels
    strength: float = 0.75
    steps: int = 20
    exact_steps: bool = False
    cfg_scale: float = 7.5
    seed: int | None = None  # None: pick one at random (and report it)
    sampler: str = DEFAULT_SAMPLER
    width: int | None = None  # None: the model's native size
    height: int | None = None
    fit: bool = False
    preview: str = "latent"
    preview_kind: str = "x_t"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_payload(cls, payload) -> "GenerationRequest":
        """Build from untrusted JSON, raising ValueError with a sentence a person can act on."""
        if not isinstance(payload, dict):
            raise ValueError("generate expects a JSON object of settings.")
        known = {f.name for f in fields(cls)}
        # Extra keys belong to the transport (e.g. supersede) or to newer clients; ignore them.
        values = {k: v for k, v in payload.items() if k in known and v is not None}
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
        if self.exact_steps and self.init_image is not None and self.strength == 0:
            raise ValueError("exact steps needs a strength above 0: at strength 0 the image is returned unchanged.")


def _number(name, value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise ValueError(f"{name} must be a number from {lo:g} to {hi:g}, got {value!r}.")


def _whole(name, value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{name} must be a whole number from {lo} to {hi}, got {value!r}.")


def _choice(name, value, options):
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(options)}; got {value!r}.")
