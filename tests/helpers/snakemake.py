"""Run the real snakemake (and hpo_search) on this repository's Snakefile and read what it did."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from helpers.env import snakemake_env
from helpers.paths import SNAKEFILE


def snakemake_command(configfile: str | Path, *args: str) -> list[str]:
    """``python -m snakemake`` on this repository's Snakefile with a config file; args follow as given."""
    return [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--configfile", str(configfile), *args]


def hpo_search_command(configfile: str, hpo_config: str, *args: str) -> list[str]:
    """``python -m sandflow.hpo_search`` on a config with a search file (a bayes hpo_config); args follow as given."""
    return [sys.executable, "-m", "sandflow.hpo_search", "--configfile", configfile, "--hpo-config", hpo_config, *args]


def edited_config(run_dir: Path, config: str, name: str, edit: Callable[[Any], object]) -> str:
    """Write ``run_dir/name``: a copy of the config ``run_dir/config`` after ``edit`` changed it; returns ``name``."""
    data = yaml.safe_load((run_dir / config).read_text())
    edit(data)
    (run_dir / name).write_text(yaml.safe_dump(data, sort_keys=False))
    return name


def snakemake(
    cwd: Path, configfile: str | Path, *args: str, check: bool = True, timeout: float = 900
) -> subprocess.CompletedProcess:
    """Run snakemake on our Snakefile from cwd (where the config's relative paths resolve)."""
    command = snakemake_command(configfile, *args)
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


def finished_counts(result: subprocess.CompletedProcess) -> dict[str, int]:
    """Jobs per rule that finished, from Snakemake's log lines: unlike the 'Job stats' table printed
    at the start, this includes jobs added after a checkpoint."""
    counts: dict[str, int] = {}
    for rule in re.findall(r"^Finished jobid: \d+ \(Rule: (\w+)\)", result.stdout + result.stderr, re.M):
        counts[rule] = counts.get(rule, 0) + 1
    return counts


def interruptible() -> None:
    """preexec_fn for a child the test stops with SIGINT: a shell that starts pytest in the background leaves SIGINT
    ignored, the child inherits that, and a Python started so never turns SIGINT into KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
