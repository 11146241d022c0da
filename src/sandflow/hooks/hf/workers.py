"""Run one function per model (pool, checkpoint) in parallel worker processes, up to the job's threads.

A hook given a list of pools trains (or evaluates) one model per pool. Each model runs on one CPU
thread (see hf_train.single_thread: results must not depend on the thread count), so a job granted
N threads runs N models at once instead of one model on N threads. The workers are forked from the
job process after torch and transformers are imported but before any tensor work, so they skip the
import cost (seconds to a minute here) and share nothing that could deadlock: the parent does no
torch computation until the workers are done.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

from sandflow.hooks.base import JobRun

Item = TypeVar("Item")
Result = TypeVar("Result")


def map_models(
    job: JobRun, function: Callable[[Item], Result], items: Sequence[Item], cost: Callable[[Item], float] | None = None
) -> list[Result]:
    """[function(item) for item in items], in that order, on min(job.threads, len(items)) processes.

    ``function`` must be picklable (a module-level function or a partial of one). With ``cost``, the
    costliest items start first, so a big one does not run alone at the end. A failure in any item
    raises in the caller, as in the loop it replaces.
    """
    workers = min(job.threads, len(items))
    if workers <= 1:
        return [function(item) for item in items]
    import torch  # noqa: F401  # imported before the fork, so each worker inherits it instead of importing it
    import transformers  # noqa: F401

    job.log.info("%d models on %d worker processes", len(items), workers)
    order = sorted(range(len(items)), key=lambda index: -cost(items[index])) if cost else range(len(items))
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
        futures = {index: pool.submit(function, items[index]) for index in order}
        return [futures[index].result() for index in range(len(items))]
