"""Processes a run leaves behind: found by their working directory, which a run's jobs and what they start share.

The one scan of /proc that the tests and the benchmarks (benchmarks/stats_cache.py) share."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

JOB_SERVER_MODULE = "sandflow.run.job_server"  # in a job server's command line (`python -m sandflow.run.job_server`)


class Process(NamedTuple):
    pid: int
    parent: int
    cwd: Path  # resolved
    command: str  # its command line, arguments separated by spaces


def living_processes() -> Iterator[Process]:
    """This user's living processes (not this one, nor a zombie)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if proc.stat().st_uid != os.getuid():
                continue
            cwd = (proc / "cwd").resolve()
            state, parent = (proc / "stat").read_text().rsplit(")", 1)[1].split()[:2]
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # gone meanwhile
            continue
        if state != "Z":
            yield Process(int(proc.name), int(parent), cwd, command)


def processes_in(directory: Path) -> list[str]:
    """'<pid> <command line>' of each living process (not this one, nor a zombie) working in or under directory."""
    root = directory.resolve()
    return [f"{process.pid} {process.command}" for process in living_processes() if process.cwd.is_relative_to(root)]


def job_servers_in(directory: Path) -> list[int]:
    """The pids of the job servers working in directory: those a run there started (run/job_server.py).

    A job's worker is forked from its server, so it has the server's command line and, for a job run in the
    same directory, its cwd too: it is told apart by its parent, a server. Not by pid order, which wraps."""
    root = directory.resolve()
    found = [process for process in living_processes() if process.cwd == root and JOB_SERVER_MODULE in process.command]
    servers = {process.pid for process in found}
    return [process.pid for process in found if process.parent not in servers]


def left_behind(directory: Path, grace_s: float = 10.0) -> list[str]:
    """processes_in(directory) once none are left or grace_s has passed (a run's job server leaves within about a
    second of its Snakemake process)."""
    deadline = time.monotonic() + grace_s
    while (found := processes_in(directory)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return found
