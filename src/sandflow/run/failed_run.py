"""context_infos.json after a failed run: every job that finished, and which did not.

DJ-Sandbox writes its context_infos.json in a ``finally``, so a failed run leaves a record of what it did; so does
sandflow, from Snakemake's onerror in the main process. The record is DJ-Sandbox's list (run/context.py) with the
jobs whose record is in place and intact in ``job_infos``; each pipeline lists its other jobs under
``unfinished_jobs`` as ``{"meta_name", "state"}``, ``failed`` (it started in this run: its log was written) or
``not run``. Upstream's reader (``ContextInfos.from_dict``) reads only ``iter``, ``pipeline_infos``, their names
and job_infos, so it reads this file as the jobs that finished; a per-job marker inside job_infos would read as an
output, and would make upstream's ``resume`` count the pipeline as complete.

Nothing is published after a failed run: export_path keeps what the last complete run put there (a partial run
would leave it holding an earlier writer's copy under a later writer's name), so a value here names the artifact
in its job directory.

Snakemake would keep this record at the next run: it does not rebuild a missing job record under an existing
context_infos.json, and a run of the plan the last complete assembly was built for finds Snakemake's own records
of it unchanged. So the records rule all asks beside context_infos.json (the publication record, or where an
iterative run stopped; sandflow's, cheap to write again, inputs of the assembly) are removed first: the next run
writes its own again, and Snakemake reruns the assembly after it, and every job it lacks.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
from typing import Any

from sandflow.core import layout
from sandflow.core.atomic import write_text_atomic
from sandflow.core.filehash import FileHashCache
from sandflow.core.jobio import load_context
from sandflow.run.context import JOB_INFOS, context_infos_list, job_info
from sandflow.run.integrity import altered_artifact

UNFINISHED_JOBS = "unfinished_jobs"
FAILED = "failed"
NOT_RUN = "not run"


def finished_values(job_dir: str, hashes: FileHashCache | None) -> list[Any] | None:
    """The outputs of a job whose record is in place and whose artifacts match its manifest (None: unfinished)."""
    context = os.path.join(job_dir, layout.CONTEXT_FILE)
    if not os.path.isfile(context) or altered_artifact(job_dir, hashes=hashes) is not None:
        return None
    try:
        values = load_context(context)["values"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return values if isinstance(values, list) else None


def unfinished_state(work_dir: str, job: dict[str, Any], started: float) -> str:
    """failed when the job wrote its log in this run (a job opens it when it starts), else not run."""
    try:
        written = os.lstat(layout.job_log(work_dir, job["hook"], job["key"])).st_mtime
    except FileNotFoundError:
        return NOT_RUN
    return FAILED if written >= int(started) else NOT_RUN  # whole seconds: a file system's coarse mtime


def failed_run_record(
    spec: dict[str, Any], started: float, hashes: FileHashCache | None = None
) -> list[dict[str, Any]]:
    """The record of the assembly spec's jobs after a run that started at ``started`` (time.time()) and failed."""
    values_of: dict[str, list[Any] | None] = {}  # by key: iterations and trials share jobs
    entries = []
    for job in spec["jobs"]:
        if job["key"] not in values_of:
            values_of[job["key"]] = finished_values(job["job_dir"], hashes)
        values = values_of[job["key"]]
        if values is not None:
            entries.append((job, JOB_INFOS, job_info(job, values)))
        else:
            state = unfinished_state(spec["work_dir"], job, started)
            entries.append((job, UNFINISHED_JOBS, {"meta_name": job["meta_name"], "state": state}))
    return context_infos_list(entries)


def forget_records(patterns: list[str]) -> None:
    """Remove the records that match these patterns (``<directory>/<glob>``), never through a symlinked directory."""
    for pattern in patterns:
        directory, names = os.path.split(pattern)
        if os.path.islink(directory):
            continue
        try:
            present = os.listdir(directory)
        except FileNotFoundError:
            continue
        for name in fnmatch.filter(present, names):
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                os.unlink(os.path.join(directory, name))


def record_failed_run(
    spec: dict[str, Any], started: float, final_records: list[str], hashes: FileHashCache | None = None
) -> None:
    """Write context_infos.json for a failed run by temp + rename, after removing ``final_records`` (patterns of
    what rule all asks beside it) so that the next run assembles it again."""
    record = failed_run_record(spec, started, hashes)
    forget_records(final_records)  # first: killed in between, the next run still reassembles
    write_text_atomic(spec["context_infos"], json.dumps(record, indent=4, ensure_ascii=False) + "\n", sole_writer=True)
