"""The model demo end to end with real snakemake: Data-Juicer -> train a tiny GPT-2 -> infer -> evaluate.

configs/model_demo/sandbox.yaml on configs/data/model_demo/ (made by
configs/data/make_model_demo_dataset.py). The tests share one run directory and
run in order: cold run (its results, and the benchmark file each job's run wrote), a sampling-parameter change,
a no-op rerun.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sandflow.core import layout
from sandflow.core.jsonl import read_objects

from helpers.paths import REPO
from helpers.snakemake import edited_config, job_counts, snakemake

pytestmark = pytest.mark.slow

CONFIG = "configs/model_demo/sandbox.yaml"
WORK = Path("outputs/model-demo")
BOOKKEEPING = {"publication_record": 1, "context_infos": 1, "all": 1}
INFERENCE = "outputs/model-demo/inference/iter_1/qa_inference.jsonl"


def job_infos(run_dir: Path) -> dict[str, dict]:
    infos = json.loads((run_dir / WORK / "context_infos.json").read_text())
    (pipeline,) = infos[0]["pipeline_infos"]
    return {job["meta_name"]: job for job in pipeline["job_infos"]}


def with_max_new_tokens(run_dir: Path, tokens: int) -> str:
    """A copy of the demo config whose inference generates another number of tokens (nothing else changes)."""

    def edit(data: dict) -> None:
        (infer,) = [job for job in data["execution_job_configs"] if job["meta_name"] == "answer_questions"]
        assert infer["extra_configs"]["sampling_params"]["max_new_tokens"] != tokens
        infer["extra_configs"]["sampling_params"]["max_new_tokens"] = tokens

    return edited_config(run_dir, CONFIG, f"max_new_tokens_{tokens}.yaml", edit)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("model_demo")
    shutil.copytree(
        REPO / "configs" / "model_demo",
        directory / "configs" / "model_demo",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    (directory / "configs" / "data").mkdir()
    (directory / "configs" / "data" / "model_demo").symlink_to(REPO / "configs" / "data" / "model_demo")
    return directory


@pytest.fixture(scope="module")
def cold(run_dir: Path) -> dict:
    return {"counts": job_counts(snakemake(run_dir, CONFIG)), "inference": (run_dir / INFERENCE).read_text()}


def test_cold_run_runs_each_job_once(run_dir: Path, cold: dict):
    assert cold["counts"] == {
        "process_data": 1,
        "train_model": 1,
        "infer_model": 1,
        "evaluate_model": 1,
        "evaluate_data": 1,
        **BOOKKEEPING,
    }
    assert not list((run_dir / WORK / "jobs").glob("*/*.partial-*"))
    # The report's figures include the training curve of the one model trained.
    curves = [p.name for p in (run_dir / WORK / "report" / "figures").glob("*train_log.png")]
    assert len(curves) == 1 and curves[0].startswith("anonymous.")


# The columns Snakemake 9 writes (snakemake/benchmark.py), in its order.
BENCHMARK_COLUMNS = [
    "s",
    "h:m:s",
    "max_rss",
    "max_vms",
    "max_uss",
    "max_pss",
    "io_in",
    "io_out",
    "mean_load",
    "cpu_time",
]
JOB_HOOKS = ["ProcessDataHook", "TrainModelHook", "InferModelHook", "EvaluateModelHook", "EvaluateDataHook"]


def test_each_job_of_a_run_writes_its_benchmark_with_snakemakes_columns(run_dir: Path, cold: dict):
    """Snakemake's benchmark files: every hook job's run writes <work_dir>/benchmarks/<hook>/<key>.tsv. Before the
    sampling-parameter change below: one job per hook."""
    work_dir = run_dir / WORK
    keys = {hook: [p.name for p in (work_dir / "jobs" / hook).iterdir()] for hook in JOB_HOOKS}
    assert all(len(found) == 1 for found in keys.values()), keys
    for hook, (key,) in keys.items():
        with open(layout.job_benchmark(str(work_dir), hook, key)) as handle:
            (row,) = list(csv.DictReader(handle, delimiter="\t"))
        assert list(row) == BENCHMARK_COLUMNS, hook
        assert float(row["s"]) > 0 and row["h:m:s"].count(":") == 2, (hook, row)
        # MB, MB/s, %: of the job's own process (with the warm job server, the server's child that runs it).
        assert all(row[column] == "NA" or float(row[column]) >= 0 for column in BENCHMARK_COLUMNS[2:]), (hook, row)
    # Only the jobs of the hooks' rules are measured, not the bookkeeping rules.
    assert sorted(p.name for p in (work_dir / "benchmarks").iterdir()) == sorted(JOB_HOOKS)


def test_data_juicer_drops_exactly_the_junk_rows(run_dir: Path, cold: dict):
    rows = read_objects(run_dir / "configs/data/model_demo/train.jsonl")
    kept = read_objects(run_dir / "outputs/model-demo/data/iter_1/train-clean.jsonl")
    assert [r["meta"]["id"] for r in kept] == [r["meta"]["id"] for r in rows if not r["meta"]["junk"]]
    assert len(kept) < len(rows)


def test_model_learns_the_facts_and_context_infos_holds_the_metrics(run_dir: Path, cold: dict):
    jobs = job_infos(run_dir)
    assert list(jobs) == [
        "clean_training_texts",
        "train_tiny_gpt2",
        "answer_questions",
        "heldout_perplexity",
        "answer_accuracy",
    ]
    assert jobs["clean_training_texts"]["cleaned_dataset_path"] == "outputs/model-demo/data/iter_1/train-clean.jsonl"
    assert jobs["answer_questions"]["inference_result_path"] == INFERENCE

    checkpoint = run_dir / jobs["train_tiny_gpt2"]["checkpoint_path"]
    train_metrics = json.loads((checkpoint / "metrics.json").read_text())
    assert train_metrics["global_step"] == 150 and train_metrics["num_texts"] == 160
    assert (checkpoint / "model.safetensors").is_file()

    perplexity = jobs["heldout_perplexity"]["perplexity_metrics"]
    assert perplexity == json.loads((run_dir / "outputs/model-demo/eval/iter_1/eval.json").read_text())
    assert 1.5 < perplexity["perplexity"] < 10  # an untrained model of this vocabulary is near 1024
    assert 0.4 < perplexity["token_accuracy"] < 0.95

    # The accuracy is recomputed here from the published answers, and must be far above chance (1 in 20).
    answers = read_objects(run_dir / INFERENCE)
    truth = read_objects(run_dir / "configs/data/model_demo/qa.jsonl")
    assert [a["id"] for a in answers] == [t["id"] for t in truth]
    assert all(a["predicted_answer"] and " " not in a["predicted_answer"] for a in answers)
    hits = sum(a["predicted_answer"] == t["answer"] for a, t in zip(answers, truth))
    assert jobs["answer_accuracy"]["accuracy"] == hits / len(truth) >= 0.7
    assert jobs["answer_accuracy"]["accuracy_results"] == [
        {"accuracy": hits / len(truth), "gt_path": "configs/data/model_demo/qa.jsonl", "pred_path": INFERENCE}
    ]


def test_a_sampling_parameter_reruns_inference_and_what_reads_it_only(run_dir: Path, cold: dict):
    work = run_dir / WORK
    before = set(work.glob("jobs/*/*/context.json"))
    counts = job_counts(snakemake(run_dir, with_max_new_tokens(run_dir, 2)))
    # The perplexity job reads the checkpoint only: a cache hit, like the training and the processing.
    assert counts == {"infer_model": 1, "evaluate_data": 1, **BOOKKEEPING}
    new_jobs = sorted(set(work.glob("jobs/*/*/context.json")) - before)
    assert [p.parent.parent.name for p in new_jobs] == ["EvaluateDataHook", "InferModelHook"]
    inference = json.loads(new_jobs[1].read_text())
    assert inference["config"]["extra_configs"]["sampling_params"] == {"max_new_tokens": 2}
    # A capital is one token of the trained tokenizer: two new tokens still hold the same first words.
    assert (run_dir / INFERENCE).read_text() == cold["inference"]
    assert job_infos(run_dir)["answer_accuracy"]["accuracy"] >= 0.7


def test_rerunning_the_changed_config_does_nothing(run_dir: Path, cold: dict):
    assert job_counts(snakemake(run_dir, with_max_new_tokens(run_dir, 2))) == {}


def test_the_committed_data_is_what_the_generator_makes(tmp_path: Path):
    generator = REPO / "configs/data/make_model_demo_dataset.py"
    subprocess.run([sys.executable, str(generator), "--out", str(tmp_path)], check=True, capture_output=True)
    committed = REPO / "configs/data/model_demo"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in committed.iterdir())
    for path in tmp_path.iterdir():
        assert path.read_bytes() == (committed / path.name).read_bytes(), path.name
    qa = read_objects(committed / "qa.jsonl")
    capitals = [row["answer"] for row in qa]
    assert len(set(capitals)) == len(capitals) and all(c.isalpha() for c in capitals)
    training_texts = {row["text"] for row in read_objects(committed / "train.jsonl")}
    assert not training_texts & {row["text"] for row in read_objects(committed / "heldout.jsonl")}
    for row in qa:  # every fact the model is asked about is in its training texts
        assert any(f"{row['query']} {row['answer']}." in text for text in training_texts)
