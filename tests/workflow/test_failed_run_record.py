"""A failed run keeps its record (issue 26.4): context_infos.json is written after a failed run too, from the jobs
that finished, each pipeline marking the others ``failed`` or ``not run`` under ``unfinished_jobs``; the next
successful run rebuilds the real one without recomputing anything that finished."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from sandflow.config.load import load_config_file
from sandflow.plan.planner import plan_config

from helpers.snakemake import finished_counts, snakemake

GOOD = '{"text": "a good sample"}\n'
BAD = GOOD + "{not json}\n"  # the job reading it fails: 'sandflow: job failed: b.jsonl:2: not JSON (...)'


def duplication(meta_name: str) -> dict:
    return {
        "hook": "DataPoolManipulationHook",
        "meta_name": meta_name,
        "extra_configs": {
            "type": "data_pool_duplication",
            "dataset_path": f"{meta_name}.jsonl",
            "duplicating_times": [2],
            "export_path": f"./work/pools_{meta_name}/",
        },
    }


@pytest.fixture
def experiment(tmp_path: Path) -> Path:
    """Three jobs in order (sequential: each waits for the one before): a, b, c, each duplicating its own file."""
    for name in "abc":
        (tmp_path / f"{name}.jsonl").write_text(GOOD)
    config = {"work_dir": "./work", "sequential": True, "execution_job_configs": [duplication(n) for n in "abc"]}
    (tmp_path / "sandbox.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


def record(root: Path) -> list:
    return json.loads((root / "work" / "context_infos.json").read_text())


def job_dirs(root: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(root)
    return {job.cfg.display_name: job.job_dir for job in plan_config(load_config_file("sandbox.yaml")).jobs}


def fail_at_b(root: Path) -> None:
    """A run in which a finishes (or is cached), b fails on its data, and c never starts."""
    (root / "b.jsonl").write_text(BAD)
    failed = snakemake(root, "sandbox.yaml", "--cores", "1", check=False)
    assert failed.returncode != 0
    assert [line for line in failed.stderr.splitlines() if line.startswith("sandflow:")] == [
        "sandflow: job failed: b.jsonl:2: not JSON (Expecting property name enclosed in double quotes at column 2)"
    ], failed.stderr[-3000:]


def failed_record(a_dir: str) -> list:
    """What context_infos.json says after fail_at_b: a's output in its job directory (nothing is published)."""
    return [
        {
            "iter": 1,
            "pipeline_infos": [
                {
                    "pipeline_name": "anonymous",
                    "job_infos": [{"meta_name": "a", "0": f"{a_dir}/extra_configs.export_path/a_x2.jsonl"}],
                    "unfinished_jobs": [{"meta_name": "b", "state": "failed"}, {"meta_name": "c", "state": "not run"}],
                }
            ],
        }
    ]


COMPLETE = [
    {
        "iter": 1,
        "pipeline_infos": [
            {
                "pipeline_name": "anonymous",
                "job_infos": [{"meta_name": n, "0": f"work/pools_{n}/iter_1/{n}_x2.jsonl"} for n in "abc"],
            }
        ],
    }
]


@pytest.mark.slow
def test_a_failed_run_records_what_finished_and_the_fixed_rerun_computes_only_the_rest(
    experiment: Path, monkeypatch: pytest.MonkeyPatch
):
    fail_at_b(experiment)
    dirs = job_dirs(experiment, monkeypatch)
    assert record(experiment) == failed_record(dirs["a"])
    assert not (experiment / "work" / "pools_a").exists(), "a failed run published"

    (experiment / "b.jsonl").write_text(GOOD)
    fixed = snakemake(experiment, "sandbox.yaml", "--cores", "1")
    assert finished_counts(fixed)["data_pool_manipulation"] == 2  # b and c; a was not recomputed
    assert record(experiment) == COMPLETE
    assert (experiment / "work" / "pools_b" / "iter_1" / "b_x2.jsonl").read_text() == GOOD * 2


@pytest.mark.slow
def test_after_a_failed_run_the_plan_of_the_last_complete_run_reassembles_its_record(
    experiment: Path, monkeypatch: pytest.MonkeyPatch
):
    """The case Snakemake's own records would miss: every input of the assembly is as when it last ran."""
    snakemake(experiment, "sandbox.yaml", "--cores", "1")
    complete = (experiment / "work" / "context_infos.json").read_bytes()
    assert record(experiment) == COMPLETE

    fail_at_b(experiment)  # a is cached; b has a new key, since its data changed
    assert record(experiment) == failed_record(job_dirs(experiment, monkeypatch)["a"])

    (experiment / "b.jsonl").write_text(GOOD)  # back to the first plan, whose every job is finished
    again = snakemake(experiment, "sandbox.yaml", "--cores", "1")
    assert "data_pool_manipulation" not in finished_counts(again)
    assert finished_counts(again)["context_infos"] == 1
    assert (experiment / "work" / "context_infos.json").read_bytes() == complete
