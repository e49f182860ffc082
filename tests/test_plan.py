"""The step plan: the seed's table, diffusers' own timesteps, and exact_steps."""
import pytest
import torch
from diffusers import StableDiffusionImg2ImgPipeline

from server.engine import SAMPLERS, plan_steps
from server.engine.plan import skip_count
from server.engine.samplers import make_scheduler
from server.engine.tiny_model import tiny_scheduler

CONFIG = tiny_scheduler().config


def test_seed_table_values():
    # InvokeAI's img2img page: 10 steps at strength 0.7 take 7 and skip 3; at 0.4 take 4.
    plan = plan_steps(CONFIG, "k_lms", 10, 0.7)
    assert (plan.steps_total, plan.skipped, plan.taken) == (10, 3, 7)
    plan = plan_steps(CONFIG, "k_lms", 10, 0.4)
    assert (plan.skipped, plan.taken) == (6, 4)


SAMPLER_STEPS = [(sampler, steps) for sampler in SAMPLERS for steps in (1, 2, 7, 10, 25, 50)
                 if steps >= SAMPLERS[sampler].min_steps]  # PNDM's minimum has its own test


@pytest.mark.parametrize("sampler,steps", SAMPLER_STEPS)
@pytest.mark.parametrize("strength", [0.0, 0.05, 0.3, 0.4, 0.57, 0.7, 0.75, 0.99, 1.0])
def test_plan_matches_diffusers_get_timesteps(sampler, steps, strength):
    """Our plan is exactly what the diffusers img2img pipeline runs."""
    scheduler = make_scheduler(sampler, CONFIG)
    pipe = StableDiffusionImg2ImgPipeline.__new__(StableDiffusionImg2ImgPipeline)
    pipe.scheduler = scheduler  # get_timesteps only reads the scheduler
    scheduler.set_timesteps(steps)
    expected, _ = pipe.get_timesteps(steps, strength, "cpu")
    plan = plan_steps(CONFIG, sampler, steps, strength)
    assert plan.taken_timesteps == [float(t) for t in expected]
    assert plan.taken == len(expected)
    assert plan.skipped + plan.taken == plan.steps_total == len(scheduler.timesteps)
    assert len(plan.sigmas) == plan.steps_total
    assert all(a >= b for a, b in zip(plan.sigmas, plan.sigmas[1:])), "noise must fall along the schedule"


@pytest.mark.parametrize("strength", [0.1, 0.25, 0.4, 0.7, 0.75, 1.0])
def test_exact_steps_takes_exactly_n(strength):
    for n in range(1, 51):
        plan = plan_steps(CONFIG, "k_lms", n, strength, exact_steps=True)
        assert plan.taken == n
        # It is the smallest such total: one fewer scheduled step would take fewer.
        fewer = plan.num_inference_steps - 1
        assert fewer < n or fewer - skip_count(fewer, strength) < n


def test_pndm_minimum_steps():
    with pytest.raises(ValueError, match="at least 4 steps"):
        plan_steps(CONFIG, "pndm", 3, 0.5)


def test_exact_steps_at_strength_zero_is_refused():
    with pytest.raises(ValueError, match="strength above 0"):
        plan_steps(CONFIG, "k_lms", 10, 0.0, exact_steps=True)


@pytest.mark.parametrize("steps,strength", [(0, 0.5), (201, 0.5), (10, -0.1), (10, 1.5)])
def test_bad_plan_arguments(steps, strength):
    with pytest.raises(ValueError):
        plan_steps(CONFIG, "k_lms", steps, strength)


def test_unknown_sampler_names_the_choices():
    with pytest.raises(ValueError, match="k_lms"):
        plan_steps(CONFIG, "nope", 10, 0.5)


def test_sigmas_are_the_schedulers_own_for_k_samplers():
    plan = plan_steps(CONFIG, "euler", 10, 1.0)
    scheduler = make_scheduler("euler", CONFIG)
    scheduler.set_timesteps(10)
    assert plan.sigmas == pytest.approx(scheduler.sigmas[:10].tolist())
    # DDIM has no sigma table: ours comes from alphas_cumprod and starts high.
    ddim = plan_steps(CONFIG, "ddim", 10, 1.0)
    alphas = make_scheduler("ddim", CONFIG).alphas_cumprod
    t0 = int(ddim.timesteps[0])
    assert ddim.sigmas[0] == pytest.approx(float(((1 - alphas[t0]) / alphas[t0]) ** 0.5), rel=1e-6)
    assert torch.is_tensor(alphas)
