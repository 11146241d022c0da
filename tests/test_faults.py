"""Faults with real snakemake: SIGKILL at random moments, artifacts altered afterwards, two runs at once.

The workflow is a chain of data-pool jobs on generated data (no Data-Juicer or torch start-up), so
the kill-and-restart rounds stay short. Each round changes the first job's shuffle seed, so every
job has work to do; a random moment of the cold run (fixed seed) kills the whole process group.
The restart must finish, every finished job directory must match its manifest, and no job that had
finished before the kill may run again: a job killed after it committed but before Snakemake recorded
it is restored from its committed record (src/sandflow/run/runner.py), not recomputed.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from base64 import urlsafe_b64encode
from pathlib import Path

import pytest
import yaml
from conftest import SNAKEFILE, job_counts, snakemake, snakemake_env

from sandflow.run.integrity import altered_artifact

pytestmark = pytest.mark.slow

# Each round pays two Snakemake start-ups: twenty rounds took 3 min on our 2-core machine (18 min under
# heavy load). SANDFLOW_FAULT_KILLS sets another number for a quick local loop.
KILLS = int(os.environ.get("SANDFLOW_FAULT_KILLS", "20"))
WORK = Path("out")


def write_config(run_dir: Path, seed: int) -> str:
    pools = {"type": "data_pool_downsampling", "export_path": "./out/pools/"}
    config = {
        "work_dir": "./out",
        "execution_job_configs": [
            {
                "hook": "DataPoolManipulationHook",
                "meta_name": "sample",
                "output": "sampled",
                "extra_configs": {
                    **pools,
                    "dataset_path": "./data.jsonl",
                    "target_num_samples": 1500,
                    "shuffle_seed": seed,
                },
            },
            {
                "hook": "DataPoolManipulationHook",
                "meta_name": "duplicate",
                "output": "duplicated",
                "input": {"extra_configs.dataset_path": "-1.sampled"},
                "extra_configs": {
                    "type": "data_pool_duplication",
                    "dataset_path": "<sampled>",
                    "duplicating_times": [2, 3],
                    "export_path": "./out/duplicated/",
                },
            },
            {
                "hook": "DataPoolManipulationHook",
                "meta_name": "resample",
                "output": "resampled",
                "input": {"extra_configs.dataset_path": "-1.duplicated"},
                "extra_configs": {
                    **pools,
                    "dataset_path": "<duplicated>",
                    "target_num_samples": 1000,
                    "export_path": "./out/resampled/",
                },
            },
            {
                "hook": "DataPoolManipulationHook",
                "meta_name": "merge",
                "output": "merged",
                "input": {"extra_configs.dataset_path": "-1.resampled"},
                "extra_configs": {
                    "type": "data_pool_merging",
                    "dataset_path": "<resampled>",
                    "export_path": "./out/merged/",
                },
            },
        ],
    }
    name = f"seed_{seed}.yaml"
    (run_dir / name).write_text(yaml.safe_dump(config, sort_keys=False))
    return name


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("faults")
    rows = random.Random(7)
    with (directory / "data.jsonl").open("w") as handle:
        for number in range(3000):
            handle.write(json.dumps({"text": f"sample {number} " + "x" * rows.randrange(20, 200)}) + "\n")
    return directory


def finished_jobs(run_dir: Path) -> dict[Path, int]:
    """Finished job directory -> inode of its context.json (a rerun replaces the directory).

    A job being committed has its record in <key>.partial-<pid>/ until that directory is renamed: such
    directories are not finished jobs, and may be gone by the time they are looked at."""
    finished = {}
    for record in (run_dir / WORK).glob("jobs/*/*/context.json"):
        if ".partial-" not in record.parent.name:
            try:
                finished[record.parent] = record.stat().st_ino
            except FileNotFoundError:
                continue  # replaced while we looked (a forced rerun)
    return finished


def restored_jobs(run_dir: Path) -> set[Path]:
    """Job directories whose log says their record was restored rather than recomputed."""
    logs = (run_dir / WORK / "logs").glob("*/*.log")
    return {
        run_dir / WORK / "jobs" / log.parent.name / log.stem for log in logs if "record is restored" in log.read_text()
    }


def start(run_dir: Path, config: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--configfile", config, "--cores", "2"]
    return subprocess.Popen(
        command,
        cwd=run_dir,
        env=snakemake_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def test_a_cold_run_and_a_noop_rerun(run_dir: Path):
    started = time.monotonic()
    assert job_counts(snakemake(run_dir, write_config(run_dir, 0))) == {
        "data_pool_manipulation": 4,
        "publication_record": 1,
        "context_infos": 1,
        "all": 1,
    }
    run_dir.joinpath("cold_seconds").write_text(str(time.monotonic() - started))
    assert job_counts(snakemake(run_dir, write_config(run_dir, 0))) == {}


def test_sigkill_at_random_moments_loses_nothing(run_dir: Path):
    cold_seconds = float(run_dir.joinpath("cold_seconds").read_text())
    moments = random.Random(2024)
    for round_number in range(1, KILLS + 1):
        config = write_config(run_dir, round_number)
        moment = moments.uniform(0, cold_seconds)
        process = start(run_dir, config)
        time.sleep(moment)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        where = f"round {round_number}, killed after {moment:.1f} s"
        check_restart(run_dir, config, where)
        assert len(finished_jobs(run_dir)) == 4 * (round_number + 1), where  # four new jobs a round


def check_restart(run_dir: Path, config: str, where: str) -> set[Path]:
    """Restart after a kill: nothing finished is recomputed, nothing is corrupt. The jobs restored."""
    before, restored_before = finished_jobs(run_dir), restored_jobs(run_dir)
    counts = job_counts(snakemake(run_dir, config))
    after, restored = finished_jobs(run_dir), restored_jobs(run_dir) - restored_before
    # No finished job was recomputed (a restored record is the same file); Snakemake ran the new ones
    # and those restored after a kill between their commit and Snakemake's record of it.
    assert all(after[job] == inode for job, inode in before.items()), where
    assert restored <= set(before), where
    assert counts.get("data_pool_manipulation", 0) == len(set(after) - set(before)) + len(restored), (where, counts)
    assert not [job for job in after if altered_artifact(job)], where
    assert not list((run_dir / WORK).glob("jobs/*/*.partial-*")), where
    assert json.loads((run_dir / WORK / "context_infos.json").read_text())[0]["pipeline_infos"], where
    return restored


def test_a_kill_between_commit_and_snakemakes_record_recomputes_nothing(run_dir: Path):
    """The narrow window a random kill rarely hits, forced: the job directory is committed but
    Snakemake's incomplete marker for it is still there, so the next run must run the job."""
    config = write_config(run_dir, 1000)
    known = set(finished_jobs(run_dir))
    process = start(run_dir, config)
    caught = None
    try:
        while caught is None and process.poll() is None:
            for job in set(finished_jobs(run_dir)) - known:
                os.killpg(process.pid, signal.SIGSTOP)
                # Snakemake's file-based record of a running job, named by the output path it was given.
                output = (WORK / job.relative_to(run_dir / WORK) / "context.json").as_posix()
                marker = run_dir / ".snakemake" / "incomplete" / urlsafe_b64encode(output.encode()).decode()
                if marker.exists():
                    caught = job
                    break
                known.add(job)  # Snakemake was quicker: try the next job
                os.killpg(process.pid, signal.SIGCONT)
            time.sleep(0.005)
    finally:  # also when the test fails: a run left behind would hold the work_dir lock for the next test
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert caught is not None, "every job was recorded before it could be stopped; rerun the test"
    assert check_restart(run_dir, config, "killed between commit and record") == {caught}
    # Forcing the job recomputes it: a new directory, and a log without the restore line.
    inode = finished_jobs(run_dir)[caught]
    target = str((caught / "context.json").relative_to(run_dir))
    assert job_counts(snakemake(run_dir, config, "--force", target)) == {"data_pool_manipulation": 1}
    assert finished_jobs(run_dir)[caught] != inode and caught not in restored_jobs(run_dir)


def test_an_altered_artifact_is_refused_with_its_name(run_dir: Path):
    config = write_config(run_dir, 0)
    assert job_counts(snakemake(run_dir, config)) == {"context_infos": 1, "all": 1}  # back to seed 0's jobs
    job_dir = (run_dir / WORK / "pipelines" / "anonymous" / "iter_1" / "merge").resolve()
    (artifact,) = (job_dir / "extra_configs.export_path").glob("*.jsonl")
    artifact.write_text(artifact.read_text().replace("sample", "SAMPLE", 1))
    result = snakemake(run_dir, config, check=False)
    assert result.returncode == 2
    # One line, with paths as the config gives them (relative to the run directory).
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("sandflow: ")]
    assert f"{artifact.relative_to(run_dir)} was changed after its job finished" in line
    context_infos = WORK / "context_infos.json"
    assert line.endswith(f"delete {job_dir.relative_to(run_dir)} and {context_infos} to rebuild it")
    assert "Traceback" not in result.stderr
    # Deleting both, as the message says, rebuilds exactly that job (it is the last one).
    subprocess.run(["rm", "-r", str(job_dir), str(run_dir / context_infos)], check=True)
    assert job_counts(snakemake(run_dir, config)) == {"data_pool_manipulation": 1, "context_infos": 1, "all": 1}
    assert altered_artifact(job_dir) is None


def test_a_second_run_on_the_same_work_dir_is_refused(run_dir: Path):
    config = write_config(run_dir, 99)
    first = start(run_dir, config)
    lock = run_dir / WORK / ".sandflow" / "lock"
    deadline = time.monotonic() + 120
    while not (lock.exists() and lock.read_text().strip() and list((run_dir / WORK).glob("jobs/*/*.partial-*"))):
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGSTOP)  # paused mid-run, lock held: the second run cannot arrive too late
    try:
        second = snakemake(run_dir, config, check=False)
    finally:
        os.killpg(first.pid, signal.SIGCONT)
    assert second.returncode == 2
    assert f"another sandflow run (pid {first.pid}) is using work_dir" in second.stderr
    assert first.wait(timeout=600) == 0
    assert job_counts(snakemake(run_dir, config)) == {}
