"""hpo_config: reading the search, expanding grid and random trials into the graph, the best trial.

The end-to-end tests run configs/hpo/sandbox.yaml (12 grid trials of a 3-job pipeline on cheap pool
and evaluation hooks) with the real snakemake, in order: cold run, no-op rerun, changed goal.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sandflow.config.errors import ConfigError
from sandflow.config.hpo_spec import load_hpo, trials
from sandflow.config.load import load_config
from sandflow.core.jsonl import read_objects
from sandflow.plan.planner import plan_config

from helpers.env import snakemake_env
from helpers.paths import REPO, copy_from_repo
from helpers.snakemake import hpo_search_command, job_counts, snakemake

CONFIG = "configs/hpo/sandbox.yaml"
SEARCH = "configs/hpo/search.yaml"
WORK = Path("outputs/hpo")
SIZE = "sample_search.draw_sample.extra_configs.target_num_samples"
SEED = "sample_search.draw_sample.extra_configs.shuffle_seed"
METRIC = {"name": "sample_search.evaluate_sample.min_mse", "goal": "minimize"}


def search(**changes) -> dict:
    return {**yaml.safe_load((REPO / SEARCH).read_text()), **changes}


# --- reading the search --------------------------------------------------------------------------


def test_grid_trials_are_the_product_in_parameter_order_capped_by_the_budget():
    assert trials(load_hpo(search()))[:5] == [{SIZE: 20, SEED: s} for s in (1, 2, 3, 4)] + [{SIZE: 50, SEED: 1}]
    assert len(trials(load_hpo(search()))) == 12
    assert trials(load_hpo(search(sweep_max_count=3))) == [{SIZE: 20, SEED: s} for s in (1, 2, 3)]


def test_random_trials_are_reproducible_and_inside_their_distributions():
    parameters = {
        SIZE: {"min": 10, "max": 90},
        SEED: {"values": [1, 2]},
        "sample_search.evaluate_sample.extra_configs.scale": {
            "distribution": "log_uniform_values",
            "min": 0.01,
            "max": 1.0,
        },
    }
    hpo = load_hpo(search(method="random", parameters=parameters, sweep_max_count=40, seed=3))
    drawn = trials(hpo)
    assert drawn == trials(hpo) and len(drawn) == 40
    assert all(isinstance(t[SIZE], int) and 10 <= t[SIZE] <= 90 for t in drawn)  # int bounds: int_uniform
    assert {t[SEED] for t in drawn} == {1, 2}
    assert all(0.01 <= t["sample_search.evaluate_sample.extra_configs.scale"] <= 1.0 for t in drawn)
    assert drawn != trials(load_hpo(search(method="random", parameters=parameters, sweep_max_count=40, seed=4)))


def test_explicit_trials_are_planned_as_given():
    given = [{SIZE: 20, SEED: 9}, {SIZE: 100, SEED: 9}]
    assert trials(load_hpo(search(trials=given))) == given


@pytest.mark.parametrize(
    "changes, where, message",
    [
        ({"method": "hyperband"}, "hpo_config.method", "must be one of grid, random, bayes"),
        ({"metric": {"goal": "minimize"}}, "hpo_config.metric", "must be a mapping with name"),
        ({"metric": {**METRIC, "goal": "lowest"}}, "hpo_config.metric.goal", "must be minimize or maximize"),
        (
            {"parameters": {"draw_sample.extra_configs.target_num_samples": {"values": [1]}}},
            "hpo_config.parameters.draw_sample.extra_configs.target_num_samples",
            "or <pipeline>.<meta_name>.<dj_configs|extra_configs>.<dotted key>",
        ),
        ({"parameters": {SIZE: {"min": 10, "max": 90}}}, f"hpo_config.parameters.{SIZE}", "a grid search needs values"),
        (
            {"parameters": {SIZE: {"distribution": "gaussian", "min": 1, "max": 2}}, "method": "random"},
            f"hpo_config.parameters.{SIZE}.distribution",
            "unknown distribution 'gaussian'",
        ),
        (
            {"parameters": {SIZE: {"min": 90, "max": 10}}, "method": "random"},
            f"hpo_config.parameters.{SIZE}",
            "min 90 is above max 10",
        ),
        (
            {"method": "random", "sweep_max_count": None},
            "hpo_config.sweep_max_count",
            "a random search needs a trial budget",
        ),
        ({"sweep_max_count": 0}, "hpo_config.sweep_max_count", "at least 1, got the number 0"),
        ({"metrics": METRIC}, "hpo_config.metrics", "unknown key (did you mean 'metric'?)"),
        ({"trials": [{SIZE: 20}]}, "hpo_config.trials[0]", f"gives no value for {SEED}"),
    ],
)
def test_a_bad_search_names_its_place(changes: dict, where: str, message: str):
    with pytest.raises(ConfigError) as error:
        load_hpo({key: value for key, value in search(**changes).items() if value is not None})
    assert error.value.where == where and message in error.value.message


# --- planning ------------------------------------------------------------------------------------


@pytest.fixture
def configs_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the config and its data as the working directory, never the checkout (its outputs/ is the user's)."""
    copy_from_repo(tmp_path, "configs/hpo", "configs/data/hpo")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def plan_with(tmp_path: Path, **changes):
    raw = yaml.safe_load((REPO / CONFIG).read_text())
    raw.update(work_dir=str(tmp_path / "work"), **changes)
    return plan_config(load_config(raw, source="hpo.yaml"))


def test_every_trial_is_planned_and_trials_share_the_jobs_no_parameter_touches(configs_copy: Path):
    plan = plan_with(configs_copy)
    assert len(plan.search.trials) == 12 and len(plan.jobs) == 36
    merges = {job.key for job in plan.jobs if job.cfg.meta_name == "merge_annotators"}
    samples = {job.key for job in plan.jobs if job.cfg.meta_name == "draw_sample"}
    assert len(merges) == 1 and len(samples) == 12 and len(plan.unique_jobs()) == 25
    trial = plan.search.trials[4]
    assert trial.values == {SIZE: 50, SEED: 1} and trial.metric_job.trial == 5 and trial.metric_index == 1
    (draw,) = [j for j in plan.jobs if j.trial == 5 and j.cfg.meta_name == "draw_sample"]
    assert (draw.sections["extra_configs"]["target_num_samples"], draw.sections["extra_configs"]["shuffle_seed"]) == (
        50,
        1,
    )


@pytest.mark.parametrize(
    "changes, where, message",
    [
        (
            {"hpo_config": search(parameters={"sample_search.draw.extra_configs.shuffle_seed": {"values": [1]}})},
            "hpo_config.parameters.sample_search.draw.extra_configs.shuffle_seed",
            "no job sample_search.draw",
        ),
        (
            {"hpo_config": search(metric={**METRIC, "name": "sample_search.evaluate_sample.mse"})},
            "hpo_config.metric.name",
            "has no output 'mse'",
        ),
        ({"max_iter_num": 2}, "hpo_config", "cannot be combined with max_iter_num"),
        ({"hpo_config": "configs/hpo/missing.yaml"}, "hpo_config", "no such file: configs/hpo/missing.yaml"),
        ({"hpo_config": search(method="bayes")}, "hpo_config.method", "python -m sandflow.hpo_search"),
    ],
)
def test_a_search_that_does_not_fit_the_config_names_its_place(
    configs_copy: Path, changes: dict, where: str, message: str
):
    with pytest.raises(ConfigError) as error:
        plan_with(configs_copy, **changes)
    assert error.value.where == where and message in error.value.message


# --- end to end ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_from_repo(tmp_path_factory.mktemp("hpo"), "configs/hpo", "configs/data/hpo")


def sample_mse(run_dir: Path, trial: int) -> float:
    """The mse of a trial's sample, computed here from the sample file (not by the evaluator)."""
    (sample,) = (
        run_dir / WORK / "hpo" / f"trial_{trial}" / "pipelines" / "sample_search" / "iter_1" / "draw_sample"
    ).rglob("*.jsonl")
    rows = read_objects(sample)
    return sum((row["grade"] - row["truth"]) ** 2 for row in rows) / len(rows)


@pytest.mark.slow
def test_a_grid_search_runs_every_trial_once_and_reports_the_best(run_dir: Path):
    counts = job_counts(snakemake(run_dir, CONFIG))
    assert counts == {
        "data_pool_manipulation": 13,
        "evaluate_data": 12,
        "hpo_spec_record": 1,
        "publication_record": 1,
        "context_infos": 1,
        "hpo_summary": 1,
        "all": 1,
    }
    mse = {trial: sample_mse(run_dir, trial) for trial in range(1, 13)}
    best_trial = min(mse, key=mse.get)
    best = json.loads((run_dir / WORK / "hpo" / "best.json").read_text())
    assert best["trial"] == best_trial and best["metric"]["value"] == pytest.approx(mse[best_trial])
    assert best["params"] == trials(load_hpo(search()))[best_trial - 1]
    with (run_dir / WORK / "hpo" / "trials.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["trial"]) for row in rows] == list(range(1, 13))
    assert [float(row[METRIC["name"]]) for row in rows] == pytest.approx([mse[t] for t in range(1, 13)])
    assert (run_dir / WORK / "hpo" / "metric.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    context_infos = json.loads((run_dir / WORK / "context_infos.json").read_text())
    assert [entry["trial"] for entry in context_infos] == list(range(1, 13))
    assert job_counts(snakemake(run_dir, CONFIG)) == {}


@pytest.mark.slow
def test_changing_the_goal_reranks_without_running_a_trial(run_dir: Path):
    raw = yaml.safe_load((run_dir / SEARCH).read_text())
    raw["metric"]["goal"] = "maximize"
    (run_dir / SEARCH).write_text(yaml.safe_dump(raw, sort_keys=False))
    assert job_counts(snakemake(run_dir, CONFIG)) == {"hpo_spec_record": 1, "hpo_summary": 1, "all": 1}
    mse = {trial: sample_mse(run_dir, trial) for trial in range(1, 13)}
    assert json.loads((run_dir / WORK / "hpo" / "best.json").read_text())["trial"] == max(mse, key=mse.get)


@pytest.mark.slow
def test_a_bayes_search_of_ten_trials_runs_with_optuna_and_resumes_without_rerunning(tmp_path: Path):
    copy_from_repo(tmp_path, "configs/hpo", "configs/data/hpo")
    command = hpo_search_command(CONFIG, "configs/hpo/bayes_search.yaml", "--batch", "5")
    first = subprocess.run(command, cwd=tmp_path, env=snakemake_env(), capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stderr.count("sandflow: hpo_search: -m snakemake") == 2  # two batches of five
    with (tmp_path / WORK / "hpo" / "trials.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 10 and len({(r[SIZE], r[SEED]) for r in rows}) > 1
    assert all(20 <= int(r[SIZE]) <= 150 and 1 <= int(r[SEED]) <= 8 for r in rows)
    best = json.loads((tmp_path / WORK / "hpo" / "best.json").read_text())
    assert best["metric"]["value"] == pytest.approx(min(float(r[METRIC["name"]]) for r in rows))
    assert first.stdout.strip() == f"best of 10 trials: {best['metric']['value']!r} with {best['params']}"
    assert (tmp_path / WORK / "hpo" / "optuna-journal.log").stat().st_size > 0
    # The study is done: running the search again asks for nothing and runs nothing.
    again = subprocess.run(command, cwd=tmp_path, env=snakemake_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "-m snakemake" not in again.stderr and again.stdout == first.stdout
    assert job_counts(snakemake(tmp_path, WORK / "hpo" / "search.yaml")) == {}


def test_hpo_search_refuses_a_grid_search_naming_the_snakemake_command(configs_copy: Path):
    config = configs_copy / CONFIG
    result = subprocess.run(
        [sys.executable, "-m", "sandflow.hpo_search", "--configfile", str(config)],
        cwd=configs_copy,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"sandflow: error: {config}: hpo_config.method: a grid search runs with "
        f"snakemake itself: snakemake --cores 2 --configfile {config}"
    )


@pytest.mark.slow
def test_a_target_reranks_nothing_and_names_the_first_trial_that_reached_it(run_dir: Path):
    """Runs after the goal test (module order): every trial stays planned and cached; only the summary reruns."""
    raw = yaml.safe_load((run_dir / SEARCH).read_text())
    mse = {trial: sample_mse(run_dir, trial) for trial in range(1, 13)}
    ranked = sorted(mse.values())
    target = (ranked[3] + ranked[4]) / 2  # four trials reach it, none by a rounding: the first in trial order is named
    raw["metric"] = {**METRIC, "target": target}
    (run_dir / SEARCH).write_text(yaml.safe_dump(raw, sort_keys=False))
    assert job_counts(snakemake(run_dir, CONFIG)) == {"hpo_spec_record": 1, "hpo_summary": 1, "all": 1}
    best = json.loads((run_dir / WORK / "hpo" / "best.json").read_text())
    first = min(trial for trial, value in mse.items() if value <= target)
    assert best["target"] == {"value": target, "reached_by": first}
    assert best["trial"] == min(mse, key=mse.get) and best["trials"] == 12


@pytest.mark.slow
def test_a_bayes_search_stops_asking_once_a_trial_reaches_the_target(tmp_path: Path):
    copy_from_repo(tmp_path, "configs/hpo", "configs/data/hpo")
    search_file = tmp_path / "configs/hpo/bayes_search.yaml"
    raw = yaml.safe_load(search_file.read_text())
    raw["metric"]["target"] = 1.0e9  # every mse reaches it: the first batch ends the search
    search_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    command = hpo_search_command(CONFIG, "configs/hpo/bayes_search.yaml", "--batch", "2")
    result = subprocess.run(command, cwd=tmp_path, env=snakemake_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("sandflow: hpo_search: -m snakemake") == 1
    with (tmp_path / WORK / "hpo" / "trials.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 2
    assert result.stdout.splitlines()[-1] == "trial 1 reached metric.target: no more trials were asked for"
    assert json.loads((tmp_path / WORK / "hpo" / "best.json").read_text())["target"]["reached_by"] == 1
