"""What the benchmark scripts share: this checkout's sandflow, and Snakemake started offline on its Snakefile."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # measure this checkout's sandflow, not whichever one is installed
sys.path.insert(1, str(REPO / "tests"))  # the test helpers some benchmarks share (helpers.*)

from sandflow.run.launch import snakemake_argv  # noqa: E402
from sandflow.run.runner import OFFLINE_DEFAULTS  # noqa: E402

from helpers.slurm import slurm_controller_down  # noqa: E402

__all__ = ["REPO", "offline_env", "sandflow_run_argv", "snakemake_argv"]

# Nothing is installed or downloaded while measuring.
OFFLINE_ENV = {"UV_OFFLINE": "1", "PIP_NO_INDEX": "1", **OFFLINE_DEFAULTS}


def sandflow_run_argv(configfile: str, *options: str) -> list[str]:
    """`sandflow run <config> <options>` (the README's command) from this checkout."""
    return [sys.executable, "-m", "sandflow.cli", "run", configfile, *options]


def offline_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment, offline, with this checkout's src first on the path of snakemake's jobs."""
    python_path = os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))
    return {**os.environ, **OFFLINE_ENV, "PYTHONPATH": python_path, **(extra or {})}


# snakemake-executor-plugin-slurm runs `scontrol show config` (10 s timeout) when Snakemake loads its plugins, on any
# machine with SLURM's commands: with the controller down, every snakemake start here waits ~10 s that a user's
# laptop (no SLURM) or a cluster (a controller that answers) does not.
if slurm_controller_down():
    print(
        "benchmarks: SLURM's commands are installed but its controller does not answer: every snakemake start waits"
        " ~10 s in snakemake-executor-plugin-slurm; start it (bash scripts/setup_single_node_slurm.sh, as root) or"
        " read the wall times with that in them",
        file=sys.stderr,
    )
