"""sandflow check: which jobs are cached, which will run, and why, in the config's own names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandflow.cli import main
from sandflow.config.load import load_config_file
from sandflow.plan.history import record_planned
from sandflow.plan.planner import plan_config

from helpers.env import snakemake_env
from helpers.paths import copy_from_repo
from helpers.snakemake import snakemake

DEMO = "configs/demo/sandbox.yaml"


def job_lines(out: str) -> dict[str, str]:
    """'<number>. <name> [<hook>]' -> the reason line under it."""
    lines = out.splitlines()
    return {
        line.split("  key ")[0].strip(): lines[index + 1].strip()
        for index, line in enumerate(lines)
        if "  key " in line
    }


def finish_all(config: str) -> None:
    """Record the plan as a real run's start does, and mark every job finished as its end does."""
    plan = plan_config(load_config_file(config))
    record_planned(plan)
    for job in plan.unique_jobs():
        os.makedirs(job.job_dir)
        Path(job.context_path).write_text(json.dumps({"key": job.key, "values": []}))


def check(capsys: pytest.CaptureFixture, config: str = DEMO) -> dict[str, str]:
    assert main(["check", config]) == 0
    return job_lines(capsys.readouterr().out)


def test_a_fresh_work_dir_runs_everything_as_new(demo_dir: Path, capsys: pytest.CaptureFixture):
    assert main(["check", DEMO]) == 0
    out = capsys.readouterr().out
    assert set(job_lines(out).values()) == {"will run: new (no finished job of this name in work_dir)"}
    assert out.splitlines()[-1] == "0 distinct job(s) cached, 4 will run"


def test_a_changed_recipe_value_is_named_with_its_place(demo_dir: Path, capsys: pytest.CaptureFixture):
    finish_all(DEMO)
    assert set(check(capsys).values()) == {"cached"}
    recipe = Path("configs/demo/process.yaml")
    recipe.write_text(recipe.read_text().replace("min_len: 10\n", "min_len: 20\n"))
    reasons = check(capsys)
    assert reasons["1. analysis_ori_data  [ProbeViaAnalyzerHook]"].endswith(
        ": dj_configs.process[0].text_length_filter.min_len: 10 -> 20"
    )
    refine = reasons["2. analysis_ori_data  [RefineRecipeViaKSigmaHook]"]
    assert "linked.analysis: reads a changed job 1 (anonymous.analysis_ori_data, will run)" in refine
    assert reasons["3. process_data_with_refined_recipe  [ProcessDataHook]"].endswith(
        ": dj_configs reads a changed job 2 (anonymous.analysis_ori_data, will run)"
    )
    # putting the value back finds the finished jobs again
    recipe.write_text(recipe.read_text().replace("min_len: 20\n", "min_len: 10\n"))
    assert set(check(capsys).values()) == {"cached"}


def test_changed_data_is_named_by_file(demo_dir: Path, capsys: pytest.CaptureFixture):
    finish_all(DEMO)
    with open("configs/data/demo/demo-dataset.jsonl", "a") as data:
        data.write('{"text": "one more sample"}\n')
    reasons = check(capsys)
    assert reasons["1. analysis_ori_data  [ProbeViaAnalyzerHook]"].endswith(
        ": dj_configs.dataset_path: the content of ./configs/data/demo/demo-dataset.jsonl changed"
    )


def test_check_prints_config_variables_when_the_config_has_them(demo_dir: Path):
    from sandflow.cli import describe

    plan = plan_config(load_config_file(DEMO))
    # SandboxConfig.variables arrives with the config-variables work; check prints whatever the config holds
    plan.config.variables = {"data": "./configs/data/demo", "out": "./outputs/x"}
    lines = describe(plan).splitlines()
    assert lines[1:3] == ["variable data = ./configs/data/demo", "variable out = ./outputs/x"]


@pytest.mark.slow
def test_after_a_real_run_a_changed_value_reruns_only_its_job(tmp_path: Path):
    """Real snakemake: the run records its plan; check then names what changed, and snakemake agrees."""
    copy_from_repo(tmp_path, "configs/hpo", "configs/data/hpo")
    config = tmp_path / "configs/hpo/sandbox.yaml"
    config.write_text(config.read_text().replace("hpo_config: 'configs/hpo/search.yaml'", "hpo_config: null"))
    snakemake(tmp_path, "configs/hpo/sandbox.yaml")
    config.write_text(config.read_text().replace("target_num_samples: 50", "target_num_samples: 20"))
    result = subprocess.run(
        [sys.executable, "-m", "sandflow.cli", "check", "configs/hpo/sandbox.yaml"],
        cwd=tmp_path,
        env=snakemake_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    out = result.stdout
    reasons = job_lines(out)
    assert reasons["1. merge_annotators  [DataPoolManipulationHook data_pool_merging]"] == "cached"
    assert reasons["2. draw_sample  [DataPoolManipulationHook data_pool_downsampling]"].endswith(
        ": extra_configs.target_num_samples: 50 -> 20"
    )
    assert (
        "reads a changed job 2 (sample_search.draw_sample, will run)"
        in reasons["3. evaluate_sample  [EvaluateDataHook mse]"]
    )
