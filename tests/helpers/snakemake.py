"""Run the real snakemake (and hpo_search) on this repository's Snakefile and read what it did."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from helpers.env import snakemake_env
from helpers.paths import REPO, SNAKEFILE


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


class SnakemakeForks:
    """A `python -m helpers.snakemake_forks` server (tests/helpers/snakemake_forks.py) and the runs it forks.

    Started with the environment the test process had when this module was imported: what the server's modules
    read when imported is the same for every run, whatever a test has set since (each run gets its own)."""

    def __init__(self, environment: dict[str, str]) -> None:
        tests = str(REPO / "tests")
        # As a module: a script's own directory goes first on sys.path, where helpers/snakemake.py would be `snakemake`.
        python_path = os.pathsep.join(filter(None, [tests, environment.get("PYTHONPATH")]))
        self.server = subprocess.Popen(
            [sys.executable, "-m", "helpers.snakemake_forks"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,  # unbuffered: select() sees every line the server writes
            cwd=tests,
            env={**environment, "PYTHONPATH": python_path},
        )
        assert self.server.stdin and self.server.stdout

    def line(self, timeout: float | None = None) -> int | None:
        """The server's next line, a number; None when none came within timeout."""
        assert self.server.stdout
        if timeout is not None and not select.select([self.server.stdout], [], [], timeout)[0]:
            return None
        line = self.server.stdout.readline()
        if not line:
            raise RuntimeError(f"the snakemake fork server ended (exit code {self.server.wait()})")
        return int(line)

    def run(
        self, cwd: Path, arguments: list[str], env: dict[str, str], stdout: Path, stderr: Path, timeout: float
    ) -> int:
        """Run `python -m snakemake <arguments>` in cwd with env, its output to the files; its exit code. Past the
        timeout the run is killed and subprocess.TimeoutExpired raised, as subprocess.run does."""
        assert self.server.stdin
        request = {"cwd": str(cwd), "arguments": arguments, "env": env, "stdout": str(stdout), "stderr": str(stderr)}
        message = memoryview(json.dumps(request).encode() + b"\n")
        while message:  # unbuffered: a write may take part of it
            message = message[self.server.stdin.write(message) :]
        pid = self.line()
        code = self.line(timeout)
        if code is None:
            os.kill(pid, signal.SIGKILL)
            self.line()
            raise subprocess.TimeoutExpired(["snakemake", *arguments], timeout)
        return code


_IMPORT_ENVIRONMENT = dict(os.environ)
_forks: list[SnakemakeForks] = []  # this process's server, started at its first run


def forked_snakemake(
    cwd: Path, arguments: list[str], env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess:
    """What ``subprocess.run([python, -m, snakemake, *arguments], capture_output=True, text=True)`` gives, run as a
    fork of this process's server: the same Snakemake, without paying its import each time."""
    if not _forks or _forks[0].server.poll() is not None:
        _forks[:] = [SnakemakeForks(_IMPORT_ENVIRONMENT)]
    with tempfile.TemporaryDirectory(prefix="snakemake-run-") as output:
        stdout, stderr = Path(output, "stdout"), Path(output, "stderr")
        code = _forks[0].run(cwd, arguments, env, stdout, stderr, timeout)
        command = [sys.executable, "-m", "snakemake", *arguments]
        return subprocess.CompletedProcess(command, code, stdout.read_text(), stderr.read_text())


def snakemake(
    cwd: Path, configfile: str | Path, *args: str, check: bool = True, timeout: float = 900
) -> subprocess.CompletedProcess:
    """Run snakemake on our Snakefile from cwd (where the config's relative paths resolve)."""
    command = snakemake_command(configfile, *args)
    if not any(a in ("-n", "--dry-run") for a in args) and "--cores" not in args:
        command += ["--cores", "2"]
    result = forked_snakemake(cwd, command[3:], snakemake_env(), timeout)
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
