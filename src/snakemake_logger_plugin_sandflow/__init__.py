"""sandflow's terminal for Snakemake, ``snakemake --logger sandflow`` (the code: src/sandflow/run/terminal.py).

Snakemake finds a logger plugin by its top-level module name, snakemake_logger_plugin_<name>."""

from sandflow.run.terminal import TerminalHandler as LogHandler

__all__ = ["LogHandler"]
