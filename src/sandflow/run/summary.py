"""The lines a run ends with: how many jobs ran and were cached, where context_infos.json is, what to try next.

Logged through Snakemake's logger (Snakefile onsuccess), so they come after its last job line with any logger,
``--logger sandflow`` or Snakemake's default. A failed run ends with the job's one-line error instead.
"""

from __future__ import annotations

import logging
import os
import time

from sandflow.core import layout
from sandflow.plan.model import Plan

# Imported when Snakemake reads the Snakefile, before any job (each snakemake command is a process of its own):
# a job record written since is this run's work.
STARTED = time.time()
SNAKEMAKE_LOGGER = "snakemake.logging"


def shown(path: str) -> str:
    """Relative to the working directory when under it (as the user wrote their config), else absolute."""
    relative = os.path.relpath(path)
    return os.path.abspath(path) if relative.startswith("..") else relative


def written_since(path: str, started: float) -> bool | None:
    """Whether the file was written since started (None: it is not there to look at)."""
    try:
        return os.stat(path).st_mtime >= started
    except OSError:
        return None


def summary_lines(plan: Plan, object_store: bool, started: float = STARTED) -> list[str]:
    """Nothing when the run did no work at all (refused before its first job, or its first job failed: the
    error above says why)."""
    jobs_root = shown(os.path.join(plan.work_dir, "jobs"))
    logs_root = shown(layout.logs_root(plan.work_dir))
    states = [written_since(job.context_path, started) for job in plan.unique_jobs()]
    ran, cached, not_done = states.count(True), states.count(False), states.count(None)
    rebuilt = written_since(plan.context_infos_path, started)
    if not ran and not rebuilt:
        return []
    if object_store:  # job directories are in the store, not here to look at
        lines = [f"sandflow: jobs are in the object store; their logs are under {logs_root}{os.sep}"]
    else:
        lines = [
            f"sandflow: {ran} job(s) ran, {cached} cached{f', {not_done} not done' if not_done else ''}: "
            f"job directories under {jobs_root}{os.sep}, their logs under {logs_root}{os.sep}"
        ]
    if not rebuilt:
        return [*lines, f"sandflow: {shown(plan.context_infos_path)} was not rebuilt by this run"]
    config = plan.config.source if "," not in plan.config.source else "<config>"
    last = plan.jobs[-1].cfg.display_name if plan.jobs else "<meta_name>"
    return [
        *lines,
        f"sandflow: context_infos.json: {shown(plan.context_infos_path)}",
        f"sandflow: next: sandflow show {config} {last}   (how a result was made, down to its sources)",
        f"sandflow:       snakemake --configfile {config} --report report.html   (the run's figures and metrics)",
    ]


def log_run_summary(plan: Plan, object_store: bool) -> None:
    for line in summary_lines(plan, object_store):
        logging.getLogger(SNAKEMAKE_LOGGER).info(line)
