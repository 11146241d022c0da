"""Faults with real snakemake: SIGKILL in every window of a run, artifacts altered afterwards, two runs at once.

The workflow is a chain of four data-pool jobs on generated data (no Data-Juicer or torch start-up), so
the kill-and-restart rounds stay short. Each round runs the same config on a fresh work_dir and is killed
in a window the test forces (tests/helpers/kill_windows.py): before any job, during a job (its .partial-*
directory present), between a job's commit and Snakemake's record of it, during the assembly of
context_infos.json; then at random moments (fixed seed), each classified by where it landed. The restart
must finish, no job that had finished before the kill may run again (one killed after it committed but
before Snakemake recorded it is restored from its committed record, src/sandflow/run/runner.py), and
everything the resumed run leaves is byte-identical to what one uninterrupted run left. Jobs running in
the job server (src/sandflow/run/job_server.py) are killed too: their worker goes with them.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from sandflow.run.integrity import altered_artifact

from helpers.kill_windows import (
    BEFORE_ANY_JOB,
    COMMITTED_NOT_RECORDED,
    DURING_A_JOB,
    DURING_ASSEMBLY,
    carry_on,
    children_of,
    final_artifacts,
    job_server_of,
    kill,
    landed,
    partials,
    pause,
    start,
    stop_before_any_job,
    stop_between_commit_and_record,
    stop_during_a_job,
    stop_during_assembly,
)
from helpers.snakemake import job_counts, snakemake

pytestmark = pytest.mark.slow

# Each round pays two Snakemake start-ups (10-20 s each on our loaded 2-core machine). The forced windows
# always run; SANDFLOW_FAULT_KILLS sets how many random moments follow them.
KILLS = int(os.environ.get("SANDFLOW_FAULT_KILLS", "2"))
REFERENCE = "ref"  # the uninterrupted run's work_dir
FORCED = {
    BEFORE_ANY_JOB: stop_before_any_job,
    DURING_A_JOB: stop_during_a_job,
    COMMITTED_NOT_RECORDED: stop_between_commit_and_record,
    DURING_ASSEMBLY: stop_during_assembly,
}


def write_config(run_dir: Path, seed: int, work: str = REFERENCE) -> str:
    pools = {"type": "data_pool_downsampling", "export_path": f"./{work}/pools/"}
    config = {
        "work_dir": f"./{work}",
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
                    "export_path": f"./{work}/duplicated/",
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
                    "export_path": f"./{work}/resampled/",
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
                    "export_path": f"./{work}/merged/",
                },
            },
        ],
    }
    name = f"{work}_seed_{seed}.yaml"
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


@pytest.fixture(scope="module")
def landings() -> dict:
    """What the kill rounds found, for the tests after them."""
    return {}


def finished_jobs(run_dir: Path, work: str) -> dict[Path, int]:
    """Finished job directory -> inode of its context.json (a rerun replaces the directory).

    A job being committed has its record in <key>.partial-<pid>/ until that directory is renamed: such
    directories are not finished jobs, and may be gone by the time they are looked at."""
    finished = {}
    for record in (run_dir / work).glob("jobs/*/*/context.json"):
        if ".partial-" not in record.parent.name:
            try:
                finished[record.parent] = record.stat().st_ino
            except FileNotFoundError:
                continue  # replaced while we looked (a forced rerun)
    return finished


def restored_jobs(run_dir: Path, work: str) -> set[Path]:
    """Job directories whose log says their record was restored rather than recomputed."""
    logs = (run_dir / work / "logs").glob("*/*.log")
    return {
        run_dir / work / "jobs" / log.parent.name / log.stem for log in logs if "record is restored" in log.read_text()
    }


def check_restart(run_dir: Path, config: str, work: str, where: str) -> set[Path]:
    """Restart after a kill: nothing finished is recomputed, nothing is corrupt. The jobs restored."""
    before, restored_before = finished_jobs(run_dir, work), restored_jobs(run_dir, work)
    counts = job_counts(snakemake(run_dir, config))
    after, restored = finished_jobs(run_dir, work), restored_jobs(run_dir, work) - restored_before
    # No finished job was recomputed (a restored record is the same file); Snakemake ran the new ones
    # and those restored after a kill between their commit and Snakemake's record of it.
    assert all(after[job] == inode for job, inode in before.items()), where
    assert restored <= set(before), where
    assert counts.get("data_pool_manipulation", 0) == len(set(after) - set(before)) + len(restored), (where, counts)
    assert len(after) == 4, where
    assert not [job for job in after if altered_artifact(job)], where
    assert not list((run_dir / work).glob("jobs/*/*.partial-*")), where
    assert json.loads((run_dir / work / "context_infos.json").read_text())[0]["pipeline_infos"], where
    return restored


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


def test_kills_in_every_window_resume_to_the_uninterrupted_runs_bytes(run_dir: Path, landings: dict):
    reference = final_artifacts(run_dir, REFERENCE)
    assert len([name for name in reference if name.startswith("jobs/")]) > 4 * 3  # artifacts, manifests, records
    cold_seconds = float(run_dir.joinpath("cold_seconds").read_text())
    moments = random.Random(2024)
    rounds = [(window, stop) for window, stop in FORCED.items()]
    for _ in range(KILLS):
        moment = moments.uniform(0.4, 1) * cold_seconds  # Snakemake's start-up takes the first third or so
        rounds.append(
            (f"at {moment:.1f} s", lambda _r, _w, process, moment=moment: (time.sleep(moment), pause(process)))
        )
    where_each_landed = []
    for number, (aim, stop) in enumerate(rounds):
        work = f"round_{number:02d}"
        config = write_config(run_dir, 0, work)
        process = start(run_dir, config)
        try:
            caught = stop(run_dir, work, process)
            where = landed(run_dir, work) if process.poll() is None else "after the run ended"
        finally:
            kill(process)
        where_each_landed.append(f"{work} ({aim}): {where}")
        restored = check_restart(run_dir, config, work, where_each_landed[-1])
        assert final_artifacts(run_dir, work) == reference, where_each_landed[-1]
        if aim in FORCED:
            assert where == aim, where_each_landed
        if aim == COMMITTED_NOT_RECORDED:
            assert restored == {caught}, where_each_landed[-1]
            landings["committed"] = (config, caught)
    print("\n".join(where_each_landed))
    covered = {line.rsplit(": ", 1)[1] for line in where_each_landed}
    assert len(covered & set(FORCED)) >= 3, where_each_landed


def test_a_forced_rerun_of_a_restored_job_recomputes_it(run_dir: Path, landings: dict):
    """Snakemake's --force turns the restore off: a new directory, and a log without the restore line."""
    config, job = landings["committed"]
    work = job.relative_to(run_dir).parts[0]
    inode = finished_jobs(run_dir, work)[job]
    target = str((job / "context.json").relative_to(run_dir))
    assert job_counts(snakemake(run_dir, config, "--force", target)) == {"data_pool_manipulation": 1}
    assert finished_jobs(run_dir, work)[job] != inode and job not in restored_jobs(run_dir, work)


def test_an_altered_artifact_is_refused_with_its_name(run_dir: Path):
    config = write_config(run_dir, 0)  # the reference run, finished
    job_dir = (run_dir / REFERENCE / "pipelines" / "anonymous" / "iter_1" / "merge").resolve()
    (artifact,) = (job_dir / "extra_configs.export_path").glob("*.jsonl")
    artifact.write_text(artifact.read_text().replace("sample", "SAMPLE", 1))
    result = snakemake(run_dir, config, check=False)
    assert result.returncode == 2
    # One line, with paths as the config gives them (relative to the run directory).
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("sandflow: ")]
    assert f"{artifact.relative_to(run_dir)} was changed after its job finished" in line
    context_infos = Path(REFERENCE) / "context_infos.json"
    assert line.endswith(f"delete {job_dir.relative_to(run_dir)} and {context_infos} to rebuild it")
    assert "Traceback" not in result.stderr
    # Deleting both, as the message says, rebuilds exactly that job (it is the last one).
    subprocess.run(["rm", "-r", str(job_dir), str(run_dir / context_infos)], check=True)
    assert job_counts(snakemake(run_dir, config)) == {"data_pool_manipulation": 1, "context_infos": 1, "all": 1}
    assert altered_artifact(job_dir) is None


def test_a_second_run_on_the_same_work_dir_is_refused(run_dir: Path):
    config = write_config(run_dir, 99)
    first = start(run_dir, config)
    stop_during_a_job(run_dir, REFERENCE, first)  # paused mid-run, lock held: the second run cannot arrive too late
    try:
        second = snakemake(run_dir, config, check=False)
    finally:
        carry_on(first)
    assert second.returncode == 2
    assert f"another sandflow run (pid {first.pid}) is using work_dir" in second.stderr
    assert first.wait(timeout=600) == 0
    assert job_counts(snakemake(run_dir, config)) == {}


def write_training_config(run_dir: Path, work: str) -> str:
    """One TrainModelHook job (a new tiny GPT-2): it runs in the job server, which imports torch once."""
    config = {
        "work_dir": f"./{work}",
        "execution_job_configs": [
            {
                "hook": "TrainModelHook",
                "meta_name": "train",
                "output": "checkpoint",
                "extra_configs": {
                    "type": "huggingface",
                    "model_config": {
                        "architecture": "gpt2",
                        "n_layer": 2,
                        "n_embd": 32,
                        "n_head": 2,
                        "n_positions": 64,
                    },
                    "dataset_path": "./data.jsonl",
                    "max_steps": 150,  # several seconds of training: the kill lands in it
                    "per_device_train_batch_size": 8,
                    "learning_rate": 0.003,
                    "seq_len": 32,
                    "seed": 42,
                    "export_path": f"./{work}/model/",
                },
            }
        ],
    }
    name = f"{work}.yaml"
    (run_dir / name).write_text(yaml.safe_dump(config, sort_keys=False))
    return name


def test_a_job_killed_in_the_kept_job_server_goes_with_its_run_and_resumes_to_the_same_model(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("SANDFLOW_JOB_SERVER", "0")  # the reference trains in a process of its own
    snakemake(run_dir, write_training_config(run_dir, "train_ref"))
    monkeypatch.setenv("SANDFLOW_JOB_SERVER", "keep")  # the persistent worker, which outlives a killed run
    monkeypatch.setenv("SANDFLOW_JOB_SERVER_IDLE", "300")  # in case the test fails before stopping it
    config = write_training_config(run_dir, "train_killed")
    process = start(run_dir, config)
    server = None
    try:
        stop_during_a_job(run_dir, "train_killed", process)
        server = job_server_of(run_dir)
        assert server is not None
        workers = children_of(server)
        assert workers, "the training job is not running in the job server"
        kill(process)
        deadline = time.monotonic() + 60
        while children_of(server) & workers:  # the worker ends itself when its job process is gone
            assert time.monotonic() < deadline, "the job's worker outlived its killed run"
            time.sleep(0.1)
        assert partials(run_dir, "train_killed") and not list((run_dir / "train_killed").glob("jobs/*/*/context.json"))
        # The resumed run uses the same server (kept, not killed with the run) and trains the model again.
        counts = job_counts(snakemake(run_dir, config))
        assert counts["train_model"] == 1 and job_server_of(run_dir) == server
        assert not partials(run_dir, "train_killed")
        assert final_artifacts(run_dir, "train_killed") == final_artifacts(run_dir, "train_ref")
    finally:
        kill(process)
        if server is not None:
            os.kill(server, signal.SIGTERM)  # the kept server this test started
