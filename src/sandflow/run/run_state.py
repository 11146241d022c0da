"""What every rule adapter reads of one Snakemake run: the plan and what Snakemake's options say about it."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from logging.handlers import QueueHandler

from sandflow.core import layout
from sandflow.core.exit_finalizers import run_exit_finalizers
from sandflow.plan.model import Job, Plan
from sandflow.run import storage


def exit_with_error(message: str) -> None:
    """One line on stderr, exit code 2, before any job (SystemExit in a Snakefile would become exit 1). os._exit skips
    the interpreter's exit: its finalizers run first, which remove Snakemake's temporary directory in $TMPDIR."""
    wait_for_logged_records()
    print(f"sandflow: error: {message}", file=sys.stderr)
    sys.stderr.flush()
    run_exit_finalizers()
    os._exit(2)


def wait_for_logged_records(timeout_s: float = 2.0) -> None:
    """Wait (at most timeout_s) until Snakemake's logger plugins have printed what was logged: they print from a
    thread of their own (sandflow's terminal does, `--logger sandflow`), which would otherwise print the run's
    "N job(s) to run" after the error line, or not at all."""
    deadline = time.monotonic() + timeout_s
    for handler in logging.getLogger("snakemake.logging").handlers:
        queue = handler.queue if isinstance(handler, QueueHandler) else None
        while getattr(queue, "unfinished_tasks", 0) and time.monotonic() < deadline:  # QueueListener's task_done
            time.sleep(0.005)


@dataclass
class RunState:
    plan: Plan
    # Whether Snakemake's --force* options are given: a job it reruns then recomputes even if it had
    # committed (runner.py restores a committed record otherwise). Set by load_or_exit.
    forced_reruns: Callable[[], bool] = lambda: False
    # Whether a real run skips onstart, and so the work_dir lock (snakemake --no-hooks). Set by load_or_exit.
    hooks_skipped: Callable[[], bool] = lambda: False
    object_store: bool = False  # whether a storage plugin holds the job store (run/storage.py)
    locked: bool = False  # whether this run holds the work_dir lock: a real run, not a dry one
    by_key: dict[str, Job] = field(init=False)  # grows when later iterations are planned

    def __post_init__(self) -> None:
        self.by_key = self.plan.by_key

    @property
    def work_dir(self) -> str:
        return self.plan.work_dir

    def declared(self, job: Job) -> str:
        """What a rule declares of a job: its record, or the whole directory when a storage plugin moves it."""
        return job.job_dir if self.object_store else job.context_path

    def staged(self) -> dict[str, str]:
        """The marker a script needs to read staged copies of job directories (nothing without a store)."""
        return {storage.STAGED: layout.jobs_root(self.work_dir)} if self.object_store else {}

    def refuse_skipped_hooks(self) -> None:
        """Asked while Snakemake builds the DAG (it knows its execution settings then), by every job rule's
        input function and the final rule's: whatever the target, --no-hooks would run without the lock."""
        if self.hooks_skipped():
            exit_with_error(
                "snakemake --no-hooks would skip the work_dir lock that keeps two runs apart; run without it"
            )
