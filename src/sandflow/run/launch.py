"""How sandflow's own commands start Snakemake on the workflow: one argv, never a shell string."""

from __future__ import annotations

import sys
from pathlib import Path

SNAKEFILE = Path(__file__).resolve().parents[3] / "Snakefile"


def snakemake_argv(configfile: str, *options: str) -> list[str]:
    """``python -m snakemake`` on sandflow's Snakefile with a config file; options follow as given."""
    return [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--configfile", configfile, *options]
