"""The work_dir lock: one sandflow run, or one hpo_search worker's turn, on a work_dir at a time.

The lock is an exclusive ``flock`` on ``<work_dir>/.sandflow/lock`` (the kernel releases it when its holder
dies, even by SIGKILL). flock alone does not exclude across nodes everywhere: Lustre mounted with
``localflock`` and some NFS setups keep locks per node. So the holder also writes a record, ``host pid time``,
into the lock file and refreshes its time every HEARTBEAT_S seconds while it holds the lock, and clears it when
it lets go. A process that gets the flock but finds a record of another host refreshed less than STALE_AFTER_S
ago refuses: that host's run is alive and its flock is invisible here. A record of this host is the record of a
dead process (this host's flock is reliable, and we got it). A holder on another host that died without
clearing its record cannot be probed from here, so its claim expires after STALE_AFTER_S without a refresh;
the refusal says so and names the file to remove once the user knows that run is gone.
"""

from __future__ import annotations

import atexit
import errno
import fcntl
import os
import pwd
import socket
import threading
import time
from dataclasses import dataclass

from sandflow.core import layout

# A parent that holds the work_dir lock for the snakemake it starts (python -m sandflow.hpo_search, whose
# workers take turns on one work_dir) passes the open lock down as this file descriptor.
INHERITED_LOCK = "SANDFLOW_WORK_DIR_LOCK_FD"
HEARTBEAT_S = 60.0
STALE_AFTER_S = 600.0  # ten missed heartbeats: a holder this quiet is gone (or its host is)
RECORD_SIZE = 256  # written whole at offset 0, padded, so a reader never sees a half-cleared record


class LockRefused(Exception):
    """The work_dir cannot be locked now: one line saying why and what to do."""


@dataclass(frozen=True)
class Holder:
    """What the lock file says about the process that holds (or last held) the lock."""

    host: str
    pid: int
    refreshed: float  # time.time() of its last heartbeat

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        fields = text.split()
        try:
            return cls(fields[0], int(fields[1]), float(fields[2])) if len(fields) == 3 else None
        except ValueError:
            return None

    def record(self) -> bytes:
        return f"{self.host} {self.pid} {self.refreshed:.0f}".ljust(RECORD_SIZE - 1).encode() + b"\n"

    def elsewhere_and_alive(self) -> bool:
        return self.host != socket.gethostname() and time.time() - self.refreshed < STALE_AFTER_S


def lock_path(work_dir: str) -> str:
    return layout.state_path(work_dir, "lock")


def open_lock(work_dir: str) -> int:
    """The lock file, opened for reading and writing without following a planted symlink."""
    path = lock_path(work_dir)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise LockRefused(cannot_open(work_dir, path, exc)) from None


def cannot_open(work_dir: str, path: str, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return f"cannot lock work_dir {work_dir}: {path} is a symlink; sandflow does not write through it (remove it)"
    try:
        owner = os.lstat(path).st_uid
    except OSError:
        owner = os.getuid()
    if exc.errno == errno.EACCES and owner != os.getuid():
        try:
            name = pwd.getpwuid(owner).pw_name
        except KeyError:
            name = "?"
        return (
            f"work_dir {work_dir} is locked by user {name} (uid {owner}): its lock file {path} is theirs "
            "and you cannot open it; use a work_dir of your own"
        )
    return f"cannot lock work_dir {work_dir} ({path}: {exc.strerror})"


def try_flock(fd: int, work_dir: str) -> bool:
    """Take the flock without waiting: False when another process holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:  # ENOLCK, ENOSYS, EOPNOTSUPP: a file system without flock (some NFS mounts)
        raise LockRefused(
            f"cannot lock work_dir {work_dir} ({lock_path(work_dir)}: {exc.strerror}); sandflow needs a work_dir "
            "on a file system where flock works (a local disk does) to keep two runs apart"
        ) from None
    return True


def holder_text(fd: int) -> str:
    raw = os.pread(fd, RECORD_SIZE, 0).decode(errors="replace").strip()
    holder = Holder.parse(raw)
    if holder is None:
        return f"pid {raw or 'unknown'}"
    return f"pid {holder.pid}" + ("" if holder.host == socket.gethostname() else f" on host {holder.host}")


def busy(work_dir: str, fd: int) -> str:
    return f"another sandflow run ({holder_text(fd)}) is using work_dir {work_dir}; wait for it to finish or stop it"


def live_holder_elsewhere(work_dir: str, fd: int) -> str | None:
    """With the flock in hand: why another host's run still holds the work_dir (None: nobody else does)."""
    holder = Holder.parse(os.pread(fd, RECORD_SIZE, 0).decode(errors="replace"))
    if holder is None or not holder.elsewhere_and_alive():
        return None
    age = max(time.time() - holder.refreshed, 0)
    return (
        f"another sandflow run (pid {holder.pid} on host {holder.host}, alive {age:.0f} s ago) is using work_dir "
        f"{work_dir}; wait for it to finish (if it is gone, its claim lapses {STALE_AFTER_S - age:.0f} s from now, "
        f"or remove {lock_path(work_dir)})"
    )


class Lease:
    """This process's record in the lock file while it holds the lock, refreshed by a daemon thread."""

    def __init__(self, fd: int):
        self.fd = fd
        self._stop = threading.Event()
        self._write()
        self._thread = threading.Thread(target=self._refresh, name="sandflow-lock-heartbeat", daemon=True)
        self._thread.start()
        atexit.register(self.end)  # a run that exits without its onsuccess/onerror hook still clears it

    def _write(self) -> None:
        os.pwrite(self.fd, Holder(socket.gethostname(), os.getpid(), time.time()).record(), 0)
        os.ftruncate(self.fd, RECORD_SIZE)  # a longer record of an older format would leave a tail

    def _refresh(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            self._write()

    def end(self) -> None:
        """Clear the record (a run on another host may start at once); the flock is released apart."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join()
        os.ftruncate(self.fd, 0)
        atexit.unregister(self.end)


@dataclass
class HeldLock:
    fd: int
    lease: Lease | None  # None: the parent that passed the lock down keeps the record

    def release(self) -> None:
        if self.lease is not None:
            self.lease.end()


def inherited_lock(path: str) -> int | None:
    """The lock file descriptor a parent passed down for this run, if it is this work_dir's lock."""
    try:
        fd = int(os.environ.get(INHERITED_LOCK, ""))
        held, here = os.fstat(fd), os.stat(path, follow_symlinks=False)
    except (ValueError, OSError):
        return None
    return fd if (held.st_dev, held.st_ino) == (here.st_dev, here.st_ino) else None


def hold_lock(work_dir: str) -> HeldLock:
    """An exclusive lock on work_dir for this process's life, or LockRefused."""
    inherited = inherited_lock(lock_path(work_dir))
    if inherited is not None:
        # Locking the parent's open file description again succeeds (it holds the lock); another holder refuses.
        os.set_inheritable(inherited, False)  # jobs and the job server must not keep it
        if not try_flock(inherited, work_dir):
            raise LockRefused(busy(work_dir, inherited))
        return HeldLock(inherited, None)
    fd = open_lock(work_dir)
    if not try_flock(fd, work_dir):
        raise LockRefused(busy(work_dir, fd))
    elsewhere = live_holder_elsewhere(work_dir, fd)
    if elsewhere:
        os.close(fd)
        raise LockRefused(elsewhere)
    return HeldLock(fd, Lease(fd))
