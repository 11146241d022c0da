"""A hook's code is in its jobs' keys: editing a hook module reruns exactly the jobs of that hook (and what
reads them), and the keys do not depend on where the package lies.

Each test runs a copy of the sandflow package (first on PYTHONPATH, so it shadows the installed one) and
edits a hook module in the copy, as a developer would edit their checkout.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import sandflow

from helpers.env import snakemake_env
from helpers.hpo_grid import merge_sample_evaluate
from helpers.snakemake import job_counts, snakemake_command

PACKAGE = Path(sandflow.__file__).resolve().parent
# merge (data_pools.py) -> sample (data_pools.py) -> evaluate (data_evaluators.py).
CONFIG = {"work_dir": "./out", **merge_sample_evaluate("m/", "s/", 3)}
PRINT_KEYS = (
    "import json; from sandflow.config.load import load_config_file; from sandflow.plan.planner import plan_config;"
    "print(json.dumps({job.cfg.meta_name: job.key for job in plan_config(load_config_file('sandbox.yaml')).jobs}))"
)


def package_copy(root: Path) -> Path:
    """A copy of the sandflow package under root; returns the directory to put first on PYTHONPATH."""
    shutil.copytree(PACKAGE, root / "sandflow", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def append_comment(path_on_pythonpath: Path, module_file: str) -> None:
    with open(path_on_pythonpath / "sandflow" / module_file, "a") as handle:
        handle.write("# edited: any change to a hook's source is a new version of it\n")


def env_with(path_on_pythonpath: Path) -> dict[str, str]:
    return {**snakemake_env(), "PYTHONPATH": str(path_on_pythonpath), "SANDFLOW_JOB_SERVER": "0"}


def experiment(directory: Path) -> Path:
    directory.mkdir()
    for name in ("a", "b"):
        (directory / f"{name}.jsonl").write_text(
            "".join(json.dumps({"grade": i % 2, "truth": 1, "name": name}) + "\n" for i in range(4))
        )
    (directory / "sandbox.yaml").write_text(yaml.safe_dump(CONFIG, sort_keys=False))
    return directory


def planned_keys(run_dir: Path, path_on_pythonpath: Path) -> dict[str, str]:
    result = subprocess.run(
        [sys.executable, "-c", PRINT_KEYS],
        cwd=run_dir,
        env=env_with(path_on_pythonpath),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


def test_editing_a_hook_module_changes_the_keys_of_its_jobs_and_of_what_reads_them(tmp_path: Path):
    run_dir = experiment(tmp_path / "run")
    first, second = package_copy(tmp_path / "one"), package_copy(tmp_path / "two")
    keys = planned_keys(run_dir, first)
    # Source bytes, not paths or mtimes: a copy elsewhere (another checkout, another machine) plans the same keys.
    assert planned_keys(run_dir, second) == keys
    append_comment(first, "hooks/data_evaluators.py")
    after_evaluator_edit = planned_keys(run_dir, first)
    assert {name for name in keys if after_evaluator_edit[name] != keys[name]} == {"evaluate"}
    # A helper module the pool hooks import (pool_io.py) is their code too; the evaluation reads their output.
    append_comment(second, "hooks/pool_io.py")
    assert all(planned_keys(run_dir, second)[name] != keys[name] for name in keys)
    # base.py holds the hook records only: not counted, so editing it reruns nothing.
    third = package_copy(tmp_path / "three")
    append_comment(third, "hooks/base.py")
    assert planned_keys(run_dir, third) == keys


def run_snakemake(run_dir: Path, path_on_pythonpath: Path) -> dict[str, int]:
    result = subprocess.run(
        snakemake_command("sandbox.yaml", "--cores", "2"),
        cwd=run_dir,
        env=env_with(path_on_pythonpath),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert (
        f"{path_on_pythonpath}/sandflow"
        in subprocess.run(  # the copy is what snakemake imports
            [sys.executable, "-c", "import sandflow; print(sandflow.__file__)"],
            env=env_with(path_on_pythonpath),
            capture_output=True,
            text=True,
        ).stdout
    )
    return job_counts(result)


def finished_jobs(run_dir: Path) -> dict[str, int]:
    """Each finished job directory (hook/key) -> the inode of its context.json (a rerun writes a new one)."""
    return {
        str(context.parent.relative_to(run_dir / "out" / "jobs")): context.stat().st_ino
        for context in (run_dir / "out" / "jobs").glob("*/*/context.json")
    }


@pytest.mark.slow
def test_a_rerun_after_editing_a_hook_module_runs_only_that_hooks_jobs(tmp_path: Path):
    run_dir = experiment(tmp_path / "run")
    package = package_copy(tmp_path / "package")
    assert run_snakemake(run_dir, package)["data_pool_manipulation"] == 2
    before = finished_jobs(run_dir)
    assert len(before) == 3
    append_comment(package, "hooks/data_evaluators.py")
    counts = run_snakemake(run_dir, package)
    assert counts.get("evaluate_data") == 1 and "data_pool_manipulation" not in counts, counts
    after = finished_jobs(run_dir)
    # The pool jobs are the same directories, untouched; the evaluation has a new key next to the old one.
    assert {job: inode for job, inode in after.items() if job in before} == before
    (new_job,) = set(after) - set(before)
    assert new_job.startswith("EvaluateDataHook/")
    assert run_snakemake(run_dir, package) == {}  # and that is cached in turn
