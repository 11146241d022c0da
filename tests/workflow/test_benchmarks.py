"""Snakemake's benchmark files: every hook job's run writes <work_dir>/benchmarks/<hook>/<key>.tsv.

Real snakemake on the model demo cut to 20 training steps: Data-Juicer cleans the texts, a tiny GPT-2
trains, answers the questions, and two evaluations score it.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from sandflow.core import layout

from helpers.paths import REPO
from helpers.snakemake import edited_config, snakemake

pytestmark = pytest.mark.slow

# The columns Snakemake 9 writes (snakemake/benchmark.py), in its order.
COLUMNS = ["s", "h:m:s", "max_rss", "max_vms", "max_uss", "max_pss", "io_in", "io_out", "mean_load", "cpu_time"]
JOB_HOOKS = ["ProcessDataHook", "TrainModelHook", "InferModelHook", "EvaluateModelHook", "EvaluateDataHook"]


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


def test_each_job_of_a_run_writes_its_benchmark_with_snakemakes_columns(tmp_path: Path):
    snakemake(tmp_path, tiny_model_demo(tmp_path))
    work_dir = tmp_path / "outputs" / "model-demo"
    keys = {hook: [p.name for p in (work_dir / "jobs" / hook).iterdir()] for hook in JOB_HOOKS}
    assert all(len(found) == 1 for found in keys.values()), keys
    for hook, (key,) in keys.items():
        with open(layout.job_benchmark(str(work_dir), hook, key)) as handle:
            (row,) = list(csv.DictReader(handle, delimiter="\t"))
        assert list(row) == COLUMNS, hook
        assert float(row["s"]) > 0 and row["h:m:s"].count(":") == 2, (hook, row)
        # MB, MB/s, %: of the job's own process (with the warm job server, a client that waits for a fork of it).
        assert all(row[column] == "NA" or float(row[column]) >= 0 for column in COLUMNS[2:]), (hook, row)
    # Only the jobs of the hooks' rules are measured, not the bookkeeping rules.
    assert sorted(p.name for p in (work_dir / "benchmarks").iterdir()) == sorted(JOB_HOOKS)
