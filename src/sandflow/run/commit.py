"""One owner per job key, and a commit that only that owner makes, whole and durable.

A job holds its key's lock (``flock`` on ``<work_dir>/.sandflow/locks/<hook>/<key>.lock``, opened without
following a symlink) from before it looks at its job directory until it has committed or failed. The kernel
releases it when the process dies, however it dies (and not before every child that inherited it is gone too).
So when Snakemake's main process is killed and its jobs run on as orphans, a restarted run's job for the same
key waits for the orphan (saying for whom: the lock file names the owner's host and pid), then accepts what
the orphan committed instead of computing it again, and never touches a directory the orphan still writes.

Under the lock every ``<key>.partial-*`` directory is a dead owner's, so it is swept. A job writes under
``<key>.partial-<host>-<pid>-<random>``, made with mkdir (never adopted), and commits it only if that path
is still the directory it made (the one it holds open): a partial removed and recreated while the job ran
(by hand, or by an older sandflow's sweep) is never renamed into place. The commit flushes every artifact,
every directory of the partial, and after the rename the parent directory, so a node crash cannot leave a
committed name over missing or empty files.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import secrets
import shutil
import socket
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sandflow.core.atomic import replacing
from sandflow.core.jobio import JobFailed
from sandflow.core.layout import COMMIT_FILE, CONTEXT_FILE, state_path
from sandflow.core.private_fs import UnsafePath
from sandflow.run.integrity import altered_artifact

# What a file system without hard links (FUSE, SMB, some NFS exports) answers to link().
LINKS_UNSUPPORTED = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV}


def key_lock_path(job_dir: Path) -> Path:
    """<work_dir>/.sandflow/locks/<hook>/<key>.lock for the job directory <work_dir>/jobs/<hook>/<key>."""
    return Path(state_path(str(job_dir.parents[2]), "locks", job_dir.parent.name, f"{job_dir.name}.lock"))


def owner() -> str:
    return f"host {socket.gethostname()} pid {os.getpid()}"


@contextlib.contextmanager
def key_lock(job_dir: Path) -> Iterator[str | None]:
    """Hold the job's key lock while the block runs. Yields the owner this job waited for (None: it did not wait).
    The wait is said on stderr (the job log is opened after it: opening it earlier would truncate the log
    the owner still writes)."""
    path = key_lock_path(job_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        handle = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePath(f"{path} is a symlink; sandflow does not lock through it (remove it)") from None
        raise
    try:
        waited_for = None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            waited_for = os.pread(handle, 256, 0).decode(errors="replace").strip() or "another process"
            print(f"sandflow: job {job_dir.name}: waiting for {waited_for}, which is running it", file=sys.stderr)
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError as exc:  # ENOLCK, EOPNOTSUPP: a mount without locks; the job does not run unguarded
            raise JobFailed(f"cannot lock {path} ({exc.strerror}); put work_dir where flock works") from None
        os.ftruncate(handle, 0)
        os.pwrite(handle, f"{owner()}\n".encode(), 0)
        yield waited_for
    finally:
        os.close(handle)  # releases the lock (unless a child that inherited it still runs: it is the job's too)


def remove_tree(path: Path) -> None:
    """Remove a directory tree, or the symlink standing in its place (never what it points to)."""
    if path.is_symlink():
        path.unlink()
    else:
        shutil.rmtree(path, ignore_errors=True)


def sweep_partials(job_dir: Path) -> None:
    """Remove every partial directory of the key. Only under its lock: then their owners are all gone."""
    for stale in job_dir.parent.glob(f"{job_dir.name}.partial-*"):
        remove_tree(stale)


@dataclass(frozen=True)
class Partial:
    """The directory a job writes in, as it made it, held open: while the job holds it, its inode cannot be
    freed and given to a directory made again under the same name."""

    path: Path
    handle: int

    def is_intact(self) -> bool:
        try:
            info = os.lstat(self.path)
        except FileNotFoundError:
            return False
        held = os.fstat(self.handle)
        return (
            stat.S_ISDIR(info.st_mode)
            and held.st_nlink > 0
            and (info.st_dev, info.st_ino) == (held.st_dev, held.st_ino)
        )


@contextlib.contextmanager
def new_partial(job_dir: Path) -> Iterator[Partial]:
    """A new partial directory of the key, named by host, pid and a random part, held open while the block runs."""
    host = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())
    path = job_dir.with_name(f"{job_dir.name}.partial-{host}-{os.getpid()}-{secrets.token_hex(4)}")
    job_dir.parent.mkdir(parents=True, exist_ok=True)
    os.mkdir(path)  # fails on an existing name: a job never adopts a directory it did not make
    handle = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        yield Partial(path, handle)
    finally:
        os.close(handle)


def fsync_directory(path: Path) -> None:
    handle = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def commit(partial: Partial, job_dir: Path) -> None:
    """Rename the partial directory into place as the job directory, durably; refuse one this job did not make.

    The caller has flushed the files (integrity.manifest_of, atomic writes). A job directory already there
    (a forced rerun, or one whose artifacts were altered) is first renamed to a partial name, so a crash in
    between leaves a partial the next job sweeps, never a mix."""
    for directory, _, _ in os.walk(partial.path, topdown=False):
        fsync_directory(Path(directory))
    if not partial.is_intact():
        raise JobFailed(f"{partial.path} was removed or replaced while the job ran; nothing was committed")
    replaced = None
    if os.path.lexists(job_dir):
        replaced = partial.path.with_name(f"{partial.path.name}-replaced")
        os.rename(job_dir, replaced)
    os.rename(partial.path, job_dir)
    fsync_directory(job_dir.parent)
    if replaced is not None:
        remove_tree(replaced)


def link_or_copy(source: Path, target: Path) -> None:
    """A second name for a record: a hard link, or where the file system has none, a copy with the same bytes
    and mtime (so nothing downstream looks newer), renamed into place."""
    try:
        os.link(source, target)
        return
    except OSError as exc:
        if exc.errno not in LINKS_UNSUPPORTED:
            raise
    with replacing(target) as (handle, temp):
        os.close(handle)
        shutil.copy2(source, temp)
        with open(temp, "rb") as written:
            os.fsync(written.fileno())


def same_record(first: Path, second: Path) -> bool:
    """Whether two names hold the same record: one file (a hard link) or equal bytes (a copy)."""
    one, other = os.lstat(first), os.lstat(second)
    if not (stat.S_ISREG(one.st_mode) and stat.S_ISREG(other.st_mode)):
        return False
    return (one.st_dev, one.st_ino) == (other.st_dev, other.st_ino) or first.read_bytes() == second.read_bytes()


def accept_commit(job_dir: Path) -> bool:
    """Whether the job directory holds an intact commit, with its record in place; False when the job must run.

    Puts back a context.json that Snakemake removed (a run killed between a job's commit and Snakemake's
    record of it), and accepts one committed by the job this one waited for."""
    commit_file, context = job_dir / COMMIT_FILE, job_dir / CONTEXT_FILE
    if not commit_file.exists() or altered_artifact(job_dir, record=COMMIT_FILE):
        return False
    if not os.path.lexists(context):
        link_or_copy(commit_file, context)
        return True
    return same_record(context, commit_file)
