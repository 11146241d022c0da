"""Iterations: iter_targets decided by a checkpoint after each iteration, iter_updater as refs.

The end-to-end tests run configs/iterate/sandbox.yaml (DJ-Sandbox's auto-prompt-optimization in its
iterative form) with the real snakemake against sandflow.devtools.loopback_chat serving
configs/iterate/assistant.py, and go in order: a dry run, the cold run (the target is met at
iteration 2), a no-op rerun, then a stricter target that is never met (stopped at the cap).
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from fractions import Fraction
from pathlib import Path

import pytest
import yaml

from sandflow.config.errors import ConfigError
from sandflow.config.load import load_config
from sandflow.core.layout import decision_path
from sandflow.devtools.loopback_chat import ChatServer, load_answer
from sandflow.plan.iterations import decide
from sandflow.plan.model import Plan
from sandflow.plan.planner import Planner

from helpers.chat import chat_server
from helpers.paths import REPO, copy_from_repo
from helpers.snakemake import finished_counts, job_counts, snakemake

CONFIG = "configs/iterate/sandbox.yaml"
WORK = Path("outputs/iterate")
KEY_ENV = "ITERATE_API_KEY"
# By configs/apo/grader.py's rules (see tests/workflow/test_apo_example.py) over its 14 questions: the best
# prompt after one improvement checks the final answer and answers ONLY a number (3 errors in 14);
# after two, it checks each calculation (1 error in 14, the reasoning mistake it cannot see).
BEST_MSE = {1: Fraction(3, 14), 2: Fraction(1, 14), 3: Fraction(1, 14)}
JOBS_PER_ITERATION = {"infer_model": 2, "data_pool_manipulation": 3, "evaluate_data": 1, "general_probe": 1}


def raw_config() -> dict:
    return yaml.safe_load((REPO / CONFIG).read_text())


def target(context: Path, value: float, op: str = "<=") -> dict:
    return {"text": f"p.m.min_mse {op} {value}", "context": str(context), "index": 0, "op": op, "value": value}


def write_context(path: Path, value: object) -> Path:
    path.write_text(json.dumps({"values": [value]}))
    return path


# --- deciding, in process -----------------------------------------------------------------------


def test_decide_all_any_cap_and_a_value_that_is_not_a_number(tmp_path: Path):
    low, high = write_context(tmp_path / "low.json", 0.05), write_context(tmp_path / "high.json", 0.5)
    both = [target(low, 0.1), target(high, 0.1)]
    assert decide({"iteration": 1, "cap": 5, "mode": "all", "targets": both})["next_iteration"] is True
    met_any = decide({"iteration": 1, "cap": 5, "mode": "any", "targets": both})
    assert (met_any["targets_met"], met_any["next_iteration"]) == (True, False)
    assert [c["met"] for c in met_any["targets"]] == [True, False]
    assert met_any["reason"] == "the targets are met (any) at iteration 1"
    at_cap = decide({"iteration": 5, "cap": 5, "mode": "all", "targets": both})
    assert at_cap["next_iteration"] is False and "iteration 5 is the last allowed (cap 5)" in at_cap["reason"]
    text = write_context(tmp_path / "text.json", "n/a")
    assert decide({"iteration": 1, "cap": 5, "mode": "any", "targets": [target(text, 0.1)]})["targets_met"] is False
    assert (
        decide({"iteration": 1, "cap": 2, "mode": "all", "targets": [target(low, 0.05, "==")]})["targets_met"] is True
    )


# --- planning ------------------------------------------------------------------------------------


@pytest.fixture
def configs_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the configs as the working directory, never the checkout (its outputs/ is the user's)."""
    copy_from_repo(tmp_path, "configs/iterate", "configs/apo", "configs/data/apo")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def plan_in(directory: Path, raw: dict) -> tuple[Plan, Planner]:
    raw = {**raw, "work_dir": str(directory / "work")}
    planner = Planner(load_config(raw, source="iterate.yaml"))
    return planner.plan(), planner


def test_only_iteration_1_is_planned_until_its_decision_exists(tmp_path: Path, configs_copy: Path):
    plan, planner = plan_in(tmp_path, raw_config())
    assert {job.iteration for job in plan.jobs} == {1}
    assert plan.pending_note == (
        "iterations 2-5 run only while the targets are unmet; they are planned once iteration 1's results are checked"
    )
    # A decision on disk that says "go on" plans iteration 2, its generation job reading iteration 1's merge.
    digest = planner.schedule.digest(1)
    decision = Path(decision_path(plan.work_dir, 1, digest))
    decision.parent.mkdir(parents=True)
    decision.write_text(json.dumps({"next_iteration": True}))
    plan, planner = plan_in(tmp_path, raw_config())
    assert [job.iteration for job in plan.jobs].count(2) == 7
    generate = planner.iterations[1][0]
    merge_1 = planner.iterations[0][-1]
    assert [(ref.target, ref.job) for ref in generate.refs] == [(("extra_configs", "dataset_path"), merge_1)]
    assert generate.key != planner.iterations[0][0].key
    decision.write_text(json.dumps({"next_iteration": False}))
    assert {job.iteration for job in plan_in(tmp_path, raw_config())[0].jobs} == {1}


def test_without_targets_every_iteration_is_planned_up_front_with_the_updater_as_refs(
    tmp_path: Path, configs_copy: Path
):
    raw = {**raw_config(), "max_iter_num": 3, "iter_targets": []}
    plan, planner = plan_in(tmp_path, raw)
    assert [len(jobs) for jobs in planner.iterations] == [7, 7, 7] and plan.pending_note == ""
    third = planner.iterations[2][0]
    assert third.refs[0].job is planner.iterations[1][-1]
    # An update that reaches only the evaluation leaves the jobs before it as they were: cache hits.
    raw["iter_updater"] = {
        "select_and_merge_data_pools.merge_single_prompt_data_pools.merged_top_prompt_dataset": "grader_model_prompt_optimization.grades_evaluation.extra_configs.reference_path"
    }
    first, second, _ = plan_in(tmp_path, raw)[1].iterations
    assert [a.key == b.key for a, b in zip(first, second)] == [True, True, True, True, False, False, False]


@pytest.mark.parametrize(
    "change, where, message",
    [
        (
            {"iter_targets": ["grader_model_prompt_optimization.grades_evaluation.min_mse <= low"]},
            "iter_targets[0]",
            "'low' is not a number",
        ),
        (
            {"iter_targets": ["grader_model_prompt_optimization.grades_evaluation.best_mse <= 0.1"]},
            "iter_targets[0]",
            "has no output 'best_mse'",
        ),
        (
            {
                "iter_updater": {
                    "select_and_merge_data_pools.merge_single_prompt_data_pools.merged_top_prompt_dataset": "grader_model_prompt_optimization.generate_new_prompts.dataset_path"
                }
            },
            "iter_updater['select_and_merge_data_pools.merge_single_prompt_data_pools.merged_top_prompt_dataset']",
            "must be <pipeline>.<meta_name>.<dj_configs|extra_configs>.<dotted key>",
        ),
        ({"max_iter_cap": 0}, "max_iter_cap", "must be at least 1, got 0"),
    ],
)
def test_bad_iteration_settings_name_their_place(
    tmp_path: Path, configs_copy: Path, change: dict, where: str, message: str
):
    with pytest.raises(ConfigError) as error:
        plan_in(tmp_path, {**raw_config(), **change})
    assert error.value.where == where and message in error.value.message


# --- end to end ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served():
    with chat_server(load_answer(f"{REPO / 'configs/iterate/assistant.py'}:reply")) as server:
        yield server


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, served: ChatServer) -> Path:
    directory = copy_from_repo(tmp_path_factory.mktemp("iterate"), "configs/iterate", "configs/apo", "configs/data/apo")
    text = (directory / CONFIG).read_text()
    assert text.count("http://127.0.0.1:8766/v1") == 2
    (directory / CONFIG).write_text(text.replace("http://127.0.0.1:8766/v1", served.url))  # this run's free port
    return directory


def best_mse_per_iteration(run_dir: Path) -> dict[int, Fraction]:
    context_infos = json.loads((run_dir / WORK / "context_infos.json").read_text())
    best = {}
    for entry in context_infos:
        (evaluation,) = [j for j in entry["pipeline_infos"][0]["job_infos"] if j["meta_name"] == "grades_evaluation"]
        best[entry["iter"]] = Fraction(evaluation["min_mse"]).limit_denominator(100)
    return best


def decisions(run_dir: Path) -> list[dict]:
    files = sorted((run_dir / WORK / ".sandflow" / "iterations").glob("iter_*.json"), key=lambda p: p.stat().st_mtime)
    return [json.loads(f.read_text()) for f in files]


@pytest.mark.slow
def test_a_dry_run_lists_iteration_1_and_says_the_rest_depend_on_it(run_dir: Path):
    result = snakemake(run_dir, CONFIG, "-n")
    assert job_counts(result) == {
        **JOBS_PER_ITERATION,
        "iteration_decision": 1,
        "iteration_outcome": 1,
        "publication_record": 1,
        "context_infos": 1,
        "track_wandb": 1,
        "all": 1,
    }
    assert "sandflow: note: iterations 2-5 run only while the targets are unmet" in result.stderr
    assert not (run_dir / WORK).exists()


@pytest.mark.slow
def test_it_iterates_until_the_target_is_met_and_a_rerun_does_nothing(run_dir: Path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "local")
    counts = finished_counts(snakemake(run_dir, CONFIG))
    twice = {rule: 2 * n for rule, n in JOBS_PER_ITERATION.items()}
    # The publication record waits for the decisions: it is written once, for the grown plan.
    assert counts == {
        **twice,
        "iteration_decision": 2,
        "iteration_outcome": 1,
        "publication_record": 1,
        "context_infos": 1,
        "track_wandb": 1,
        "all": 1,
    }
    assert best_mse_per_iteration(run_dir) == {1: BEST_MSE[1], 2: BEST_MSE[2]}
    assert [(d["iteration"], d["targets_met"], d["next_iteration"]) for d in decisions(run_dir)] == [
        (1, False, True),
        (2, True, False),
    ]
    assert sorted(p.name for p in (run_dir / WORK / "pipelines" / "select_and_merge_data_pools").iterdir()) == [
        "iter_1",
        "iter_2",
    ]
    # wandb, offline: one run per pipeline, the scores of both iterations on its iteration axis.
    (tracked,) = (run_dir / WORK / "wandb").glob("tracked-*.json")
    runs = json.loads(tracked.read_text())["runs"]
    assert [run["name"] for run in runs] == [
        "iterative-grader-prompt.grader_model_prompt_optimization",
        "iterative-grader-prompt.select_and_merge_data_pools",
    ]
    assert "grades_evaluation.min_mse" in runs[0]["keys"]
    records = next((run_dir / WORK / "wandb").glob(f"offline-run-*-{runs[0]['id']}/run-*.wandb")).read_bytes()
    assert b"grades_evaluation.min_mse" in records
    assert job_counts(snakemake(run_dir, CONFIG)) == {}


@pytest.mark.slow
def test_the_report_holds_each_iterations_ranking_plot_and_metrics_with_captions(run_dir: Path):
    snakemake(run_dir, CONFIG, "--report", "report.zip")
    with zipfile.ZipFile(run_dir / "report.zip") as archive:
        names = archive.namelist()
        figures = sorted(Path(n).name for n in names if n.endswith(".png"))
        (metrics,) = [n for n in names if n.endswith("metrics.csv")]
        rows = list(csv.DictReader(io.StringIO(archive.read(metrics).decode())))
        page = archive.read(next(n for n in names if n.endswith("report.html"))).decode()
    assert figures == [
        f"iter_{n}.select_and_merge_data_pools.rank_single_prompt_data_pools.plots.ranking.png" for n in (1, 2)
    ]
    best = {int(r["iteration"]): Fraction(r["value"]).limit_denominator(100) for r in rows if r["metric"] == "min_mse"}
    assert best == {1: BEST_MSE[1], 2: BEST_MSE[2]}
    for caption in (
        "A DJ-Sandbox experiment run by sandflow",
        "A figure drawn by a job of this run",
        "Every number an evaluation job",
    ):
        assert caption in page


@pytest.mark.slow
def test_a_target_never_met_stops_at_the_cap_and_reuses_the_earlier_iterations(run_dir: Path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "local")
    config = yaml.safe_load((run_dir / CONFIG).read_text())
    config.update(iter_targets=["grader_model_prompt_optimization.grades_evaluation.min_mse <= 0.05"], max_iter_cap=3)
    (run_dir / "strict.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    counts = finished_counts(snakemake(run_dir, "strict.yaml"))
    # Iterations 1 and 2 are the same jobs (cache hits); their decisions are checked against the new target.
    assert counts == {
        **JOBS_PER_ITERATION,
        "iteration_decision": 3,
        "iteration_outcome": 1,
        "publication_record": 1,
        "context_infos": 1,
        "track_wandb": 1,
        "all": 1,
    }
    assert best_mse_per_iteration(run_dir) == BEST_MSE
    last = decisions(run_dir)[-1]
    assert (last["iteration"], last["targets_met"], last["next_iteration"]) == (3, False, False)
    assert last["reason"] == "the targets are not met, and iteration 3 is the last allowed (cap 3)"
    outcomes = sorted(
        (run_dir / WORK / ".sandflow" / "iterations").glob("outcome-*.json"), key=lambda p: p.stat().st_mtime
    )
    assert [json.loads(p.read_text())["iterations"] for p in outcomes] == [2, 3]  # the first run's, then this one's
    assert job_counts(snakemake(run_dir, "strict.yaml")) == {}
