"""A shortcut through Snakemake's scheduler that ends a run sooner (as in run/dag_shortcuts.py: only with the
Snakemake it was checked against, a no-op wherever the internal is not as this module knows it).

Snakemake's scheduler limits how many jobs start per timespan (``--max-jobs-per-timespan``, 100 per second by
default): after each scheduling round it starts a ``threading.Timer`` of that timespan whose only work is to wake
the scheduler again. Those timers are not daemon threads, so when the run is over the process waits for the last
one to fire before it exits: up to a second added to every run, a rerun of one job included.
``reevaluation_timers_as_daemons`` starts them as daemon threads: while the scheduler runs they fire as before; once
it has returned, nothing waits for them.
"""

from __future__ import annotations

import threading
from typing import Any

from sandflow.run.dag_shortcuts import checked_snakemake, installed, replaceable


def reevaluation_timers_as_daemons() -> None:
    """``JobScheduler._schedule_reevalutation`` (sic) with a daemon timer that wakes the scheduler the same way."""
    from snakemake.scheduling.job_scheduler import JobScheduler

    if replaceable(JobScheduler, "_schedule_reevalutation", ["self", "delay"]) is None:
        return

    @installed
    def _schedule_reevalutation(self: Any, delay: int) -> None:
        timer = threading.Timer(delay, self._open_jobs.release)
        timer.daemon = True
        timer.start()

    JobScheduler._schedule_reevalutation = _schedule_reevalutation


def take_scheduler_shortcuts() -> None:
    """The above, in the process that runs Snakemake's scheduler (after its modules are imported)."""
    if not checked_snakemake():
        return
    reevaluation_timers_as_daemons()
