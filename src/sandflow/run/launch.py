"""How sandflow's own commands start Snakemake on the workflow: one argv, never a shell string."""

from __future__ import annotations

import sys
from pathlib import Path

SNAKEFILE = Path(__file__).resolve().parents[3] / "Snakefile"
# sandflow's terminal (run/terminal.py): a line per finished job instead of Snakemake's block per job. One value
# after "=": --logger takes several, and would take a target that follows as a logger's name.
TERMINAL_LOGGER = "--logger=sandflow"


def snakemake_argv(configfile: str, *options: str) -> list[str]:
    """``python -m snakemake`` on sandflow's Snakefile with a config file; options follow as given."""
    return [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--configfile", configfile, *options]


def with_terminal_logger(options: list[str]) -> list[str]:
    """Snakemake options with sandflow's terminal, unless they name a logger of their own."""
    if any(option == "--logger" or option.startswith("--logger=") for option in options):
        return options
    return [TERMINAL_LOGGER, *options]
