"""A job directory read from its own record, whatever config made it: for `sandflow show` (lineage.py).

A job directory ``<work_dir>/jobs/<hook>/<key>/`` keeps ``context.json`` (its hook, component, key, resolved
config, outputs, and what each write stood for) and ``manifest.json`` (sha256 and size of every artifact). The
resolved config names every artifact the job read from another job by its path in that job's directory, so the
jobs a directory read from are found from it too, even when no config planned them any more.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sandflow.config.tree import leaves
from sandflow.core import layout
from sandflow.core.filehash import sha256_file
from sandflow.core.jobio import load_context
from sandflow.core.keys import KEY_PATTERN
from sandflow.run.integrity import read_manifest

# <...>/jobs/<hook>/<key> at the start of a path, or after a separator: the job directory a path is in.
_SEP = re.escape(os.sep)
JOB_DIR_IN_PATH = re.compile(rf"^(?:.*{_SEP})?jobs{_SEP}\w+{_SEP}{KEY_PATTERN}(?={_SEP}|$)")


@dataclass(frozen=True)
class JobRecord:
    job_dir: str
    record: dict[str, Any]

    @property
    def key(self) -> str:
        return str(self.record.get("key") or os.path.basename(self.job_dir))

    def describe(self) -> str:
        component = f" {self.record['component']}" if self.record.get("component") else ""
        started = f", done {self.record['started_at']}" if self.record.get("started_at") else ", done"
        return (
            f"job {self.key} (from its record; this config does not plan it): "
            f"{self.record.get('hook')}{component}, key {self.key}{started}, {self.job_dir}"
        )

    def config_paths(self) -> Iterator[tuple[str, str]]:
        """(place in the config, value) for every string value of the resolved config."""
        for path, value in leaves(self.record.get("config") or {}):
            if isinstance(value, str):
                yield ".".join(map(str, path)), value

    def upstream(self) -> Iterator[tuple[str, str]]:
        """(what it reads, the job directory that wrote it) for every path into another job's directory."""
        own = os.path.realpath(self.job_dir)
        for place, value in self.config_paths():
            job_dir = job_dir_named_in(value)
            if job_dir is not None and os.path.realpath(job_dir) != own:
                yield f"{place} <- {value}", job_dir

    def external_files(self) -> Iterator[str]:
        """The files it read that no job wrote, as its config names them (their sha256 is in its key, not here)."""
        for place, value in self.config_paths():
            if job_dir_named_in(value) is None and os.path.isfile(value):
                yield f"{place}: {value}"


def job_dir_named_in(value: str) -> str | None:
    match = JOB_DIR_IN_PATH.match(value)
    return match.group(0) if match else None


def load_record(job_dir: str) -> JobRecord | None:
    """The job directory's record, None when it has none (not a job directory, or not finished)."""
    try:
        record = load_context(os.path.join(job_dir, layout.CONTEXT_FILE))
    except (OSError, ValueError):
        return None
    return JobRecord(job_dir, record) if isinstance(record, dict) else None


def enclosing_job_dir(path: str) -> str | None:
    """The finished job directory that path is (or is in), by its name and its record; a link is followed."""
    probe = os.path.realpath(path)
    while True:
        if re.fullmatch(KEY_PATTERN, os.path.basename(probe)) and os.path.isfile(
            os.path.join(probe, layout.CONTEXT_FILE)
        ):
            relative = os.path.relpath(probe)  # as the records name job directories, when it is under here
            return probe if relative.startswith(os.pardir) else relative
        parent = os.path.dirname(probe)
        if parent == probe:
            return None
        probe = parent


def job_dirs_with_key(work_dir: str, key: str) -> list[str]:
    return sorted(
        os.path.dirname(record)
        for record in glob.glob(os.path.join(glob.escape(layout.jobs_root(work_dir)), "*", key, layout.CONTEXT_FILE))
    )


def holds_artifact(published: str, job_dir: str, name: str) -> bool:
    """Whether ``published`` has the bytes the job's manifest records for its artifact ``name`` (a directory:
    every artifact under ``name``, each at the same place under it; other writers' files may be beside them)."""
    manifest = read_manifest(os.path.join(job_dir, layout.MANIFEST_FILE))
    if isinstance(manifest, str):
        return False
    if os.path.isdir(published):
        wanted = {
            os.path.join(published, artifact[len(name) + 1 :]): entry.get("sha256")
            for artifact, entry in manifest.items()
            if artifact.startswith(name + "/")
        }
    else:
        wanted = {published: manifest.get(name, {}).get("sha256")}
    return bool(wanted) and all(
        digest is not None and os.path.isfile(path) and sha256_file(path) == digest for path, digest in wanted.items()
    )


def recorded_writers(work_dir: str, hook: str, slot: str, value: str) -> list[JobRecord]:
    """Every finished job directory of the hook whose record says it wrote ``value`` (as its config named it)
    into ``slot``: the jobs, of whatever config, that published there."""
    pattern = os.path.join(glob.escape(layout.jobs_root(work_dir)), glob.escape(hook), "*")
    return [
        record
        for record in map(load_record, sorted(glob.glob(pattern)))
        if record is not None
        and any(
            isinstance(write, dict) and write.get("slot") == slot and write.get("value") == value
            for write in record.record.get("writes") or []
        )
    ]
