"""Stopping a real snakemake run in a chosen window, saying where a stop landed, and digesting what a run left.

Windows are forced, not hoped for: the test stops the run (SIGSTOP) at an observable point of the window,
checks from the files where the stop landed, and only then kills it (SIGKILL). Where a stop landed is
read from Snakemake's incomplete markers (``.snakemake/incomplete/<base64 of an output path>``, written
when Snakemake starts a job and removed when it records the job as done) and from the job directories
(``<key>.partial-<host>-<pid>-<random>/`` while a job works, ``<key>/.context.committed.json`` once it committed).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from base64 import urlsafe_b64decode
from collections.abc import Callable
from pathlib import Path

from sandflow.core.layout import COMMIT_FILE, CONTEXT_FILE

from helpers.env import snakemake_env
from helpers.processes import job_servers_in
from helpers.snakemake import snakemake_command
from helpers.tree_files import file_digests

BEFORE_ANY_JOB = "before any job"
DURING_A_JOB = "during a job (.partial-* present)"
COMMITTED_NOT_RECORDED = "between commit and record"
DURING_ASSEMBLY = "during the assembly of context_infos"
STARTING_A_JOB = "a job started, no directory yet"
BETWEEN_JOBS = "between jobs"
WAIT_S = 600  # how long a window may take to come on a loaded machine


def start(run_dir: Path, config: str, **env: str) -> subprocess.Popen:
    """snakemake in its own process group (the group is what a Ctrl-C or a kill of the terminal reaches)."""
    return subprocess.Popen(
        snakemake_command(config, "--cores", "2"),
        cwd=run_dir,
        env={**snakemake_env(), **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def running_outputs(run_dir: Path, work: str) -> list[str]:
    """Outputs under work of the jobs Snakemake has started and not yet recorded as done."""
    markers = run_dir / ".snakemake" / "incomplete"
    names = [urlsafe_b64decode(marker.name).decode() for marker in markers.glob("*")] if markers.is_dir() else []
    return [name for name in names if name.startswith(f"{work}/")]


def partials(run_dir: Path, work: str) -> list[Path]:
    return list((run_dir / work).glob("jobs/*/*.partial-*"))


def landed(run_dir: Path, work: str) -> str:
    """Where a stopped run is, from its files."""
    running = running_outputs(run_dir, work)
    if any(name.endswith("/context_infos.json") for name in running):
        return DURING_ASSEMBLY
    jobs = [run_dir / name for name in running if name.endswith(f"/{CONTEXT_FILE}")]
    if any((job.parent / COMMIT_FILE).exists() for job in jobs):
        return COMMITTED_NOT_RECORDED
    if partials(run_dir, work):
        return DURING_A_JOB
    if not list((run_dir / work).glob("jobs/*/*")):
        return BEFORE_ANY_JOB
    return STARTING_A_JOB if jobs else BETWEEN_JOBS


def wait_for(process: subprocess.Popen, what: str, found: Callable[[], object]) -> object:
    """Poll (1 ms) until found() is truthy; fail if the run ends or WAIT_S pass first."""
    deadline = time.monotonic() + WAIT_S
    while not (result := found()):
        assert process.poll() is None, f"the run ended before {what}"
        assert time.monotonic() < deadline, f"no {what} within {WAIT_S} s"
        time.sleep(0.001)
    return result


def pause(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGSTOP)


def carry_on(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGCONT)


def stop_before_any_job(run_dir: Path, work: str, process: subprocess.Popen) -> None:
    """Once the run holds its work_dir lock (onstart: the plan is made, jobs are about to start).

    A job process needs seconds to start Python before it makes its directory, so this lands first."""
    lock = run_dir / work / ".sandflow" / "lock"
    wait_for(process, "lock", lambda: lock.exists() and lock.read_text().strip())
    pause(process)


def stop_during_a_job(run_dir: Path, work: str, process: subprocess.Popen) -> None:
    """While a job's .partial-* directory exists: seen, then the whole group stopped, then seen again.
    A job that committed in between is let go, and the next job is caught instead."""
    while True:
        wait_for(process, "job directory in the making", lambda: partials(run_dir, work))
        pause(process)
        if partials(run_dir, work):
            return
        carry_on(process)


def stop_between_commit_and_record(run_dir: Path, work: str, process: subprocess.Popen) -> Path:
    """Stop Snakemake itself while a job works (its .partial-* directory exists, so its process runs): the job
    goes on, commits its directory and exits, and Snakemake, stopped, cannot record it. Returns that job's
    directory. A job that Snakemake recorded before it was stopped is let go, and the next job is caught."""
    while True:
        (partial,) = wait_for(process, "job directory in the making", lambda: partials(run_dir, work)[:1])
        os.kill(process.pid, signal.SIGSTOP)  # Snakemake only: its job processes run on
        job = partial.with_name(partial.name.split(".partial-")[0])
        if f"{job.relative_to(run_dir)}/{CONTEXT_FILE}" in running_outputs(run_dir, work):
            wait_for(process, "commit", (job / COMMIT_FILE).exists)
            pause(process)
            return job
        os.kill(process.pid, signal.SIGCONT)


def stop_during_assembly(run_dir: Path, work: str, process: subprocess.Popen) -> None:
    """Once Snakemake has started the context_infos job."""
    found = lambda: [name for name in running_outputs(run_dir, work) if name.endswith("/context_infos.json")]
    wait_for(process, "assembly", found)
    pause(process)


def kill(process: subprocess.Popen) -> None:
    """SIGKILL to the run's process group (a no-op when it is gone)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def final_artifacts(run_dir: Path, work: str) -> dict[str, str]:
    """sha256 of everything a run leaves under its work_dir but its bookkeeping (logs/, .sandflow/ with the
    lock and the file-hash cache, benchmarks/ with each job's timings, stats-cache/ whose segments a killed job
    may have added), link targets for links. A job record's start time and duration are left
    out, and the work_dir's own name (in paths inside the records) is replaced, so runs on different
    work_dirs compare."""

    def comparable(path: Path, data: bytes) -> bytes:
        if path.name in (CONTEXT_FILE, COMMIT_FILE):
            record = json.loads(data)
            del record["started_at"], record["duration_s"]
            data = json.dumps(record, sort_keys=True).encode()
        return data.replace(f"{work}/".encode(), b"<work_dir>/")

    return file_digests(run_dir / work, skip=("logs", ".sandflow", "benchmarks", "stats-cache"), normalise=comparable)


def job_server_of(run_dir: Path) -> int | None:
    """The pid of the job server a run in run_dir started (it runs in the run's directory), if any."""
    return next(iter(job_servers_in(run_dir)), None)


def children_of(pid: int) -> set[int]:
    """The living child processes of pid (Linux: /proc/<pid>/task/*/children)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found |= {int(child) for child in (task / "children").read_text().split()}
        except OSError:
            continue
    return {child for child in found if Path(f"/proc/{child}").exists()}
