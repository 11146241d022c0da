"""Shared helpers: run the real snakemake on this repository's Snakefile and read what it did."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandflow.devtools.loopback_chat import ChatServer

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
UPSTREAM_CONFIGS = REPO.parent / "shared" / "upstream-configs" / "configs"
# Nothing may be installed or downloaded behind our back.
OFFLINE_ENV = {
    "UV_OFFLINE": "1",
    "PIP_NO_INDEX": "1",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "WANDB_MODE": "offline",
}


def snakemake_env() -> dict[str, str]:
    return {**os.environ, **OFFLINE_ENV}


def snakemake(cwd: Path, configfile: str | Path, *args: str, check: bool = True,
              timeout: float = 900) -> subprocess.CompletedProcess:
    """Run snakemake on our Snakefile from cwd (where the config's relative paths resolve)."""
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--configfile", str(configfile), *args]
    if not any(a in ("-n", "--dry-run") for a in args) and "--cores" not in args:
        command += ["--cores", "2"]
    result = subprocess.run(command, cwd=cwd, env=snakemake_env(), capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result


def job_counts(result: subprocess.CompletedProcess) -> dict[str, int]:
    """Jobs per rule from Snakemake's 'Job stats' table ({} when there was nothing to do)."""
    text = result.stdout + result.stderr
    match = re.search(r"Job stats:\n.*?\n-+\s+-+\n(.*?)\ntotal\s+\d+", text, re.S)
    if not match:
        assert "Nothing to be done" in text, text[-3000:]
        return {}
    counts = {}
    for line in match.group(1).splitlines():
        name, count = line.split()
        counts[name] = int(count)
    return counts


@contextlib.contextmanager
def chat_server(answer: Callable[[list[dict[str, str]]], str]) -> Iterator[ChatServer]:
    """sandflow.devtools.loopback_chat serving ``answer`` on a free port of 127.0.0.1 while the block runs."""
    server = ChatServer(answer=answer).start()
    try:
        yield server
    finally:
        server.stop()


def copy_from_repo(directory: Path, *paths: str) -> Path:
    """Copy these directories of the repository into ``directory``, at the same relative paths."""
    for path in paths:
        shutil.copytree(REPO / path, directory / path)
    return directory


def finished_counts(result: subprocess.CompletedProcess) -> dict[str, int]:
    """Jobs per rule that finished, from Snakemake's log lines: unlike the 'Job stats' table printed
    at the start, this includes jobs added after a checkpoint."""
    counts: dict[str, int] = {}
    for rule in re.findall(r"^Finished jobid: \d+ \(Rule: (\w+)\)", result.stdout + result.stderr, re.M):
        counts[rule] = counts.get(rule, 0) + 1
    return counts


@pytest.fixture
def upstream_dir(tmp_path: Path) -> Path:
    """A directory holding DJ-Sandbox's configs/ folder, as its configs expect to be run from."""
    if not UPSTREAM_CONFIGS.is_dir():
        pytest.skip(f"DJ-Sandbox's example configs are not at {UPSTREAM_CONFIGS}")
    (tmp_path / "configs").symlink_to(UPSTREAM_CONFIGS)
    return tmp_path
