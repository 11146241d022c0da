"""Finished job directories must still hold what their job wrote: checked before a run uses them.

Each job directory has a manifest (sha256 and size of every artifact) and ``context.json``, written last. An
artifact changed afterwards (edited by hand, overwritten through a hard link, truncated by a full
disk or a node crash) would be handed to downstream jobs and published as if the job had made it, and
Snakemake cannot see it: its output is ``context.json``. A run therefore refuses to start on such a
directory, naming the file, rather than rebuilding it silently: the change may be someone's work,
and deleting the directory (which makes the next run rebuild it) is one explicit command.

A file that is not in the manifest (added to the directory afterwards) is refused too: a hook reading its
upstream's directory could pick it up. Symlinks are never followed: an artifact, or a directory of artifacts,
swapped for a symlink is refused even if what it points to has the same bytes; a symlink the job itself left
is in the manifest with its target, and must still point there.

Sizes are always compared (one lstat per file). Only files whose mtime or ctime is at or after
``context.json``'s mtime are hashed, so a no-op rerun costs a directory walk and one lstat per file. ctime
catches an edit that puts the old mtime back (``os.utime``): it becomes the time of the edit, and nothing in
user space sets it back. "At or after" catches an edit in the same clock tick as ``context.json``; both stamps
come from the one file system's clock, so no margin is needed. The size catches what timestamps cannot: a file
a node crash left empty under its old timestamps.

A manifest of sandflow before sizes were recorded (``{name: sha256}``) is accepted and checked as it was then
(by sha256 when the timestamps say the file may have changed); a rerun of the job writes the new form.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandflow.core.filehash import FileHashCache, sha256_file, sha256_stream, touched_since
from sandflow.core.layout import COMMIT_FILE, CONTEXT_FILE, MANIFEST_FILE

RECORDS = (CONTEXT_FILE, MANIFEST_FILE)


@dataclass
class Listing:
    """What a walk of a job directory found: path relative to it -> full path, never entering a symlink."""

    files: dict[str, str] = field(default_factory=dict)  # regular files but the records
    links: dict[str, str] = field(default_factory=dict)
    others: list[str] = field(default_factory=list)  # neither file, directory nor link (a fifo, a socket)


def list_job_dir(job_dir: Path) -> Listing:
    """scandir's entry types spare a stat per file, and plain strings the cost of Path objects, on every check."""
    found = Listing()
    pending = [(str(job_dir), "")]
    while pending:
        directory, prefix = pending.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                name = prefix + entry.name
                if entry.is_symlink():
                    found.links[name] = entry.path
                elif entry.is_dir(follow_symlinks=False):
                    pending.append((entry.path, name + os.sep))
                elif entry.is_file(follow_symlinks=False):
                    if name not in RECORDS:
                        found.files[name] = entry.path
                else:
                    found.others.append(entry.path)
    return found


def manifest_of(job_dir: Path) -> dict[str, dict[str, Any]]:
    """sha256 and size of every artifact, and the target of every symlink, of a job directory being committed.
    Each file is flushed to disk (fsync) as it is hashed: the commit renames the directory into place next."""
    listing = list_job_dir(job_dir)
    manifest: dict[str, dict[str, Any]] = {}
    for name, path in sorted(listing.files.items()):
        with open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb") as handle:
            manifest[name] = {"sha256": sha256_stream(handle), "size": os.fstat(handle.fileno()).st_size}
            os.fsync(handle.fileno())
    for name, path in sorted(listing.links.items()):
        manifest[name] = {"symlink": os.readlink(path)}
    return manifest


def read_manifest(path: Path) -> dict[str, dict[str, Any]] | str:
    """The manifest, every entry in the current form (an old entry, a bare sha256, has no size); or why not."""
    try:
        with open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return f"{path} is missing or unreadable (or a symlink)"
    if not isinstance(data, dict):
        return f"{path} is not a JSON object of artifacts, as sandflow writes it"
    manifest = {}
    for name, entry in data.items():
        entry = {"sha256": entry} if isinstance(entry, str) else entry  # the form before sizes
        if not (isinstance(entry, dict) and (isinstance(entry.get("sha256"), str) or "symlink" in entry)):
            return f"{path} has an entry sandflow did not write: {name!r}"
        manifest[name] = entry
    return manifest


def symlink_on_the_way(job_dir: Path, name: str) -> Path | None:
    """The first directory between job_dir and its file ``name`` that is a symlink (None: none is)."""
    path = job_dir
    for part in Path(name).parts[:-1]:
        path = path / part
        try:
            if stat.S_ISLNK(os.lstat(path).st_mode):
                return path
        except FileNotFoundError:
            return None
    return None


def missing_file(job_dir: Path, name: str) -> str:
    """Why a file of the manifest is not among the regular files a walk of the directory found."""
    path = job_dir / name
    link = symlink_on_the_way(job_dir, name)
    if link is not None:
        return f"{link} is a symlink where its job left a directory (sandflow does not follow it)"
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return f"{path} was deleted after its job finished"
    if stat.S_ISLNK(mode):
        return f"{path} is a symlink where its job left a file (sandflow does not follow it)"
    return f"{path} is no longer a regular file"


def altered_artifact(
    job_dir: str | Path, record: str = CONTEXT_FILE, hashes: FileHashCache | None = None
) -> str | None:
    """Why a finished job directory no longer matches its manifest (None when it does, or is unfinished).

    ``record`` is the file whose mtime marks the end of the job: context.json, or its committed twin.
    ``hashes`` (the work_dir's cache) spares hashing the same untouched file on every check.
    """
    job_dir = Path(job_dir)
    manifest_path = job_dir / MANIFEST_FILE
    try:
        finished = os.lstat(job_dir / record)
    except FileNotFoundError:
        return None  # not finished: Snakemake runs it
    if not stat.S_ISREG(finished.st_mode):
        return f"{job_dir / record} is not a regular file (a symlink?)"
    manifest = read_manifest(manifest_path)
    if isinstance(manifest, str):
        return manifest
    listing = list_job_dir(job_dir)
    for name, entry in manifest.items():
        path = job_dir / name
        if "symlink" in entry:
            if name not in listing.links or os.readlink(path) != entry["symlink"]:
                return f"{path} no longer is the symlink its job left (to {entry['symlink']})"
            continue
        if name not in listing.files:
            return missing_file(job_dir, name)
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return f"{path} was deleted after its job finished"
        if "size" in entry and info.st_size != entry["size"]:
            return (
                f"{path} was changed after its job finished (it has {info.st_size} bytes; "
                f"{manifest_path} says {entry['size']})"
            )
        if touched_since(info, finished.st_mtime_ns) and (
            (hashes.file(str(path)) if hashes else sha256_file(path)) != entry["sha256"]
        ):
            return f"{path} was changed after its job finished (its sha256 differs from {manifest_path})"
    for name, path in {**listing.files, **listing.links}.items():
        if name not in manifest and name != COMMIT_FILE:
            return f"{path} was added after its job finished (it is not in {manifest_path})"
    if listing.others:
        return f"{listing.others[0]} is neither a file nor a directory (added after its job finished)"
    return None


def first_altered(
    job_dirs: Iterable[str | Path], context_infos: str, hashes: FileHashCache | None = None
) -> str | None:
    """The first problem, with what to delete: the job directory, and the final record so that Snakemake
    (which does not rebuild a missing intermediate output under an up-to-date one) runs the job again."""
    listed: dict[str, set[str] | None] = {}  # the names in each hook's directory: one listing, not a stat per job
    for job_dir in job_dirs:
        parent, name = os.path.split(os.fspath(job_dir))
        if parent not in listed:
            try:
                listed[parent] = set(os.listdir(parent or "."))
            except FileNotFoundError:
                listed[parent] = set()
            except OSError:
                listed[parent] = None  # not a readable directory: each job directory is checked as it is
        names = listed[parent]
        if names is not None and name and name not in names:
            continue  # never started: nothing of it to check
        problem = altered_artifact(job_dir, hashes=hashes)
        if problem:
            return f"{problem}; delete {job_dir} and {context_infos} to rebuild it"
    return None
