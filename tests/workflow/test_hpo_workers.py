"""Several workers of one bayes search (python -m sandflow.hpo_search) on one work_dir and one study.

Workers take turns on the work_dir lock (src/sandflow/hpo_search.py, WorkDirTurns) and hand it to the
snakemake they run (src/sandflow/run/lock.py, hold_lock). The end-to-end test starts two workers at
once on configs/hpo/sandbox.yaml with a study in SQLite, and checks from what each worker's snakemake
printed that no job ran in both.
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sandflow.run.lock import INHERITED_LOCK, lock_path

from helpers.env import snakemake_env
from helpers.paths import REPO, copy_from_repo
from helpers.snakemake import hpo_search_command, job_counts, snakemake

CONFIG = "configs/hpo/sandbox.yaml"
WORK = Path("outputs/hpo")
METRIC = "sample_search.evaluate_sample.min_mse"


def hold(work_dir: Path) -> int:
    """Hold work_dir's lock in this process, as a running sandflow run or worker would."""
    path = lock_path(str(work_dir))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def take_lock_in_child(
    work_dir: Path, env: dict[str, str], pass_fds: tuple[int, ...] = ()
) -> subprocess.CompletedProcess:
    code = (  # as a run's onstart does (Workflow.start_run)
        "from sandflow.run.lock import LockRefused, hold_lock\n"
        "from sandflow.run.workflow import exit_with_error\n"
        f"try:\n    hold_lock({str(work_dir)!r})\nexcept LockRefused as exc:\n    exit_with_error(str(exc))\n"
        "print('held')"
    )
    return subprocess.run(
        [sys.executable, "-c", code], env=env, pass_fds=pass_fds, capture_output=True, text=True, timeout=120
    )


def test_a_run_is_refused_while_the_work_dir_is_held_unless_the_holder_passed_its_lock_down(tmp_path: Path):
    fd = hold(tmp_path)
    try:
        refused = take_lock_in_child(tmp_path, {**os.environ})
        assert refused.returncode == 2 and refused.stdout == ""
        assert refused.stderr.strip() == (
            f"sandflow: error: another sandflow run (pid {os.getpid()}) is using "
            f"work_dir {tmp_path}; wait for it to finish or stop it"
        )
        passed = take_lock_in_child(tmp_path, {**os.environ, INHERITED_LOCK: str(fd)}, pass_fds=(fd,))
        assert passed.returncode == 0 and passed.stdout == "held\n", passed.stderr
        # A descriptor of another file is not a lock on this work_dir.
        with open(tmp_path / "other", "w") as other:
            wrong = take_lock_in_child(
                tmp_path, {**os.environ, INHERITED_LOCK: str(other.fileno())}, pass_fds=(other.fileno(),)
            )
        assert wrong.returncode == 2 and "another sandflow run" in wrong.stderr
    finally:
        os.close(fd)


def test_a_worker_gives_up_after_waiting_its_bound_and_writes_nothing(tmp_path: Path):
    copy_from_repo(tmp_path, "configs/hpo", "configs/data/hpo")
    fd = hold(tmp_path / WORK)
    try:
        result = subprocess.run(
            hpo_search_command(CONFIG, "configs/hpo/bayes_search.yaml", "--wait", "1"),
            cwd=tmp_path,
            env=snakemake_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        os.close(fd)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"sandflow: hpo_search: waiting for work_dir ./outputs/hpo (pid {os.getpid()} is using it), at most 1 s",
        (
            f"sandflow: error: hpo_search: work_dir ./outputs/hpo was still in use (pid {os.getpid()}) after 1 s "
            "(--wait); the trials finished so far stay in the study"
        ),
    ]
    assert sorted(p.name for p in (tmp_path / WORK).rglob("*")) == [".sandflow", "lock"]  # no study, no search


def jobs_started(output: str) -> set[tuple[str, str]]:
    """(hook, key) of every job whose rule block snakemake printed, i.e. every job it ran."""
    return set(re.findall(r"^\s+output: \S*/jobs/(\w+)/([0-9a-f]{16})/context\.json$", output, re.M))


@pytest.mark.slow
def test_two_workers_share_one_study_and_one_work_dir_and_run_no_job_twice(tmp_path: Path):
    import optuna

    copy_from_repo(tmp_path, "configs/hpo", "configs/data/hpo")
    search = yaml.safe_load((REPO / "configs/hpo/bayes_search.yaml").read_text())
    search["sweep_max_count"] = 4
    (tmp_path / "configs/hpo/workers_search.yaml").write_text(yaml.safe_dump(search))
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    command = hpo_search_command(
        CONFIG, "configs/hpo/workers_search.yaml", "--storage", storage, "--batch", "1", "--cores", "2"
    )
    workers = [
        subprocess.Popen(
            command, cwd=tmp_path, env=snakemake_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [worker.communicate(timeout=900) for worker in workers]
    for worker, (_stdout, stderr) in zip(workers, outputs):
        assert worker.returncode == 0, stderr[-3000:]

    # The study holds both workers' trials, each asked and told by one of them, none drawn twice.
    study = optuna.load_study(study_name="sandbox-hpo.cleanest-sample", storage=storage)
    trials = study.get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 4
    by_worker = {
        worker.pid: [t.number for t in trials if t.user_attrs["worker"].endswith(f":{worker.pid}")]
        for worker in workers
    }
    assert sorted(n for numbers in by_worker.values() for n in numbers) == [0, 1, 2, 3]
    assert all(by_worker.values()), by_worker  # each worker had turns
    assert [stderr.count("sandflow: hpo_search: -m snakemake") for _, stderr in outputs] == [
        len(by_worker[worker.pid]) for worker in workers
    ]
    assert any("sandflow: hpo_search: waiting for work_dir" in stderr for _, stderr in outputs)
    values = [t.user_attrs["values"] for t in trials]
    assert len({json.dumps(v, sort_keys=True) for v in values}) == 4

    # No job ran in both workers, and every job in the store ran in one of them.
    ran = [jobs_started(stdout + stderr) for stdout, stderr in outputs]
    assert ran[0] and ran[1] and not ran[0] & ran[1]
    store = {(d.parent.name, d.name) for d in (tmp_path / WORK / "jobs").glob("*/*") if d.is_dir()}
    assert (
        ran[0] | ran[1] == store and len(store) == 1 + 2 * 4
    )  # the shared merge, a sample and an evaluation per trial

    # best.json and trials.csv cover every trial of both workers.
    with (tmp_path / WORK / "hpo" / "trials.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [float(row[METRIC]) for row in rows] == pytest.approx([t.value for t in trials])
    best = json.loads((tmp_path / WORK / "hpo" / "best.json").read_text())
    assert best["trials"] == 4 and best["metric"]["value"] == pytest.approx(study.best_value)
    assert best["params"] == study.best_trial.user_attrs["values"] and best["trial"] == study.best_trial.number + 1
    line = f"best of 4 trials: {study.best_value!r} with {study.best_trial.user_attrs['values']}\n"
    assert [stdout for stdout, _ in outputs] == [line, line]
    # The last search config lists every trial: snakemake on it finds nothing to do.
    assert job_counts(snakemake(tmp_path, WORK / "hpo" / "search.yaml")) == {}
