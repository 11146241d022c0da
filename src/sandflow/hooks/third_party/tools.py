"""What every third-party tool run shares: its environment (conda/mamba run), the GPU check, and its
output streamed line by line into the job log.

Differences from upstream, and why:

* The command is an argv list run in the tool's directory, never a shell string, so no config value
  can become a command; upstream builds ``cd ... && bash ... "<args>"`` and runs it through a shell.
* The environment is the conda environment ``env_name`` (default ``easyanimate``, built from
  envs/easyanimate.yaml), entered with ``conda run``/``mamba run`` (``env_manager``); ``none`` runs
  the script with the current environment. Upstream creates the environment and installs the tool
  inside the job; here that is set-up, done once (docs/third-party.md), and a job checks for it.
* The output directory is the job's own (``<job_dir>/output``), not ``saving_config.output_dir``:
  every job directory is content-addressed, and publishing copies it out as for any job.
* The tool's output is streamed to the job's log, and its progress lines (tqdm's ``step_loss`` and
  ``lr``) become ``train_log.json`` in the job directory, the format the report and wandb tracking
  read for every training job.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sandflow.hooks.base import JobRun

ENV_MANAGERS = ("conda", "mamba", "none")


def env_prefix(config: dict[str, Any], default_env: str) -> list[str]:
    """The argv that runs a command inside the tool's environment."""
    manager = config.get("env_manager", "conda")
    if manager == "none":
        return []
    return [manager, "run", "--no-capture-output", "-n", str(config.get("env_name") or default_env)]


def gpu_count() -> int:
    if not shutil.which("nvidia-smi"):
        return 0
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in listing.splitlines() if line.startswith("GPU "))


def environment_problems(config: dict[str, Any], env_file: str) -> list[str]:
    """What keeps a tool's environment from being entered, and the GPU check every such tool needs."""
    manager = config.get("env_manager", "conda")
    if manager not in ENV_MANAGERS:
        return [f"extra_configs.env_manager must be one of {', '.join(ENV_MANAGERS)}, got {manager!r}"]
    missing = []
    if manager != "none" and not shutil.which(manager):
        missing.append(
            f"{manager} is not on PATH: install it and create the environment with "
            f"`{manager} env create -f envs/{env_file}`"
        )
    if gpu_count() == 0:
        missing.append("this tool needs an NVIDIA GPU, and `nvidia-smi -L` lists none here")
    return missing


def lines_of(stream: Any) -> Iterator[str]:
    """Lines as a terminal shows them: tqdm redraws with carriage returns, so those end a line too."""
    buffer = ""
    for chunk in iter(lambda: stream.read(4096), ""):
        buffer += chunk
        *complete, buffer = re.split(r"\r\n|\r|\n", buffer)
        yield from (line for line in complete if line.strip())
    if buffer.strip():
        yield buffer


def stream(
    argv: list[str], cwd: Path, env: dict[str, str] | None, job: JobRun, tool: str | None = None
) -> Iterator[str]:
    """Run argv, yielding its output lines (stdout and stderr together); a failure names the tool and code."""
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    yield from lines_of(process.stdout)
    code = process.wait()
    if code:
        name = tool or Path(argv[argv.index("bash") + 1]).name  # a script run with bash, or the tool's command
        raise RuntimeError(f"{name} exited with code {code}; its output is in the job log")


def logged(
    argv: list[str],
    cwd: Path,
    env: dict[str, str] | None,
    job: JobRun,
    tool: str | None = None,
    copy: Path | None = None,
) -> Iterator[str]:
    """stream(), with every line in the job log and, when copy names a file, kept there too."""
    with open(copy, "w") if copy else contextlib.nullcontext() as kept:
        for line in stream(argv, cwd, env, job, tool):
            job.log.info("%s", line)
            if kept:
                kept.write(line + "\n")
            yield line
