"""The generation engine: diffusers components, the step plan, the denoising loop and its step previews.

Nothing here knows about Flask; the CLI, the web server and the tests all call it the same way.
"""
from .generate import generate
from .loading import LoadedModel, ModelLoadError, load_model, pick_device
from .plan import StepPlan, plan_steps
from .request import GenerationRequest
from .results import GenerationCancelled, GenerationResult, StepFrame
from .samplers import DEFAULT_SAMPLER, SAMPLERS

__all__ = [
    "GenerationCancelled",
    "GenerationRequest",
    "GenerationResult",
    "LoadedModel",
    "ModelLoadError",
    "SAMPLERS",
    "DEFAULT_SAMPLER",
    "StepFrame",
    "StepPlan",
    "generate",
    "load_model",
    "pick_device",
    "plan_steps",
]
