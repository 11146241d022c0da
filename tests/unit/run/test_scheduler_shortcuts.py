"""The exit shortcut (src/sandflow/run/scheduler_shortcuts.py) on the pinned Snakemake's own scheduler code."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from snakemake.scheduling.job_scheduler import JobScheduler

from sandflow.run.scheduler_shortcuts import take_scheduler_shortcuts


def test_the_schedulers_reevaluation_timer_wakes_it_and_holds_no_exit():
    take_scheduler_shortcuts()
    scheduler = SimpleNamespace(_open_jobs=threading.Semaphore(0))
    before = set(threading.enumerate())
    JobScheduler._schedule_reevalutation(scheduler, 0.05)
    (timer,) = set(threading.enumerate()) - before
    assert timer.daemon  # the process exits without waiting for it (Snakemake's own: up to 1 s per run)
    assert scheduler._open_jobs.acquire(timeout=5)  # it still wakes the scheduler
    take_scheduler_shortcuts()  # a second parse in one process does not wrap it again
    assert JobScheduler._schedule_reevalutation.__qualname__.endswith(
        "reevaluation_timers_as_daemons.<locals>._schedule_reevalutation"
    )
