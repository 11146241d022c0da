"""dvc.yaml: `dvc repro`, `dvc metrics show` and `dvc exp run -S` in a fresh git repository (real DVC, no network).

The repository gets the project's dvc.yaml and a params.yaml naming the cheap grid search of
configs/hpo/ (12 trials of pool and evaluation jobs), so the stage runs in about a minute.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import REPO, snakemake_env

from sandflow.dvc_stage import read_params

pytestmark = pytest.mark.slow
WORK = "outputs/hpo"
METRIC = ("sample_search", "evaluate_sample", "min_mse")


def dvc_env() -> dict[str, str]:
    venv_bin = str(Path(os.sys.executable).parent)  # the stage's `python` is this venv's
    return {**snakemake_env(), "DVC_NO_ANALYTICS": "1", "PATH": f"{venv_bin}:{os.environ['PATH']}"}


def run(repo: Path, *command: str) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=repo, env=dvc_env(), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


def job_dirs(repo: Path) -> set[str]:
    return {p.name for p in (repo / WORK / "jobs").glob("*/*") if (p / "context.json").exists()}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("dvc")
    shutil.copy(REPO / "dvc.yaml", repo / "dvc.yaml")
    shutil.copytree(REPO / "src" / "sandflow", repo / "src" / "sandflow", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "configs" / "hpo", repo / "configs" / "hpo")
    shutil.copytree(REPO / "configs" / "data" / "hpo", repo / "configs" / "data" / "hpo")
    params = {"experiment": {"config": "configs/hpo/sandbox.yaml", "data": "configs/data/hpo", "work_dir": WORK, "cores": 2}}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(repo, "git", "init", "-q")
    run(repo, "git", "config", "user.email", "test@sandflow")
    run(repo, "git", "config", "user.name", "test")
    run(repo, "dvc", "init", "-q")
    run(repo, "dvc", "config", "core.analytics", "false")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "experiment")
    return repo


def test_dvc_repro_runs_the_experiment_and_metrics_show_lists_every_trial(repo: Path):
    run(repo, "dvc", "repro")
    shown = json.loads(run(repo, "dvc", "metrics", "show", "--json").stdout)
    metrics = shown[""]["data"][f"{WORK}/metrics.json"]["data"]
    assert sorted(metrics) == sorted(f"trial_{n}" for n in range(1, 13))
    best = json.loads((repo / WORK / "hpo" / "best.json").read_text())
    values = {int(trial[6:]): node[METRIC[0]][METRIC[1]][METRIC[2]] for trial, node in metrics.items()}
    assert min(values, key=values.get) == best["trial"] and values[best["trial"]] == pytest.approx(best["metric"]["value"])
    assert len(job_dirs(repo)) == 25  # one shared merge, 12 samples, 12 evaluations


def test_a_second_repro_runs_nothing(repo: Path):
    result = run(repo, "dvc", "repro")
    assert "didn't change, skipping" in result.stdout and "Job stats" not in result.stdout + result.stderr


def test_an_experiment_with_a_changed_param_runs_only_the_new_trials(repo: Path):
    search = yaml.safe_load((repo / "configs/hpo/search.yaml").read_text())
    search["parameters"]["sample_search.draw_sample.extra_configs.shuffle_seed"]["values"] = [1, 2, 3, 5]
    (repo / "configs/hpo/search_seed5.yaml").write_text(yaml.safe_dump(search, sort_keys=False))
    config = yaml.safe_load((repo / "configs/hpo/sandbox.yaml").read_text())
    config["hpo_config"] = "configs/hpo/search_seed5.yaml"
    (repo / "configs/hpo/seed5.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "variant")
    before = job_dirs(repo)
    run(repo, "dvc", "exp", "run", "-S", "experiment.config=configs/hpo/seed5.yaml")
    # Seeds 1-3 are the same jobs as before; seed 5 adds a sample and an evaluation per size.
    assert len(job_dirs(repo) - before) == 6 and before <= job_dirs(repo)
    shown = json.loads(run(repo, "dvc", "exp", "show", "--json").stdout)
    assert "configs/hpo/seed5.yaml" in json.dumps(shown)


def test_bad_params_are_one_line_and_exit_2(tmp_path: Path):
    (tmp_path / "params.yaml").write_text("experiment:\n  config: missing.yaml\n  work_dir: w\n  cores: 2\n")
    with pytest.raises(ValueError, match=r"^.*params.yaml: experiment.config: no such file: missing.yaml$"):
        read_params(str(tmp_path / "params.yaml"))
    (tmp_path / "params.yaml").write_text("experiment:\n  config: missing.yaml\n  work_dir: w\n  cores: two\n")
    with pytest.raises(ValueError, match=r"experiment.cores: must be a whole number, got 'two'"):
        read_params(str(tmp_path / "params.yaml"))
