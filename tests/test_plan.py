"""The step plan: the seed's table, diffusers' own timesteps, and exact_steps."""
import pytest
import torch
from diffusers import StableDiffusionImg2ImgPipeline

from server.engine import SAMPLERS, plan_steps
from server.engine.plan import skip_count
from server.engine.samplers import make_scheduler
from tests.tiny_model import tiny_scheduler

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


# --- at least N taken steps (min_taken_steps) ---------------------------------------------------

def smallest_total_taking(sampler, steps, strength, want):
    """The oracle: walk totals up from `steps`, planning each one plainly, until one takes `want`."""
    for total in range(steps, 201):
        plan = plan_steps(CONFIG, sampler, total, strength)
        if plan.taken >= want:
            return plan
    raise AssertionError("no total up to 200 takes enough")


def test_min_taken_raises_the_total_as_the_guide_says():
    # 20 steps at strength 0.3 take int(20 * 0.3) = 6. For at least 10, the total becomes 34:
    # int(33 * 0.3) = 9, int(34 * 0.3) = 10.
    assert plan_steps(CONFIG, "k_lms", 20, 0.3).taken == 6
    plan = plan_steps(CONFIG, "k_lms", 20, 0.3, min_taken_steps=10)
    assert (plan.steps_total, plan.skipped, plan.taken) == (34, 24, 10)
    assert plan.raised_for_min_taken and plan.steps_requested == 20 and plan.min_taken_steps == 10
    # InvokeAI #4565's case: 10 steps at strength 0.3 take 3; a minimum of 8 asks for 27 (int(26 * 0.3) = 7).
    assert plan_steps(CONFIG, "k_lms", 10, 0.3).taken == 3
    assert plan_steps(CONFIG, "k_lms", 10, 0.3, min_taken_steps=8).steps_total == 27


@pytest.mark.parametrize("sampler", list(SAMPLERS))
@pytest.mark.parametrize("strength", [0.05, 0.2, 0.3, 0.45, 0.7, 0.99])
@pytest.mark.parametrize("steps,want", [(4, 2), (4, 4), (8, 3), (10, 8), (20, 10)])
def test_min_taken_is_the_smallest_total_taking_enough(sampler, strength, steps, want):
    steps = max(steps, SAMPLERS[sampler].min_steps)
    try:
        expected = smallest_total_taking(sampler, steps, strength, want)
    except (AssertionError, ValueError):  # beyond the sampler's (LCM: 50) or the oracle's reach
        with pytest.raises(ValueError, match="cannot take"):
            plan_steps(CONFIG, sampler, steps, strength, min_taken_steps=want)
        return
    plan = plan_steps(CONFIG, sampler, steps, strength, min_taken_steps=want)
    assert plan.num_inference_steps == expected.num_inference_steps
    assert (plan.steps_total, plan.skipped, plan.taken) == (expected.steps_total, expected.skipped, expected.taken)
    assert plan.timesteps == expected.timesteps and plan.sigmas == expected.sigmas
    assert plan.raised_for_min_taken == (plan.num_inference_steps > steps)
    assert plan.taken >= want


@pytest.mark.parametrize("sampler", ["k_lms", "lcm"])
def test_a_raised_plan_is_what_diffusers_runs_at_that_total(sampler):
    plan = plan_steps(CONFIG, sampler, 4, 0.35, min_taken_steps=4)
    assert plan.raised_for_min_taken and plan.taken == 4
    scheduler = make_scheduler(sampler, CONFIG)
    pipe = StableDiffusionImg2ImgPipeline.__new__(StableDiffusionImg2ImgPipeline)
    pipe.scheduler = scheduler
    scheduler.set_timesteps(plan.num_inference_steps)
    expected, _ = pipe.get_timesteps(plan.num_inference_steps, 0.35, "cpu")
    assert plan.taken_timesteps == [float(t) for t in expected]


def test_strength_zero_and_one_are_never_raised():
    still = plan_steps(CONFIG, "k_lms", 10, 0.0, min_taken_steps=5)
    assert (still.steps_total, still.taken, still.raised_for_min_taken) == (10, 0, False)
    full = plan_steps(CONFIG, "k_lms", 4, 1.0, min_taken_steps=10)  # txt2img's plan: all 4 run
    assert (full.steps_total, full.taken, full.raised_for_min_taken) == (4, 4, False)


def test_enough_taken_already_is_left_alone():
    plan = plan_steps(CONFIG, "k_lms", 20, 0.5, min_taken_steps=10)
    assert (plan.steps_total, plan.taken, plan.raised_for_min_taken) == (20, 10, False)


def test_exact_steps_ignores_the_minimum():
    exact = plan_steps(CONFIG, "k_lms", 3, 0.4, exact_steps=True)
    with_min = plan_steps(CONFIG, "k_lms", 3, 0.4, exact_steps=True, min_taken_steps=10)
    assert with_min.taken == exact.taken == 3
    assert with_min.timesteps == exact.timesteps and not with_min.raised_for_min_taken


@pytest.mark.parametrize("bad", [-1, 201, 2.5, True, "4"])
def test_bad_minimum_is_refused(bad):
    with pytest.raises(ValueError, match="min_taken_steps"):
        plan_steps(CONFIG, "k_lms", 10, 0.5, min_taken_steps=bad)


def test_plan_dict_tells_the_raise():
    d = plan_steps(CONFIG, "k_lms", 20, 0.3, min_taken_steps=10).to_dict()
    assert (d["steps_requested"], d["min_taken_steps"], d["raised_for_min_taken"], d["steps_total"]) == (20, 10, True, 34)


# --- LCM: a few steps from a fixed 50-step distillation schedule --------------------------------

@pytest.mark.parametrize("steps", range(1, 9))
@pytest.mark.parametrize("strength", [0.1, 0.25, 0.3, 0.5, 0.6, 0.75, 0.9, 1.0])
def test_lcm_plan_at_few_steps_matches_diffusers(steps, strength):
    scheduler = make_scheduler("lcm", CONFIG)
    pipe = StableDiffusionImg2ImgPipeline.__new__(StableDiffusionImg2ImgPipeline)
    pipe.scheduler = scheduler
    scheduler.set_timesteps(steps)
    expected, _ = pipe.get_timesteps(steps, strength, "cpu")
    plan = plan_steps(CONFIG, "lcm", steps, strength)
    assert plan.taken_timesteps == [float(t) for t in expected]
    assert plan.timesteps[0] == 999.0  # LCM's schedule starts at the last training timestep
    assert all(a > b for a, b in zip(plan.sigmas, plan.sigmas[1:]))


def test_lcm_schedules_at_most_its_distillation_steps():
    assert plan_steps(CONFIG, "lcm", 50, 1.0).steps_total == 50
    with pytest.raises(ValueError, match="at most 50"):
        plan_steps(CONFIG, "lcm", 51, 1.0)
    # At strength 0.05 even 50 scheduled steps take only int(50 * 0.05) = 2.
    with pytest.raises(ValueError, match="cannot take 4 steps within 50"):
        plan_steps(CONFIG, "lcm", 4, 0.05, min_taken_steps=4)
    with pytest.raises(ValueError, match="No schedule takes exactly 10"):
        plan_steps(CONFIG, "lcm", 10, 0.1, exact_steps=True)  # would need 100
