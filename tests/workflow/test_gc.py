"""sandflow gc (src/sandflow/run/gc.py): removes the job directories and logs no given config plans, only with
--yes, never while a run holds the work_dir, never through a symlink."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sandflow.config.load import load_config_file
from sandflow.plan.planner import plan_config
from sandflow.run.gc import human
from sandflow.run.lock import hold_lock

from helpers.env import snakemake_env
from helpers.pool_config import write_pool_config
from helpers.snakemake import snakemake

HOOK = "DataPoolManipulationHook"
UNPLANNED = "0123456789abcdef"  # a key no config here plans


def sandflow_gc(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sandflow.cli", "gc", *args],
        cwd=cwd,
        env=snakemake_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def du(path: Path) -> int:
    return int(
        subprocess.run(["du", "-s", "-B1", str(path)], capture_output=True, text=True, check=True).stdout.split()[0]
    )


def planned_key(config: Path) -> str:
    (job,) = plan_config(load_config_file(str(config))).jobs
    return job.key


def set_target(config: Path, target: int) -> None:
    data = yaml.safe_load(config.read_text())
    data["execution_job_configs"][0]["extra_configs"]["target_num_samples"] = target
    config.write_text(yaml.safe_dump(data))


@pytest.mark.slow
def test_gc_lists_the_old_job_with_sizes_deletes_it_with_yes_and_a_rerun_does_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = write_pool_config(tmp_path, samples=10, target=3)
    snakemake(tmp_path, config)
    old = planned_key(config)
    set_target(config, 4)
    snakemake(tmp_path, config)
    new = planned_key(config)
    old_dir, old_log = Path(f"out/jobs/{HOOK}/{old}"), Path(f"out/logs/{HOOK}/{old}.log")
    old_benchmark = Path(f"out/benchmarks/{HOOK}/{old}.tsv")
    files = [old_log, old_benchmark]
    expected = [
        f"{old_dir}  {human(du(old_dir))}",
        *(f"{path}  {human(path.stat().st_blocks * 512)}" for path in files),
    ]
    freed = du(old_dir) + sum(path.stat().st_blocks * 512 for path in files)

    listed = sandflow_gc(tmp_path, "config.yaml")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0] == "work_dir out: 1 job(s) planned by the given configs are kept"
    assert [line.removeprefix("  would remove ") for line in lines if "would remove" in line] == expected
    assert lines[-1] == f"would free {human(freed)}; run again with --yes to delete"
    assert old_dir.is_dir() and old_log.is_file() and old_benchmark.is_file()  # a dry run by default

    deleted = sandflow_gc(tmp_path, "config.yaml", "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert [line.removeprefix("  removed ") for line in deleted.stdout.splitlines() if "removed" in line] == expected
    assert not old_dir.exists() and not old_log.exists() and not old_benchmark.exists()
    assert sorted(p.name for p in Path(f"out/jobs/{HOOK}").iterdir()) == [new]
    assert Path(f"out/logs/{HOOK}/{new}.log").is_file()

    rerun = snakemake(tmp_path, config)
    assert "Nothing to be done" in rerun.stdout + rerun.stderr
    assert sandflow_gc(tmp_path, "config.yaml").stdout.splitlines()[-1] == "nothing to remove"


def test_gc_takes_the_logs_and_benchmarks_of_unplanned_keys_of_user_hooks_too_and_leaves_the_rules_own(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # where the config's paths resolve, for its planned key
    write_pool_config(tmp_path, samples=4)
    out = tmp_path / "out"
    stale = [
        f"logs/my_hooks.CountRows/{UNPLANNED}.log",
        f"benchmarks/{HOOK}/{UNPLANNED}.tsv",
        f"benchmarks/my_hooks.CountRows/{UNPLANNED}.tsv",
    ]
    kept = [
        "logs/context_infos.log",  # a bookkeeping rule's own log
        f"logs/report_figures/{UNPLANNED}.log",  # a rule with wildcards: not a hook's directory
        f"benchmarks/{HOOK}/{UNPLANNED}.txt",
        f"benchmarks/{HOOK}/{planned_key(Path('config.yaml'))}.tsv",  # the planned job's own
    ]
    for name in stale + kept:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text("x\n")
    listed = sandflow_gc(tmp_path, "config.yaml", "--yes")
    assert listed.returncode == 0, listed.stderr
    removed = [
        line.removeprefix("  removed ").split("  ")[0] for line in listed.stdout.splitlines() if "removed" in line
    ]
    assert removed == [f"out/{name}" for name in stale]  # logs, then benchmarks, each by hook
    assert [name for name in stale + kept if (out / name).exists()] == kept


def test_gc_refuses_in_one_line_while_a_run_holds_the_work_dir(tmp_path):
    write_pool_config(tmp_path, samples=4)
    job = tmp_path / "out" / "jobs" / HOOK / UNPLANNED
    job.mkdir(parents=True)
    held = hold_lock(str(tmp_path / "out"))
    try:
        for args in [(), ("--yes",)]:
            refused = sandflow_gc(tmp_path, "config.yaml", *args)
            assert refused.returncode == 2
            assert refused.stdout == ""
            assert refused.stderr.strip().splitlines() == [
                f"sandflow: error: gc: another sandflow run (pid {os.getpid()}) is using work_dir out; "
                "wait for it to finish or stop it"
            ]
    finally:
        held.release()
    assert job.is_dir()


def test_gc_never_follows_a_symlink_planted_under_jobs(tmp_path):
    write_pool_config(tmp_path, samples=4)
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "thesis.tex").write_text("years of work")
    jobs = tmp_path / "out" / "jobs"
    (jobs / HOOK).mkdir(parents=True)
    (jobs / HOOK / UNPLANNED).symlink_to(outside)  # in place of a job directory
    (jobs / "ProcessDataHook").symlink_to(outside)  # in place of a hook's directory
    unplanned = jobs / HOOK / "fedcba9876543210"
    unplanned.mkdir()
    (unplanned / "artifact").symlink_to(outside)  # inside a job directory gc removes
    partial = jobs / HOOK / f"{UNPLANNED}.partial-4242"
    partial.mkdir()
    stats = tmp_path / "out" / "stats-cache"
    stats.mkdir()
    (stats / "s.json").write_text("{}")

    stats_size = du(stats)
    result = sandflow_gc(tmp_path, "config.yaml", "--yes")
    assert result.returncode == 0, result.stderr
    assert (outside / "thesis.tex").read_text() == "years of work"
    assert not unplanned.exists()
    assert (jobs / HOOK / UNPLANNED).is_symlink() and (jobs / "ProcessDataHook").is_symlink()
    assert partial.is_dir() and (stats / "s.json").is_file()
    assert "  left out/jobs/ProcessDataHook (not a directory: gc never follows or removes a symlink)" in result.stdout
    assert (
        f"  left out/jobs/{HOOK}/{UNPLANNED} (not a directory: gc never follows or removes a symlink)" in result.stdout
    )
    assert f"  left out/jobs/{HOOK}/{UNPLANNED}.partial-4242 (a job being written" in result.stdout
    assert f"  left out/stats-cache ({human(stats_size)}; --stats-cache removes it wholly)" in result.stdout

    again = sandflow_gc(tmp_path, "config.yaml", "--yes", "--stats-cache")
    assert f"  removed out/stats-cache  {human(stats_size)}" in again.stdout
    assert not stats.exists() and (outside / "thesis.tex").is_file()


def test_gc_refuses_a_work_dir_none_of_the_configs_uses(tmp_path):
    write_pool_config(tmp_path, samples=4)
    (tmp_path / "other" / "jobs" / HOOK / UNPLANNED).mkdir(parents=True)
    refused = sandflow_gc(tmp_path, "config.yaml", "--work-dir", "other", "--yes")
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        "sandflow: error: gc: none of the given configs uses work_dir other (they use out); "
        "gc removes only what the configs of a work_dir do not plan, so it needs them all"
    ]
    assert (tmp_path / "other" / "jobs" / HOOK / UNPLANNED).is_dir()
