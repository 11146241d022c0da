"""A shortcut through Snakemake's logging of each job, the same output with less work (as in run/dag_shortcuts.py:
only with the Snakemake it was checked against, a no-op wherever an internal is not as this module knows it).

For each job it lists or starts, Snakemake logs the job and then its shell command as a record of its own (a log
record made, its caller looked up on the stack, handed to each handler), which its default filter drops unless
``--printshellcmds`` is given (and which a script rule has none of): ``shell_commands_dropped_unmade`` makes no
such record when every handler it would reach drops it that way.
"""

from __future__ import annotations

import logging
from typing import Any

from sandflow.run.dag_shortcuts import INSTALLED, checked_snakemake


def shell_commands_dropped_unmade() -> None:
    """``snakemake.jobs.logger`` as a logger that makes no shell command record (event SHELLCMD) when each handler
    on the record's way (the logger's, and its parents' while it propagates) has Snakemake's default filter with
    shell commands off; any other record, or with any other handler, it logs as Snakemake's logger (the caller
    found one frame up, where Snakemake logs it)."""
    from snakemake import jobs
    from snakemake import logging as snakemake_logging
    from snakemake_interface_logger_plugins.common import LogEvent

    logger = getattr(jobs, "logger", None)
    default_filter = getattr(snakemake_logging, "DefaultFilter", None)
    if type(logger) is not logging.Logger or logger is not getattr(snakemake_logging, "logger", None):
        return
    if default_filter is None or "printshellcmds" not in vars(default_filter).get("__annotations__", {}):
        return
    shell_command = LogEvent.SHELLCMD

    def dropped_by_every_handler() -> bool:
        current: logging.Logger | None = logger
        while current is not None:
            for handler in current.handlers:
                filters = handler.filters
                if not any(type(f) is default_filter and not f.printshellcmds for f in filters):
                    return False
            if not current.propagate:
                return True
            current = current.parent
        return True

    class ShellCommandsDroppedUnmade:
        def __getattr__(self, name: str) -> Any:
            return getattr(logger, name)

        def info(self, msg: object, *args: Any, extra: Any = None, stacklevel: int = 1, **kwargs: Any) -> None:
            if isinstance(extra, dict) and extra.get("event") is shell_command and dropped_by_every_handler():
                return
            logger.info(msg, *args, extra=extra, stacklevel=stacklevel + 1, **kwargs)

    setattr(ShellCommandsDroppedUnmade, INSTALLED, True)
    jobs.logger = ShellCommandsDroppedUnmade()


def take_log_shortcuts() -> None:
    """The above, in the process that builds Snakemake's DAG (after its modules are imported)."""
    if not checked_snakemake():
        return
    shell_commands_dropped_unmade()
