"""Processes a run leaves behind: found by their working directory, which a run's jobs and what they start share."""

from __future__ import annotations

import os
import time
from pathlib import Path


def processes_in(directory: Path) -> list[str]:
    """'<pid> <command line>' of each living process (not this one, nor a zombie) working in or under directory."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cwd = (proc / "cwd").resolve()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # gone meanwhile, or not ours
            continue
        if state != "Z" and cwd.is_relative_to(directory.resolve()):
            found.append(f"{proc.name} {command}")
    return found


def left_behind(directory: Path, grace_s: float = 10.0) -> list[str]:
    """processes_in(directory) once none are left or grace_s has passed (a run's job server leaves within about a
    second of its Snakemake process)."""
    deadline = time.monotonic() + grace_s
    while (found := processes_in(directory)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return found
