"""dvc.yaml: `dvc repro`, `dvc status`, `dvc metrics show`, `dvc plots show` and `dvc exp run -S` in a fresh
git repository (real DVC, no network), and the stage's deps: every file the config's plan reads and the workflow.

The repository gets the project's dvc.yaml and workflow files, a params.yaml naming the cheap grid search of
configs/hpo/ (12 trials of pool and evaluation jobs; its evaluation reads its extra_configs from a file, the
recipe file edited below) and `sandflow dvc-stage`'s deps for it, so the stage runs in about a minute. Another
repository runs the model demo cut to 20 training steps, for the training curve `dvc plots show` draws.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from sandflow.cli import main as cli_main
from sandflow.core.private_fs import UnsafePath
from sandflow.dvc_stage import (
    CODE_DEPS,
    CONFIG_DEP,
    PLOTS,
    experiment_reads,
    main,
    read_params,
    stage_deps,
    write_dvc_yaml,
)
from sandflow.report import figures as report_figures

from helpers.env import snakemake_env
from helpers.paths import REPO, copy_from_repo
from helpers.snakemake import edited_config
from helpers.training_record import training_job

WORK = "outputs/hpo"
METRIC = ("sample_search", "evaluate_sample", "min_mse")
RECIPE = "configs/hpo/evaluate.yaml"  # the evaluation job's extra_configs, as a file


def dvc_env() -> dict[str, str]:
    venv_bin = str(Path(os.sys.executable).parent)  # the stage's `python` is this venv's
    return {**snakemake_env(), "DVC_NO_ANALYTICS": "1", "PATH": f"{venv_bin}:{os.environ['PATH']}"}


def run(repo: Path, *command: str) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=repo, env=dvc_env(), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


def tiny_model_demo(directory: Path) -> str:
    """The model demo in ``directory`` with 20 training steps (a loss logged every 5), its work_dir there."""
    shutil.copytree(
        REPO / "configs" / "model_demo",
        directory / "configs" / "model_demo",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copytree(REPO / "configs" / "data" / "model_demo", directory / "configs" / "data" / "model_demo")

    def shorten(data: dict) -> None:
        (train,) = [job for job in data["execution_job_configs"] if job["hook"] == "TrainModelHook"]
        train["extra_configs"].update(max_steps=20, warmup_steps=2, logging_steps=5)

    return edited_config(directory, "configs/model_demo/sandbox.yaml", "configs/model_demo/tiny.yaml", shorten)


def job_dirs(repo: Path) -> set[str]:
    return {p.name for p in (repo / WORK / "jobs").glob("*/*") if (p / "context.json").exists()}


def dotted(metrics: dict, prefix: str = "") -> Iterator[tuple[str, float]]:
    """metrics.json's values, each named by its keys joined with dots."""
    for key, value in metrics.items():
        if isinstance(value, dict):
            yield from dotted(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def move_evaluation_to_a_file(root: Path) -> None:
    """configs/hpo/sandbox.yaml with the evaluation's extra_configs in RECIPE (a section given as a file)."""
    config_file = root / "configs/hpo/sandbox.yaml"
    config = yaml.safe_load(config_file.read_text())
    evaluation = config["pipelines"][0]["sample_search"]["evaluation_job_configs"][0]
    (root / RECIPE).write_text(yaml.safe_dump(evaluation["extra_configs"], sort_keys=False))
    evaluation["extra_configs"] = RECIPE
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))


def dvc_repository(repo: Path, config: str, work_dir: str) -> Path:
    """repo (holding the config and its files) as a git and DVC repository running the config in work_dir."""
    shutil.copy(REPO / "dvc.yaml", repo / "dvc.yaml")
    for workflow_file in ("Snakefile", "requirements.txt"):
        shutil.copy(REPO / workflow_file, repo / workflow_file)
    for workflow_dir in ("rules", "scripts", "envs", "src/sandflow"):
        shutil.copytree(REPO / workflow_dir, repo / workflow_dir, ignore=shutil.ignore_patterns("__pycache__"))
    params = {"experiment": {"config": config, "work_dir": work_dir, "cores": 2}}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(repo, sys.executable, "-m", "sandflow.cli", "dvc-stage")
    run(repo, "git", "init", "-q")
    run(repo, "git", "config", "user.email", "test@sandflow")
    run(repo, "git", "config", "user.name", "test")
    run(repo, "dvc", "init", "-q")
    run(repo, "dvc", "config", "core.analytics", "false")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "experiment")
    return repo


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("dvc")
    shutil.copytree(REPO / "configs" / "hpo", repo / "configs" / "hpo")
    shutil.copytree(REPO / "configs" / "data" / "hpo", repo / "configs" / "data" / "hpo")
    move_evaluation_to_a_file(repo)
    return dvc_repository(repo, "configs/hpo/sandbox.yaml", WORK)


@pytest.mark.slow
def test_dvc_repro_runs_the_experiment_and_metrics_show_lists_every_trial(repo: Path):
    run(repo, "dvc", "repro")
    shown = json.loads(run(repo, "dvc", "metrics", "show", "--json").stdout)
    metrics = shown[""]["data"][f"{WORK}/metrics.json"]["data"]
    assert sorted(metrics) == sorted(f"trial_{n}" for n in range(1, 13))
    best = json.loads((repo / WORK / "hpo" / "best.json").read_text())
    values = {int(trial[6:]): node[METRIC[0]][METRIC[1]][METRIC[2]] for trial, node in metrics.items()}
    assert min(values, key=values.get) == best["trial"] and values[best["trial"]] == pytest.approx(
        best["metric"]["value"]
    )
    assert len(job_dirs(repo)) == 25  # one shared merge, 12 samples, 12 evaluations


@pytest.mark.slow
def test_plots_show_draws_the_metric_of_every_trial(repo: Path):
    shown = json.loads(run(repo, "dvc", "plots", "show", "--json").stdout)
    assert "errors" not in shown  # also: the training-curve directory exists, empty (no training job here)
    (plot,) = shown["data"][f"{WORK}/report/plots/metrics.csv"]
    values = {row["metric"]: float(row["value"]) for row in plot["content"]["data"]["values"]}
    metrics = json.loads((repo / WORK / "metrics.json").read_text())
    assert values == dict(dotted(metrics)) and len(values) == 36  # 3 metrics of 12 trials
    assert values[f"trial_1.{'.'.join(METRIC)}"] == metrics["trial_1"][METRIC[0]][METRIC[1]][METRIC[2]]
    assert not [name for name in shown["data"] if "train_loss" in name]
    assert list((repo / WORK / "report/plots/train_loss").iterdir()) == []


@pytest.mark.slow
def test_a_second_repro_runs_nothing(repo: Path):
    result = run(repo, "dvc", "repro")
    assert "didn't change, skipping" in result.stdout and "Job stats" not in result.stdout + result.stderr


@pytest.mark.slow
def test_editing_a_recipe_file_changes_the_stage_and_repro_reruns_what_reads_it(repo: Path):
    assert "Data and pipelines are up to date" in run(repo, "dvc", "status").stdout
    recipe = yaml.safe_load((repo / RECIPE).read_text())
    # mse is symmetric: swapping the two keys changes the evaluation jobs' keys, not their results.
    recipe["predicted_value_key"], recipe["ground_truth_value_key"] = (
        recipe["ground_truth_value_key"],
        recipe["predicted_value_key"],
    )
    (repo / RECIPE).write_text(yaml.safe_dump(recipe, sort_keys=False))
    status = run(repo, "dvc", "status").stdout
    assert "experiment:" in status and f"modified:           {RECIPE}" in status
    before = job_dirs(repo)
    result = run(repo, "dvc", "repro")
    assert "Running stage 'experiment'" in result.stdout
    evaluations = {p.name for p in (repo / WORK / "jobs" / "EvaluateDataHook").iterdir()}
    assert len(job_dirs(repo) - before) == 12 and job_dirs(repo) - before <= evaluations
    assert "Data and pipelines are up to date" in run(repo, "dvc", "status").stdout
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "recipe edited")


@pytest.mark.slow
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
    # The variant reads another hpo file: the stage put it among its deps while it ran. DVC had checked
    # the run against the old list, so the stage counts as changed until `dvc commit -f` records it.
    deps = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]["experiment"]["deps"]
    assert "configs/hpo/search_seed5.yaml" in deps and "configs/hpo/search.yaml" not in deps
    assert "search_seed5.yaml" in run(repo, "dvc", "status").stdout
    run(repo, "dvc", "commit", "-f", "experiment")
    assert "Data and pipelines are up to date" in run(repo, "dvc", "status").stdout


@pytest.mark.slow
def test_editing_the_workflow_changes_the_stage(repo: Path):
    assert "Data and pipelines are up to date" in run(repo, "dvc", "status").stdout
    rules = repo / "rules" / "evaluate.smk"
    text = rules.read_text()
    rules.write_text(text + "# edited\n")
    assert "modified:           rules" in run(repo, "dvc", "status").stdout
    rules.write_text(text)
    assert "Data and pipelines are up to date" in run(repo, "dvc", "status").stdout


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DVC repository that ran the model demo cut to 20 training steps."""
    repo = tmp_path_factory.mktemp("dvc_model_demo")
    repo = dvc_repository(repo, tiny_model_demo(repo), "outputs/model-demo")
    run(repo, "dvc", "repro")
    return repo


@pytest.mark.slow
def test_plots_show_draws_the_training_curve_and_the_metrics_of_a_run(trained: Path):
    shown = json.loads(run(trained, "dvc", "plots", "show", "--json").stdout)
    assert "errors" not in shown
    (log,) = (trained / "outputs/model-demo/jobs/TrainModelHook").glob("*/**/train_log.json")
    losses = [(entry["step"], entry["loss"]) for entry in json.loads(log.read_text()) if "loss" in entry]
    assert [step for step, _ in losses] == [5, 10, 15, 20]
    curves = [name for name in shown["data"] if "/train_loss/" in name]
    assert curves == [
        "outputs/model-demo/report/plots/train_loss/anonymous.train_tiny_gpt2.extra_configs.export_path.csv"
    ]
    (plot,) = shown["data"][curves[0]]
    points = [(int(row["step"]), float(row["loss"])) for row in plot["content"]["data"]["values"]]
    assert points == losses and plot["content"]["encoding"]["x"]["field"] == "step"
    (plot,) = shown["data"]["outputs/model-demo/report/plots/metrics.csv"]
    values = {row["metric"]: float(row["value"]) for row in plot["content"]["data"]["values"]}
    assert values == dict(dotted(json.loads((trained / "outputs/model-demo/metrics.json").read_text())))
    assert {"anonymous.heldout_perplexity.perplexity_metrics.perplexity"} <= set(values)
    run(trained, "dvc", "plots", "show")  # the HTML page, with the curve's file named on it
    assert "anonymous.train_tiny_gpt2" in (trained / "dvc_plots" / "index.html").read_text()


def test_the_plot_data_names_each_curve_and_metric_and_a_rebuild_drops_a_stale_curve(tmp_path: Path):
    figures, metrics = tmp_path / "report" / "figures", tmp_path / "report" / "metrics.csv"
    plots = tmp_path / "report" / "plots"
    job = training_job(tmp_path, [4.0, 3.0, 2.5])
    report_figures.build({"work_dir": str(tmp_path), "jobs": [job]}, str(figures), str(metrics))
    curve = plots / "train_loss" / "p.train.extra_configs.export_path.csv"
    assert curve.read_text() == "step,loss\n1,4.0\n2,3.0\n3,2.5\n"
    assert (plots / "metrics.csv").read_text() == "metric,value\n"
    (plots / "train_loss" / "mine.csv").write_text("step,loss\n")  # the user's: never removed
    job["readable_name"] = "renamed"
    report_figures.build({"work_dir": str(tmp_path), "jobs": [job]}, str(figures), str(metrics))
    assert sorted(p.name for p in (plots / "train_loss").iterdir()) == [
        "mine.csv",
        "p.renamed.extra_configs.export_path.csv",
    ]


def test_plot_data_is_not_written_through_a_symlink_out_of_the_work_dir(tmp_path: Path):
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (work / "report").mkdir(parents=True)
    (work / "report" / "plots").symlink_to(elsewhere)
    job = training_job(work, [1.0])
    with pytest.raises(UnsafePath, match="report file"):
        report_figures.build(
            {"work_dir": str(work), "jobs": [job]},
            str(work / "report" / "figures"),
            str(work / "report" / "metrics.csv"),
        )
    assert list(elsewhere.iterdir()) == []


def test_bad_params_are_one_line_and_exit_2(tmp_path: Path):
    (tmp_path / "params.yaml").write_text("experiment:\n  config: missing.yaml\n  work_dir: w\n  cores: 2\n")
    with pytest.raises(ValueError, match=r"^.*params.yaml: experiment.config: no such file: missing.yaml$"):
        read_params(str(tmp_path / "params.yaml"))
    (tmp_path / "params.yaml").write_text("experiment:\n  config: missing.yaml\n  work_dir: w\n  cores: two\n")
    with pytest.raises(ValueError, match=r"experiment.cores: must be a whole number, got 'two'"):
        read_params(str(tmp_path / "params.yaml"))


def test_the_deps_of_the_model_demo_are_its_recipe_data_and_user_function(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    monkeypatch.chdir(REPO)  # config paths resolve against the directory the stage runs in
    assert experiment_reads("configs/model_demo/sandbox.yaml", str(tmp_path / "work")) == [
        "configs/data/model_demo/heldout.jsonl",  # perplexity's held-out text
        "configs/data/model_demo/qa.jsonl",  # the questions
        "configs/data/model_demo/train.jsonl",  # named by the recipe, not the config
        "configs/model_demo/answers.py",  # parse_output_func: 'configs.model_demo.answers:first_word'
        "configs/model_demo/process.yaml",  # the recipe
    ]
    assert not (tmp_path / "work").exists()


def test_the_deps_include_job_files_section_files_and_the_hpo_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    shutil.copytree(REPO / "configs" / "hpo", tmp_path / "configs" / "hpo")
    shutil.copytree(REPO / "configs" / "data" / "hpo", tmp_path / "configs" / "data" / "hpo")
    move_evaluation_to_a_file(tmp_path)
    config_file = tmp_path / "configs/hpo/sandbox.yaml"
    config = yaml.safe_load(config_file.read_text())
    jobs = config["pipelines"][0]["sample_search"]["execution_job_configs"]
    (tmp_path / "configs/hpo/merge_job.yaml").write_text(yaml.safe_dump(jobs[0], sort_keys=False))
    jobs[0] = "configs/hpo/merge_job.yaml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    assert experiment_reads("configs/hpo/sandbox.yaml") == [
        "configs/data/hpo/careful.jsonl",
        "configs/data/hpo/hasty.jsonl",  # the job file's dataset_path
        RECIPE,
        "configs/hpo/merge_job.yaml",
        "configs/hpo/search.yaml",
    ]


def test_the_committed_dvc_yaml_lists_what_the_default_params_config_reads(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    copy_from_repo(tmp_path, "configs")  # a private copy: the checkout's outputs/ are the user's
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    experiment = read_params("params.yaml")
    assert write_dvc_yaml(experiment_reads(experiment["config"], experiment["work_dir"]), str(tmp_path / "dvc.yaml"))
    assert (tmp_path / "dvc.yaml").read_text() == (REPO / "dvc.yaml").read_text(), (
        "run `sandflow dvc-stage` and commit dvc.yaml"
    )


def test_writing_the_stage_keeps_other_stages_and_leaves_a_current_file_alone(tmp_path: Path):
    path = tmp_path / "dvc.yaml"
    path.write_text("stages:\n  other:\n    cmd: echo hi\n    deps: [a.txt]\n")
    assert write_dvc_yaml(["data.jsonl"], str(path))
    stages = yaml.safe_load(path.read_text())["stages"]
    assert stages["other"] == {"cmd": "echo hi", "deps": ["a.txt"]}
    assert stages["experiment"]["deps"] == [CONFIG_DEP, "data.jsonl", *CODE_DEPS] == stage_deps(["data.jsonl"])
    assert CODE_DEPS == ["Snakefile", "rules", "scripts", "envs", "requirements.txt", "src/sandflow"]
    assert yaml.safe_load(path.read_text())["plots"] == PLOTS  # added, as there were none
    written = path.stat().st_mtime_ns
    assert not write_dvc_yaml(["data.jsonl"], str(path)) and path.stat().st_mtime_ns == written
    assert write_dvc_yaml(["data.jsonl", "recipe.yaml"], str(path))
    assert yaml.safe_load(path.read_text())["stages"]["experiment"]["deps"][1:3] == ["data.jsonl", "recipe.yaml"]


def test_a_bad_config_stops_the_stage_with_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture
):
    monkeypatch.chdir(tmp_path)
    Path("bad.yaml").write_text("execution_job_configs:\n  - hook: 'ProcessDataHook'\n    dj_configs: 'missing.yaml'\n")
    Path("params.yaml").write_text("experiment:\n  config: bad.yaml\n  work_dir: w\n  cores: 2\n")
    Path("dvc.yaml").write_text("stages: {}\n")
    error = [
        f"sandflow: error: bad.yaml: execution_job_configs[0].dj_configs: file not found: missing.yaml "
        f"(relative paths are resolved against {tmp_path})"
    ]
    assert main(["params.yaml"]) == 2
    assert capsys.readouterr().err.splitlines() == error
    assert cli_main(["dvc-stage"]) == 2
    assert capsys.readouterr().err.splitlines() == error
    assert Path("dvc.yaml").read_text() == "stages: {}\n" and not Path("w").exists()
