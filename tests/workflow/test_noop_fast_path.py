"""`sandflow run` says "nothing to do" without Snakemake only where Snakemake says "Nothing to be done" (run/noop.py).

End to end on configs/hpo/sandbox.yaml (a grid search of 2 trials on cheap pool and evaluation hooks) and an
iterative form of it (iter_targets never met, stopped at the cap of 2): a cold run, a no-op rerun that takes the
fast path (and `snakemake -n` agreeing), then each change that must go to Snakemake.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sandflow.run.lock import hold_lock
from sandflow.run.noop import qualifies

from helpers.env import snakemake_env
from helpers.imports import assert_planning_only, imported_after
from helpers.paths import REPO, copy_from_repo
from helpers.snakemake import snakemake

FAST = "sandflow: nothing to do:"
SNAKEMAKE_NOOP = "Nothing to be done"
SNAKEMAKE_STARTED = "Using workflow specific profile"


def sandflow_run(cwd: Path, config: str, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "sandflow.cli", "run", config, *args]
    result = subprocess.run(command, cwd=cwd, env=snakemake_env(), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def took_fast_path(result: subprocess.CompletedProcess) -> bool:
    fast = FAST in result.stderr
    assert fast != (SNAKEMAKE_STARTED in result.stderr), result.stderr[-3000:]
    return fast


@pytest.mark.parametrize(
    "args, fast",
    [
        ([], True),
        (["--cores", "2"], True),
        (["--cores=all"], True),
        (["-c4"], True),
        (["-j", "3"], True),
        (["--profile", "profiles/local"], True),
        (["--profile=profiles/slurm"], False),
        (["--profile", "local"], False),  # a name Snakemake looks up in its own places
        (["--forceall"], False),
        (["-R", "evaluate_data"], False),
        (["-n"], False),
        (["--report", "report.html"], False),
        (["outputs/hpo/context_infos.json"], False),
        (["--cores", "2", "--config", "work_dir=x"], False),
        (["--cores"], False),
    ],
)
def test_only_a_plain_run_qualifies(args: list[str], fast: bool, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(REPO)  # where profiles/local is
    monkeypatch.delenv("SNAKEMAKE_PROFILE", raising=False)
    assert qualifies(args) is fast


def test_a_snakemake_profile_in_the_environment_bypasses_the_fast_path(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SNAKEMAKE_PROFILE", "profiles/s3")
    assert not qualifies([])


def hpo_dir(tmp_path: Path, iterative: bool) -> Path:
    run_dir = copy_from_repo(tmp_path, "configs/hpo", "configs/data/hpo")
    search = yaml.safe_load((run_dir / "configs/hpo/search.yaml").read_text())
    search["sweep_max_count"] = 2
    (run_dir / "configs/hpo/search.yaml").write_text(yaml.safe_dump(search, sort_keys=False))
    if iterative:
        config = yaml.safe_load((run_dir / "configs/hpo/sandbox.yaml").read_text())
        config.update(
            hpo_config=None,
            max_iter_num=0,
            max_iter_cap=2,
            iter_targets=["sample_search.evaluate_sample.min_mse <= -1"],
        )
        (run_dir / "configs/hpo/sandbox.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return run_dir


CONFIG = "configs/hpo/sandbox.yaml"
SANDFLOW_RUN = "import sys\nfrom sandflow.cli import main\nassert main(['run', sys.argv[1]]) == 0"
# `sandflow run`, saying how many plans its process made.
SANDFLOW_RUN_COUNTING_PLANS = """import sys
from sandflow.plan.planner import Planner
from sandflow.cli import main
plans, plan = [], Planner.plan
Planner.plan = lambda self: plans.append(self) or plan(self)
assert main(['run', sys.argv[1]]) == 0
print(f'plans made: {len(plans)}', file=sys.stderr)
"""


def assert_decided_light(run_dir: Path) -> None:
    """The fast path decides without Snakemake, any hook's own module or the libraries jobs use."""
    result, modules = imported_after(run_dir, SANDFLOW_RUN, CONFIG)
    assert FAST in result.stderr, result.stderr[-3000:]
    assert_planning_only(modules)


@pytest.mark.slow
@pytest.mark.parametrize("iterative", [False, True], ids=["hpo-grid", "iterative"])
def test_a_noop_rerun_skips_snakemake_and_any_change_goes_to_it(tmp_path: Path, iterative: bool):
    run_dir = hpo_dir(tmp_path, iterative)
    cold, modules = imported_after(run_dir, SANDFLOW_RUN, CONFIG)
    assert not took_fast_path(cold)
    # Snakemake ran its jobs in this process without pandas (run/import_shortcuts.py): 0.5 s of its start.
    assert "snakemake.scheduling.job_scheduler" in modules and "pandas" not in modules
    rerun = sandflow_run(run_dir, CONFIG, "--cores", "2")
    assert took_fast_path(rerun)
    line = rerun.stderr.strip()
    assert line.startswith(FAST) and line.endswith("context_infos.json: outputs/hpo/context_infos.json"), line
    assert_decided_light(run_dir)
    assert SNAKEMAKE_NOOP in snakemake(run_dir, CONFIG, "-n").stdout  # Snakemake agrees
    # Options other than the number of cores go to Snakemake.
    assert not took_fast_path(sandflow_run(run_dir, CONFIG, "-n"))

    # A run in progress (the lock held): Snakemake decides.
    lock = hold_lock(str(run_dir / "outputs/hpo"))
    try:
        assert not took_fast_path(sandflow_run(run_dir, CONFIG))
    finally:
        lock.release()
        os.close(lock.fd)  # the flock goes with the file description
    assert took_fast_path(sandflow_run(run_dir, CONFIG))

    # A published copy deleted (a search's trials publish nothing): Snakemake cannot see it; the fast path does not
    # claim it is current.
    published = sorted(path for path in (run_dir / "outputs/hpo/merged").rglob("*") if path.is_file())
    assert bool(published) == iterative
    if iterative:
        published[0].unlink()
        assert not took_fast_path(sandflow_run(run_dir, CONFIG))
        snakemake(run_dir, CONFIG, "--forcerun", "context_infos")
        assert published[0].exists() and took_fast_path(sandflow_run(run_dir, CONFIG))

    # context_infos.json deleted: Snakemake rebuilds it, then the fast path is back.
    (run_dir / "outputs/hpo/context_infos.json").unlink()
    assert not took_fast_path(sandflow_run(run_dir, CONFIG))
    assert (run_dir / "outputs/hpo/context_infos.json").exists()
    assert took_fast_path(sandflow_run(run_dir, CONFIG))

    # What a failed run leaves: its own context_infos.json and no final records.
    for record in (run_dir / "outputs/hpo/.sandflow").glob("[pi][ut]*/*.json"):  # publication/, iterations/outcome
        if record.parent.name == "publication" or record.name.startswith("outcome-"):
            record.unlink()
    assert not took_fast_path(sandflow_run(run_dir, CONFIG))
    assert took_fast_path(sandflow_run(run_dir, CONFIG))

    # One value changed: its jobs run.
    config = yaml.safe_load((run_dir / CONFIG).read_text())
    config["pipelines"][0]["sample_search"]["evaluation_job_configs"][0]["extra_configs"]["ground_truth_value_key"] = (
        "grade"
    )
    (run_dir / CONFIG).write_text(yaml.safe_dump(config, sort_keys=False))
    changed, _ = imported_after(run_dir, SANDFLOW_RUN_COUNTING_PLANS, CONFIG)
    assert not took_fast_path(changed) and "evaluate_data" in changed.stderr
    # The plan that found work is the one Snakemake's Snakefile runs (it is not made again).
    assert changed.stderr.strip().endswith("plans made: 1"), changed.stderr[-3000:]
    assert took_fast_path(sandflow_run(run_dir, CONFIG))
