"""Finished job directories must still hold what their job wrote: checked before a run uses them.

Each job directory has a manifest (sha256 of every artifact) and ``context.json``, written last. An
artifact changed afterwards (edited by hand, overwritten through a hard link, truncated by a full
disk) would be handed to downstream jobs and published as if the job had made it, and Snakemake
cannot see it: its output is ``context.json``. A run therefore refuses to start on such a
directory, naming the file, rather than rebuilding it silently: the change may be someone's work,
and deleting the directory (which makes the next run rebuild it) is one explicit command.

A file that is not in the manifest (added to the directory afterwards) is refused too: a hook reading its
upstream's directory could pick it up.

Only files whose mtime or ctime is at or after ``context.json``'s mtime are hashed, so a no-op rerun costs a
directory walk and one stat per file. ctime catches an edit that puts the old mtime back (``os.utime``): it
becomes the time of the edit, and nothing in user space sets it back. "At or after" catches an edit in the
same clock tick as ``context.json``; both stamps come from the one file system's clock, so no margin is needed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from sandflow.core.filehash import FileHashCache, sha256_file, touched_since
from sandflow.core.layout import COMMIT_FILE, CONTEXT_FILE, MANIFEST_FILE


def artifact_files(job_dir: Path) -> list[Path]:
    """The files a job's manifest covers: every regular file under its directory but the records (no symlinks,
    none under a symlinked directory). scandir's entry types spare a stat per file on every check."""
    found: list[Path] = []
    pending = [job_dir]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_symlink():
                    continue
                if entry.is_dir():
                    pending.append(Path(entry.path))
                elif entry.is_file() and entry.name not in (CONTEXT_FILE, MANIFEST_FILE):
                    found.append(Path(entry.path))
    return sorted(found)


def altered_artifact(
    job_dir: str | Path, record: str = CONTEXT_FILE, hashes: FileHashCache | None = None
) -> str | None:
    """Why a finished job directory no longer matches its manifest (None when it does, or is unfinished).

    ``record`` is the file whose mtime marks the end of the job: context.json, or its committed link.
    ``hashes`` (the work_dir's cache) spares hashing the same untouched file on every check.
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
            stat = os.stat(path)
        except FileNotFoundError:
            return f"{path} was deleted after its job finished"
        if touched_since(stat, finished_ns) and (hashes.file(str(path)) if hashes else sha256_file(path)) != digest:
            return f"{path} was changed after its job finished (its sha256 differs from {job_dir / MANIFEST_FILE})"
    for path in artifact_files(job_dir):
        name = str(path.relative_to(job_dir))
        if name not in manifest and name != COMMIT_FILE:
            return f"{path} was added after its job finished (it is not in {job_dir / MANIFEST_FILE})"
    return None


def first_altered(
    job_dirs: Iterable[str | Path], context_infos: str, hashes: FileHashCache | None = None
) -> str | None:
    """The first problem, with what to delete: the job directory, and the final record so that Snakemake
    (which does not rebuild a missing intermediate output under an up-to-date one) runs the job again."""
    for job_dir in job_dirs:
        problem = altered_artifact(job_dir, hashes=hashes)
        if problem:
            return f"{problem}; delete {job_dir} and {context_infos} to rebuild it"
    return None
