"""Shortcuts through what a dry run (``snakemake -n``) does besides its jobs, the same listing and exit with less work
(as in run/dag_shortcuts.py: only with the Snakemake it was checked against, a no-op wherever an internal is not as
this module knows it). In a ``snakemake -n`` of 30,000 planned jobs (benchmarks/RESULTS.md, "Fourth pass"):

* Python's garbage collector passes over each new job object Snakemake makes at least once while it builds the
  DAG and lists it (0.35 s of CPU), to find cycles whose memory a dry run, which ends right after, would hardly
  reuse (4 MB more at its peak without those passes): ``no_collector_while_dry_running``;
* after ``python -m snakemake -n`` has listed its jobs and run its exit handlers, Python tears the process down:
  it clears every module and frees every object, the DAG's jobs and files and the plan one by one (about 2 s of
  CPU). Nothing of that is seen outside the process: ``dry_runs_exit_without_teardown`` ends such a process once its
  exit handlers have run and its output is flushed, with the status Snakemake exits with. A real run, and Snakemake
  called any other way (a test, a script), end as Python ends them.
"""

from __future__ import annotations

import atexit
import inspect
import os
import sys
import types
from typing import Any

from sandflow.core.collector import collector_paused
from sandflow.run.dag_shortcuts import INSTALLED, checked_snakemake, installed


def _exit_of_a_dry_run_from_the_command_line(caller: Any, main_code: Any) -> bool:
    """Whether ``caller`` is Snakemake's ``cli.main`` of a dry run, called by ``python -m snakemake`` itself."""
    if caller is None or caller.f_code is not main_code:
        return False
    arguments = caller.f_locals.get("args")  # main's parsed options
    entry = caller.f_back
    spec = entry.f_globals.get("__spec__") if entry is not None else None
    return (
        getattr(arguments, "dryrun", None) is True
        and entry.f_globals.get("__name__") == "__main__"
        and getattr(spec, "name", None) == "snakemake.__main__"
    )


def dry_runs_exit_without_teardown() -> None:
    """``sys.exit`` as it is, but when Snakemake's ``cli.main`` calls it to end ``python -m snakemake -n`` (the last
    thing that process does), an exit handler that runs first: it runs the other exit handlers (as Python would,
    the most recently registered first), flushes stdout and stderr and ends the process with Snakemake's status
    (``os._exit``), before Python's teardown. Where a flush fails, Python's own exit goes on (and reports it)."""
    from snakemake import cli

    original = sys.exit
    main = getattr(cli, "main", None)
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if getattr(original, INSTALLED, False) or main is None or not callable(run_exit_handlers):
        return
    main_code = getattr(main, "__code__", None)

    def end_without_teardown(status: int) -> None:
        atexit.unregister(end_without_teardown)
        run_exit_handlers()  # those registered before this one, each once, as Python runs them
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:
            return  # Python's own exit reports it
        os._exit(status)

    @installed
    def exit(status: Any = None) -> None:
        if type(status) is int and _exit_of_a_dry_run_from_the_command_line(sys._getframe(1), main_code):
            atexit.register(end_without_teardown, status)
        original(status)

    sys.exit = exit


def no_collector_while_dry_running() -> None:
    """``Workflow.execute`` of a dry run (its executor's ``dryrun_exec``) with the garbage collector off, and back on
    as it was once the dry run has listed its jobs (also where it raises); a real run as before."""
    from snakemake.workflow import Workflow

    original = inspect.getattr_static(Workflow, "execute", None)
    if not isinstance(original, types.FunctionType) or getattr(original, INSTALLED, False):
        return
    if list(inspect.signature(original).parameters)[:2] != ["self", "executor_plugin"]:
        return

    @installed
    def execute(self: Any, executor_plugin: Any, *args: Any, **kwargs: Any) -> Any:
        dry = getattr(getattr(executor_plugin, "common_settings", None), "dryrun_exec", None) is True
        if not dry:
            return original(self, executor_plugin, *args, **kwargs)
        with collector_paused():
            return original(self, executor_plugin, *args, **kwargs)

    execute.__wrapped__ = original  # type: ignore[attr-defined]
    Workflow.execute = execute


def take_dry_run_shortcuts() -> None:
    """Both of the above, in the process that builds Snakemake's DAG (after its modules are imported)."""
    if not checked_snakemake():
        return
    no_collector_while_dry_running()
    dry_runs_exit_without_teardown()
