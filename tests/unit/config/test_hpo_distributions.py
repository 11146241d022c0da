"""wandb's sweep distributions, metric.goal's default, metric.target and early_terminate.

Each distribution test draws 2,000 values with a seeded random search (hpo_spec.trials) and checks them against
wandb's definition (wandb/sweeps, src/sweeps/params.py: the inverse CDF of a uniform draw, a q_ form rounded
to a multiple of q): the set or range the values lie in, and the moments of the distribution they follow.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest

from sandflow.config.errors import ConfigError
from sandflow.config.hpo_spec import load_hpo, trials
from sandflow.config.sweep_distributions import value_at
from sandflow.report.hpo_results import summarise

NAME = "p.job.extra_configs.x"
DRAWS = 2000


def draws(spec: dict, seed: int = 0) -> list:
    search = {"method": "random", "metric": {"name": "p.job.m"}, "parameters": {NAME: spec}, "sweep_max_count": DRAWS}
    drawn = [trial[NAME] for trial in trials(load_hpo({**search, "seed": seed}))]
    again = [trial[NAME] for trial in trials(load_hpo({**search, "seed": seed}))]
    assert drawn == again  # seeded: the same config plans the same trials
    return drawn


def uniform_moments(values: list[float], low: float, high: float) -> None:
    """values look uniform on [low, high]: inside it, reaching near both ends, mean in the middle."""
    assert all(low <= v <= high for v in values)
    width = high - low
    assert min(values) < low + 0.01 * width and max(values) > high - 0.01 * width
    assert statistics.fmean(values) == pytest.approx((low + high) / 2, abs=0.03 * width)
    assert statistics.stdev(values) == pytest.approx(width / math.sqrt(12), rel=0.05)


def multiples(values: list, q: float) -> bool:
    return all(math.isclose(v / q, round(v / q), abs_tol=1e-9) for v in values)


def test_normal_is_mu_plus_sigma_times_a_standard_normal():
    values = draws({"distribution": "normal", "mu": 5, "sigma": 2})
    assert all(isinstance(v, float) for v in values)
    assert statistics.fmean(values) == pytest.approx(5, abs=0.15)
    assert statistics.stdev(values) == pytest.approx(2, rel=0.05)
    spec = {"mu": 5, "sigma": 2}
    assert value_at("normal", spec, 0.5, NAME) == pytest.approx(5)
    assert value_at("normal", spec, 0.8413447460685429, NAME) == pytest.approx(7)  # Phi(1): one sigma up
    standard = draws({"distribution": "normal"})  # mu 0, sigma 1 when left out, as in wandb
    assert statistics.fmean(standard) == pytest.approx(0, abs=0.08)
    assert statistics.stdev(standard) == pytest.approx(1, rel=0.05)


def test_q_normal_rounds_to_multiples_of_q():
    values = draws({"distribution": "q_normal", "mu": 10, "sigma": 3, "q": 2})
    assert all(type(v) is int and v % 2 == 0 for v in values)  # an int q gives ints
    assert statistics.fmean(values) == pytest.approx(10, abs=0.3)
    halves = draws({"distribution": "q_normal", "mu": 0, "sigma": 1, "q": 0.5})
    assert all(type(v) is float for v in halves) and multiples(halves, 0.5)
    assert all(type(v) is int for v in draws({"distribution": "q_normal", "mu": 3}))  # q defaults to 1


def test_log_normal_is_e_to_a_normal():
    values = draws({"distribution": "log_normal", "mu": 1, "sigma": 0.5})
    assert all(v > 0 for v in values)
    logs = [math.log(v) for v in values]
    assert statistics.fmean(logs) == pytest.approx(1, abs=0.05)
    assert statistics.stdev(logs) == pytest.approx(0.5, rel=0.05)
    assert statistics.median(values) == pytest.approx(math.e, rel=0.05)


def test_q_log_normal_rounds_e_to_a_normal_to_multiples_of_q():
    values = draws({"distribution": "q_log_normal", "mu": 3, "sigma": 1, "q": 5})
    assert all(type(v) is int and v % 5 == 0 and v >= 0 for v in values)
    assert statistics.median(values) == pytest.approx(math.exp(3), abs=5)


def test_log_uniform_takes_base_e_exponents():
    values = draws({"distribution": "log_uniform", "min": -3, "max": 2})
    assert all(math.exp(-3) <= v <= math.exp(2) for v in values)
    uniform_moments([math.log(v) for v in values], -3, 2)
    # The values form (the one to use for 0.001..1) is log_uniform_values; log_uniform reads them as exponents.
    exponents = draws({"distribution": "log_uniform", "min": 0.001, "max": 1})
    assert min(exponents) >= math.exp(0.001) and max(exponents) <= math.e


def test_q_log_uniform_rounds_e_to_the_exponent_to_multiples_of_q():
    values = draws({"distribution": "q_log_uniform", "min": 0, "max": math.log(1000), "q": 10})
    assert all(type(v) is int and v % 10 == 0 and 0 <= v <= 1000 for v in values)
    assert sum(v <= 30 for v in values) > sum(v >= 900 for v in values)  # log-uniform: dense at the low end


def test_inv_log_uniform_is_e_to_minus_a_uniform_exponent():
    values = draws({"distribution": "inv_log_uniform", "min": 1, "max": 4})
    assert all(math.exp(-4) <= v <= math.exp(-1) for v in values)
    uniform_moments([-math.log(v) for v in values], 1, 4)  # ln(1/X) is uniform on [min, max]
    spec = {"min": 1, "max": 4}
    assert value_at("inv_log_uniform", spec, 0.0, NAME) == pytest.approx(math.exp(-4))  # wandb's ppf at 0
    assert value_at("inv_log_uniform", spec, 1.0, NAME) == pytest.approx(math.exp(-1))


def test_inv_log_uniform_values_lies_between_the_values():
    values = draws({"distribution": "inv_log_uniform_values", "min": 0.01, "max": 10})
    uniform_moments([-math.log(v) for v in values], -math.log(10), -math.log(0.01))
    assert value_at("inv_log_uniform_values", {"min": 0.01, "max": 10}, 0.0, NAME) == pytest.approx(0.01)


def test_the_older_forms_draw_as_before():
    """uniform, q_uniform and log_uniform_values still take one draw each: a config plans the trials it did."""
    assert draws({"min": 0.5, "max": 2.5}, seed=3)[:3] == pytest.approx(
        [0.5 + 2 * u for u in _uniforms(3, 3)], rel=1e-15
    )
    values = draws({"distribution": "q_log_uniform_values", "min": 256, "max": 8192}, seed=1)
    assert all(type(v) is int and 256 <= v <= 8192 for v in values)


def _uniforms(seed: int, count: int) -> list[float]:
    import random

    rng = random.Random(seed)
    return [rng.random() for _ in range(count)]


# --- bayes: the same distributions through Optuna --------------------------------------------------


@pytest.mark.parametrize(
    "spec, inside",
    [
        ({"distribution": "normal", "mu": 5, "sigma": 2}, lambda v: isinstance(v, float)),
        ({"distribution": "q_normal", "mu": 5, "sigma": 2, "q": 2}, lambda v: type(v) is int and v % 2 == 0),
        ({"distribution": "log_normal", "mu": 0, "sigma": 1}, lambda v: v > 0),
        ({"distribution": "q_log_normal", "mu": 2, "sigma": 1, "q": 3}, lambda v: type(v) is int and v % 3 == 0),
        ({"distribution": "log_uniform", "min": -2, "max": 1}, lambda v: math.exp(-2) <= v <= math.e),
        ({"distribution": "q_log_uniform", "min": 0, "max": 5, "q": 4}, lambda v: v % 4 == 0 and v <= 152),
        ({"distribution": "inv_log_uniform", "min": 1, "max": 3}, lambda v: math.exp(-3) <= v <= math.exp(-1)),
        ({"distribution": "inv_log_uniform_values", "min": 0.1, "max": 10}, lambda v: 0.1 <= v <= 10),
    ],
    ids=lambda value: value["distribution"] if isinstance(value, dict) else "",
)
def test_a_bayes_search_suggests_each_distribution_in_its_range(spec: dict, inside):
    import optuna

    from sandflow.hpo_search import suggest

    hpo = load_hpo({"method": "bayes", "metric": {"name": "p.job.m"}, "parameters": {NAME: spec}, "sweep_max_count": 8})
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    values = []
    for number in range(8):
        trial = study.ask()
        values.append(suggest(trial, hpo.parameters[0]))
        study.tell(trial, float(number))
    assert all(inside(v) for v in values), values
    assert len(set(values)) > 1


# --- metric.goal, metric.target, early_terminate ----------------------------------------------------


def test_goal_defaults_to_minimize_as_in_wandb():
    hpo = load_hpo({"method": "grid", "metric": {"name": "p.job.m"}, "parameters": {NAME: {"values": [1, 2]}}})
    assert hpo.goal == "minimize" and hpo.target is None


def metric_files(tmp_path: Path, values: list[float]) -> dict:
    """An hpo summary spec over trials whose metrics are the given values (context_infos-like files)."""
    trial_specs = []
    for number, value in enumerate(values, 1):
        context = tmp_path / f"context_{number}.json"
        context.write_text(json.dumps({"values": [value]}))
        trial_specs.append({"number": number, "values": {NAME: number}, "context": str(context), "index": 0})
    return {"metric": "p.job.m", "goal": "minimize", "parameters": [NAME], "trials": trial_specs}


def test_the_summary_names_the_first_trial_that_reached_the_target(tmp_path: Path):
    spec = {**metric_files(tmp_path, [0.9, 0.4, 0.2, 0.1]), "target": 0.45}
    paths = [str(tmp_path / name) for name in ("best.json", "trials.csv", "metric.png")]
    summarise(spec, *paths)
    best = json.loads(Path(paths[0]).read_text())
    assert best["trial"] == 4 and best["target"] == {"value": 0.45, "reached_by": 2}
    summarise({**spec, "goal": "maximize", "target": 1.0}, *paths)
    best = json.loads(Path(paths[0]).read_text())
    assert best["trial"] == 1 and best["target"] == {"value": 1.0, "reached_by": None}
    summarise({key: value for key, value in spec.items() if key != "target"}, *paths)
    assert "target" not in json.loads(Path(paths[0]).read_text())


@pytest.mark.parametrize(
    "changes, where, message",
    [
        (
            {"early_terminate": {"type": "median"}},
            "hpo_config.early_terminate",
            "must be {type: hyperband, ...} (wandb's only kind), got",
        ),
        ({"metric": {"name": "p.job.m", "target": "low"}}, "hpo_config.metric.target", "must be a number"),
        ({"metric": {"name": "p.job.m", "impute": "worst"}}, "hpo_config.metric.impute", "unknown key"),
        (
            {"parameters": {NAME: {"distribution": "normal", "mean": 3}}},
            f"hpo_config.parameters.{NAME}.mean",
            "a normal distribution takes mu, sigma",
        ),
        (
            {"parameters": {NAME: {"distribution": "uniform", "values": [1, 2]}}},
            f"hpo_config.parameters.{NAME}.values",
            "a uniform distribution takes min, max",
        ),
        (
            {"parameters": {NAME: {"distribution": "log_normal", "sigma": -1}}},
            f"hpo_config.parameters.{NAME}.sigma",
            "must be at least 0, got -1",
        ),
        (
            {"parameters": {NAME: {"distribution": "q_log_uniform", "min": 1}}},
            f"hpo_config.parameters.{NAME}.max",
            "a q_log_uniform distribution needs max",
        ),
        (
            {"parameters": {NAME: {"distribution": "log_uniform", "min": 0, "max": 1000}}},
            f"hpo_config.parameters.{NAME}.max",
            "base-e exponents and e^1000 is not a float",
        ),
        (
            {"parameters": {NAME: {"distribution": "inv_log_uniform_values", "min": 0, "max": 1}}},
            f"hpo_config.parameters.{NAME}.min",
            "needs min > 0, got 0",
        ),
        (
            {"parameters": {NAME: {"distribution": "q_normal", "q": "1"}}},
            f"hpo_config.parameters.{NAME}.q",
            "needs a number, got the string '1'",
        ),
    ],
)
def test_a_bad_sweep_names_its_place(changes: dict, where: str, message: str):
    search = {
        "method": "random",
        "metric": {"name": "p.job.m"},
        "parameters": {NAME: {"distribution": "normal"}},
        "sweep_max_count": 2,
        **changes,
    }
    with pytest.raises(ConfigError) as error:
        load_hpo(search)
    assert error.value.where == where and message in error.value.message


def test_a_log_normal_draw_too_large_for_a_float_is_a_config_error():
    hpo = load_hpo(
        {
            "method": "random",
            "metric": {"name": "p.job.m"},
            "parameters": {NAME: {"distribution": "log_normal", "mu": 700, "sigma": 10}},
            "sweep_max_count": 20,
        }
    )
    with pytest.raises(ConfigError) as error:
        trials(hpo)
    assert error.value.where == f"hpo_config.parameters.{NAME}" and "too large for a float" in error.value.message
