"""Hooks called in-process, as the runner calls them: the JobRun it hands over, and a logger writing to a file."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sandflow.hooks.base import JobRun


def job_run(
    hook: str,
    job_dir: Path,
    *,
    dj_configs: dict[str, Any] | None = None,
    extra_configs: dict[str, Any] | None = None,
    key: str = "k",
    meta_name: str = "m",
    **fields: Any,
) -> JobRun:
    """A JobRun of pipeline "p", iteration 1; ``fields`` sets the others (log, linked_jobs, threads) where given."""
    return JobRun(
        hook=hook,
        key=key,
        pipeline="p",
        meta_name=meta_name,
        iteration=1,
        job_dir=job_dir,
        dj_configs=dj_configs,
        extra_configs=extra_configs,
        **fields,
    )


def file_logger(
    name: str, path: Path, *, propagate: bool = False, mode: str = "w", formatter: logging.Formatter | None = None
) -> logging.Logger:
    """The logger ``name`` at INFO, also writing to ``path``, so that a test can read what the hook logged."""
    log = logging.getLogger(name)
    log.propagate = propagate
    log.setLevel(logging.INFO)
    handler = logging.FileHandler(path, mode=mode)
    if formatter is not None:
        handler.setFormatter(formatter)
    log.addHandler(handler)
    return log
