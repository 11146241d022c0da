"""The commit protocol (src/sandflow/run/commit.py): one owner per key, a partial directory that only its owner
writes and commits, durable commits, records linked or (without hard links) copied, and the checks that refuse
what a crash or a neighbour left (sizes, symlinks, a manifest of the wrong shape).

The end-to-end case kills only Snakemake's main process (a dropped ssh session, the OOM killer) while a job
writes its artifacts, so the job runs on as an orphan, and restarts the run at once. The orphan is held
(SIGSTOP) until the restart's job has reached the key, then let go: the window in which the two meet is
forced, not hoped for. It is stopped only after Snakemake is reaped, and the run has no job server: a stopped process in a
process group orphaned by the kill is sent SIGHUP when another process of the group exits.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from sandflow.config.load import load_config_file
from sandflow.core.atomic import write_text_atomic
from sandflow.core.jobio import JobFailed
from sandflow.core.layout import COMMIT_FILE, CONTEXT_FILE, MANIFEST_FILE
from sandflow.plan.planner import plan_config
from sandflow.run.commit import commit, key_lock_path, new_partial
from sandflow.run.integrity import altered_artifact, first_altered
from sandflow.run.runner import run_job
from sandflow.run.specs import job_spec

from helpers.env import snakemake_env
from helpers.kill_windows import WAIT_S, final_artifacts, kill, partials, start, wait_for
from helpers.snakemake import snakemake, snakemake_command

ROWS = "".join(json.dumps({"text": f"row {i}"}) + "\n" for i in range(6))


def merge_spec(directory: Path) -> dict:
    """A DataPoolManipulationHook merge job planned in directory (the current directory)."""
    (directory / "a.jsonl").write_text(ROWS)
    merge = {"type": "data_pool_merging", "dataset_path": ["a.jsonl"], "export_path": "merged/"}
    config = {
        "work_dir": "./out",
        "execution_job_configs": [{"hook": "DataPoolManipulationHook", "extra_configs": merge}],
    }
    (directory / "sandbox.yaml").write_text(yaml.safe_dump(config))
    (job,) = plan_config(load_config_file("sandbox.yaml")).jobs
    return json.loads(json.dumps(job_spec(job)))


@pytest.fixture
def spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.chdir(tmp_path)
    return merge_spec(tmp_path)


@pytest.fixture
def job_dir(spec: dict) -> Path:
    """The merge job, finished."""
    run_job(spec, "job.log")
    final = Path(spec["job_dir"]).resolve()
    assert altered_artifact(final) is None
    return final


def an_artifact(job_dir: Path) -> Path:
    (name,) = json.loads((job_dir / MANIFEST_FILE).read_text())
    return job_dir / name


def test_partial_names_carry_host_pid_and_a_random_part(tmp_path: Path):
    job = tmp_path / "jobs" / "Hook" / "0123abcd"
    with new_partial(job) as first, new_partial(job) as second:
        host = socket.gethostname().replace("-", "_")
        for partial in (first, second):
            assert partial.path.name.startswith(f"0123abcd.partial-{host}-{os.getpid()}-")
        assert first.path != second.path


def test_a_partial_removed_and_made_again_while_the_job_ran_is_not_committed(tmp_path: Path):
    job = tmp_path / "jobs" / "Hook" / "0123abcd"
    with new_partial(job) as partial:
        (partial.path / "half.jsonl").write_text(ROWS)
        shutil.rmtree(partial.path)  # what an older sandflow's sweep did to a live partial
        partial.path.mkdir()  # and what a writer's mkdir(parents=True) did next
        (partial.path / MANIFEST_FILE).write_text("{}")
        with pytest.raises(JobFailed, match="was removed or replaced while the job ran; nothing was committed"):
            commit(partial, job)
    assert not job.exists()


def hold_key_lock(lock: Path) -> subprocess.Popen:
    """Another process owning the key: it takes the lock as a job does, names itself, and waits for a line."""
    code = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.write(fd, f'host elsewhere pid {os.getpid()}'.encode())\n"
        "print('holding', flush=True)\n"
        "sys.stdin.readline()\n"
    )
    lock.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", code, str(lock)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert holder.stdout.readline() == b"holding\n"
    return holder


def test_a_job_waits_for_the_live_owner_of_its_key_and_sweeps_its_partial_only_after(spec: dict):
    job = Path(spec["job_dir"])
    holder = hold_key_lock(key_lock_path(job))
    live = job.with_name(f"{job.name}.partial-elsewhere-{holder.pid}-0badf00d")
    (live / "extra_configs.export_path").mkdir(parents=True)
    (live / "extra_configs.export_path" / "half.jsonl").write_text(ROWS)
    failures: list[BaseException] = []
    waiter = threading.Thread(target=lambda: run_job(spec, "job.log") if not failures else None)
    waiter.run = lambda: _capture(failures, lambda: run_job(spec, "job.log"))  # type: ignore[method-assign]
    waiter.start()
    time.sleep(1.5)
    # The owner lives: its partial is untouched and nothing is committed.
    assert waiter.is_alive() and live.is_dir() and not job.exists()
    holder.communicate(b"done\n", timeout=60)  # it leaves without committing
    waiter.join(timeout=60)
    assert not waiter.is_alive() and not failures
    assert not live.exists() and altered_artifact(job) is None
    assert f"waited for host elsewhere pid {holder.pid}, which held its key" in Path("job.log").read_text()


def _capture(failures: list[BaseException], call) -> None:
    try:
        call()
    except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
        failures.append(exc)


@pytest.mark.parametrize("code", [errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV])
def test_records_are_copied_where_the_file_system_has_no_hard_links(
    spec: dict, code: int, monkeypatch: pytest.MonkeyPatch
):
    def no_links(source, target, *args, **kwargs):
        raise OSError(code, os.strerror(code), str(source), None, str(target))

    monkeypatch.setattr(os, "link", no_links)  # as link() on FUSE or SMB answers
    run_job(spec, "job.log")
    job = Path(spec["job_dir"])
    record, twin = (job / CONTEXT_FILE).stat(), (job / COMMIT_FILE).stat()
    assert record.st_ino != twin.st_ino and record.st_mtime_ns == twin.st_mtime_ns
    assert (job / CONTEXT_FILE).read_bytes() == (job / COMMIT_FILE).read_bytes()
    assert altered_artifact(job) is None
    # A run killed before Snakemake recorded the job: its record is copied back, nothing recomputed.
    artifact = an_artifact(job).stat().st_ino
    (job / CONTEXT_FILE).unlink()
    run_job(spec, "job.log")
    assert (job / CONTEXT_FILE).stat().st_mtime_ns == twin.st_mtime_ns and an_artifact(job).stat().st_ino == artifact
    assert "its record is restored, nothing recomputed" in Path("job.log").read_text()


def test_a_commit_flushes_every_artifact_the_partial_and_then_the_parent(spec: dict, monkeypatch: pytest.MonkeyPatch):
    flushed: list[str] = []
    fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: flushed.append(os.readlink(f"/proc/self/fd/{fd}")) or fsync(fd))
    run_job(spec, "job.log")
    job = Path(spec["job_dir"]).resolve()
    (partial,) = {path for path in flushed if Path(path).parent == job.parent and ".partial-" in path}
    names = json.loads((job / MANIFEST_FILE).read_text())
    for name in [*names, "extra_configs.export_path"]:
        assert f"{partial}/{name}" in flushed, name
    for record in (MANIFEST_FILE, CONTEXT_FILE):  # written under a temporary name, flushed, renamed
        assert [path for path in flushed if path.startswith(f"{partial}/.{record}.")], record
    assert flushed.index(str(job.parent)) > flushed.index(partial)  # the rename, made durable after it


def test_a_file_a_crash_left_empty_under_old_timestamps_is_found_by_its_size(job_dir: Path):
    artifact = an_artifact(job_dir)
    size = artifact.stat().st_size
    manifest = json.loads((job_dir / MANIFEST_FILE).read_text())
    assert manifest[str(artifact.relative_to(job_dir))]["size"] == size
    artifact.write_bytes(b"")
    later = time.time_ns() + 60 * 10**9  # the record looks newer than the file, as after a node crash
    os.utime(job_dir / CONTEXT_FILE, ns=(later, later))
    assert altered_artifact(job_dir) == (
        f"{artifact} was changed after its job finished (it has 0 bytes; {job_dir / MANIFEST_FILE} says {size})"
    )
    # A manifest of before sizes were recorded ({name: sha256}) is still read, and checked by its sha256.
    (job_dir / MANIFEST_FILE).write_text(json.dumps({name: entry["sha256"] for name, entry in manifest.items()}))
    os.utime(job_dir / CONTEXT_FILE, ns=(0, 0))
    assert "its sha256 differs" in altered_artifact(job_dir)


def test_an_artifact_swapped_for_a_symlink_to_the_same_bytes_is_refused(job_dir: Path, tmp_path: Path):
    artifact = an_artifact(job_dir)
    copy = tmp_path / "elsewhere.jsonl"
    shutil.copy2(artifact, copy)
    artifact.unlink()
    artifact.symlink_to(copy)
    assert altered_artifact(job_dir) == (
        f"{artifact} is a symlink where its job left a file (sandflow does not follow it)"
    )


def test_an_artifact_directory_swapped_for_a_symlink_is_refused(job_dir: Path, tmp_path: Path):
    slot = an_artifact(job_dir).parent
    moved = tmp_path / "elsewhere"
    shutil.copytree(slot, moved, copy_function=shutil.copy2)
    shutil.rmtree(slot)
    slot.symlink_to(moved, target_is_directory=True)
    assert (
        altered_artifact(job_dir) == f"{slot} is a symlink where its job left a directory (sandflow does not follow it)"
    )


@pytest.mark.parametrize("text", ["[1, 2]", '"sha"', "null", '{"x.jsonl": 3}'])
def test_a_manifest_that_is_not_an_object_of_artifacts_is_one_line(job_dir: Path, text: str):
    (job_dir / MANIFEST_FILE).write_text(text)
    problem = first_altered([job_dir], "out/context_infos.json")
    assert problem.startswith(f"{job_dir / MANIFEST_FILE} ")
    assert problem.endswith(f"; delete {job_dir} and out/context_infos.json to rebuild it") and "\n" not in problem


def test_write_text_atomic_never_writes_through_a_planted_name(tmp_path: Path):
    victim = tmp_path / "victim.txt"
    victim.write_text("someone's work")
    target = tmp_path / "record.json"
    planted = tmp_path / f".{target.name}.tmp-{os.getpid()}"  # the temporary name sandflow used to use
    planted.symlink_to(victim)
    write_text_atomic(target, "{}\n")
    assert target.read_text() == "{}\n" and not target.is_symlink()
    assert victim.read_text() == "someone's work" and planted.is_symlink()
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([victim.name, target.name, planted.name])


def test_a_sole_writer_removes_its_killed_writers_temp_files_and_no_other(tmp_path: Path):
    target, other = tmp_path / "decision.json", tmp_path / "outcome.json"
    killed = [tmp_path / f".{target.name}.k3x_9q2a.tmp", tmp_path / f".{other.name}.k3x_9q2a.tmp"]
    for path in killed:
        path.write_text("a killed writer's")
    write_text_atomic(target, "{}\n")  # another process may be writing this name: nothing is removed
    assert all(path.exists() for path in killed)
    write_text_atomic(target, "[]\n", sole_writer=True)  # a rule's output, under the run's lock
    assert target.read_text() == "[]\n"
    assert [path.exists() for path in killed] == [False, True]  # another name's temp is not this writer's


def write_chain(run_dir: Path, work: str) -> str:
    """Two pool jobs in a chain on run_dir/data.jsonl: downsample, then duplicate."""
    config = {
        "work_dir": f"./{work}",
        "execution_job_configs": [
            {
                "hook": "DataPoolManipulationHook",
                "meta_name": "sample",
                "output": "sampled",
                "extra_configs": {
                    "type": "data_pool_downsampling",
                    "dataset_path": "./data.jsonl",
                    "target_num_samples": 150000,
                    "shuffle_seed": 3,
                    "export_path": f"./{work}/pools/",
                },
            },
            {
                "hook": "DataPoolManipulationHook",
                "meta_name": "duplicate",
                "input": {"extra_configs.dataset_path": "-1.sampled"},
                "extra_configs": {
                    "type": "data_pool_duplication",
                    "dataset_path": "<sampled>",
                    "duplicating_times": [2],
                    "export_path": f"./{work}/duplicated/",
                },
            },
        ],
    }
    name = f"{work}.yaml"
    (run_dir / name).write_text(yaml.safe_dump(config, sort_keys=False))
    return name


def writing_partial(run_dir: Path, work: str) -> Path | None:
    """A partial directory that already holds a file of its job's artifacts."""
    for partial in partials(run_dir, work):
        for _, _, files in os.walk(partial):
            if files:
                return partial
    return None


def owner_pid(partial: Path) -> int:
    """The pid in a partial's name: <key>.partial-<host>-<pid>-<random> (before: <key>.partial-<pid>)."""
    parts = partial.name.split(".partial-", 1)[1].split("-")
    return int(parts[-2] if len(parts) >= 3 else parts[0])


def process_state(pid: int) -> str | None:
    """R, S, T (stopped), Z...; None once the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def poll_until(what: str, found) -> None:
    deadline = time.monotonic() + WAIT_S
    while not found():
        assert time.monotonic() < deadline, f"no {what} within {WAIT_S} s"
        time.sleep(0.01)


@pytest.mark.slow
def test_an_orphaned_job_is_waited_for_and_its_run_resumes_to_the_uninterrupted_runs_bytes(tmp_path: Path):
    draw = random.Random(5)
    with (tmp_path / "data.jsonl").open("w") as handle:  # big enough that writing the first pool takes a while
        for number in range(300000):
            handle.write(json.dumps({"text": f"sample {number} " + "x" * draw.randrange(20, 120)}) + "\n")
    snakemake(tmp_path, write_chain(tmp_path, "ref"))
    work = "orphaned"
    config = write_chain(tmp_path, work)
    first = start(tmp_path, config, SANDFLOW_JOB_SERVER="0")  # a server's exit would SIGHUP the stopped orphan
    try:
        partial = wait_for(first, "a job writing its artifacts", lambda: writing_partial(tmp_path, work))
        orphan = owner_pid(partial)
        os.kill(first.pid, signal.SIGKILL)  # Snakemake's main process only: its job runs on
        first.wait()
    except BaseException:
        kill(first)  # its whole group, only when the test fails before its kill
        raise
    os.kill(orphan, signal.SIGSTOP)  # held until the restart has reached the key
    poll_until("stop of the orphan", lambda: process_state(orphan) in ("T", None))
    job = partial.with_name(partial.name.split(".partial-")[0])
    hit = {"orphan state at restart": process_state(orphan), "partial present at restart": partial.is_dir()}
    assert hit == {"orphan state at restart": "T", "partial present at restart": True}, hit
    errors = tmp_path / "restart.err"
    with errors.open("w") as stderr:
        restart = subprocess.Popen(
            snakemake_command(config, "--cores", "2"),
            cwd=tmp_path,
            env=snakemake_env(),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    try:
        # The restart's job waits for the orphan (or, as before this protocol, runs the key itself).
        waiting = f"waiting for host {socket.gethostname()} pid {orphan}, which is running it"
        poll_until("restart at the key", lambda: waiting in errors.read_text() or (job / COMMIT_FILE).exists())
        hit["restart waited for the orphan"] = waiting in errors.read_text()
        os.kill(orphan, signal.SIGCONT)
        poll_until("end of the orphan", lambda: process_state(orphan) in (None, "Z"))
        hit["restart code"] = restart.wait(timeout=WAIT_S)
    finally:
        kill(restart)
    log = (tmp_path / work / "logs" / job.parent.name / f"{job.name}.log").read_text()
    hit["restart accepted the orphan's commit"] = f"committed by host {socket.gethostname()} pid {orphan}" in log
    print(hit)
    assert hit["restart waited for the orphan"] and hit["restart code"] == 0, (hit, errors.read_text()[-3000:])
    assert hit["restart accepted the orphan's commit"], log
    assert not partials(tmp_path, work)
    assert final_artifacts(tmp_path, work) == final_artifacts(tmp_path, "ref")
