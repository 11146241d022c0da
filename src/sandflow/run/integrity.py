"""Finished job directories must still hold what their job wrote: checked before a run uses them.

Each job directory has a manifest (sha256 of every artifact) and ``context.json``, written last. An
artifact changed afterwards (edited by hand, overwritten through a hard link, truncated by a full
disk) would be handed to downstream jobs and published as if the job had made it, and Snakemake
cannot see it: its output is ``context.json``. A run therefore refuses to start on such a
directory, naming the file, rather than rebuilding it silently: the change may be someone's work,
and deleting the directory (which makes the next run rebuild it) is one explicit command.

Only files modified after ``context.json`` are hashed, so a no-op rerun costs one stat per file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from sandflow.core.filehash import sha256_file
from sandflow.core.layout import CONTEXT_FILE, MANIFEST_FILE


def altered_artifact(job_dir: str | Path, record: str = CONTEXT_FILE) -> str | None:
    """Why a finished job directory no longer matches its manifest (None when it does, or is unfinished).

    ``record`` is the file whose mtime marks the end of the job: context.json, or its committed link.
    """
    job_dir = Path(job_dir)
    try:
        finished_ns = (job_dir / record).stat().st_mtime_ns
    except FileNotFoundError:
        return None  # not finished: Snakemake runs it
    try:
        manifest: dict[str, str] = json.loads((job_dir / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return f"{job_dir / MANIFEST_FILE} is missing or unreadable"
    for name, digest in manifest.items():
        path = job_dir / name
        try:
            modified_ns = os.stat(path).st_mtime_ns
        except FileNotFoundError:
            return f"{path} was deleted after its job finished"
        if modified_ns > finished_ns and sha256_file(path) != digest:
            return f"{path} was changed after its job finished (its sha256 differs from {job_dir / MANIFEST_FILE})"
    return None


def first_altered(job_dirs: Iterable[str | Path], context_infos: str) -> str | None:
    """The first problem, with what to delete: the job directory, and the final record so that Snakemake
    (which does not rebuild a missing intermediate output under an up-to-date one) runs the job again."""
    for job_dir in job_dirs:
        problem = altered_artifact(job_dir)
        if problem:
            return f"{problem}; delete {job_dir} and {context_infos} to rebuild it"
    return None
