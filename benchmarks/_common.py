"""What the benchmark scripts share: this checkout's sandflow, and Snakemake started offline on its Snakefile."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # measure this checkout's sandflow, not whichever one is installed

from sandflow.run.launch import snakemake_argv  # noqa: E402
from sandflow.run.runner import OFFLINE_DEFAULTS  # noqa: E402

__all__ = ["REPO", "offline_env", "snakemake_argv"]

# Nothing is installed or downloaded while measuring.
OFFLINE_ENV = {"UV_OFFLINE": "1", "PIP_NO_INDEX": "1", **OFFLINE_DEFAULTS}


def offline_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment, offline, with this checkout's src first on the path of snakemake's jobs."""
    python_path = os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))
    return {**os.environ, **OFFLINE_ENV, "PYTHONPATH": python_path, **(extra or {})}
