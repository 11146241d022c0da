"""Files and directories on a shared host: a private directory that another local user cannot have planted,
files opened without following a planted symlink, and paths checked to stay under the root they belong to.

On a login node, /tmp is shared by everyone: a directory sandflow means to own may already exist, made by
someone else (who could then read or replace what sandflow puts there), or be a symlink to their directory.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path

from sandflow.core.atomic import replacing


class UnsafePath(Exception):
    """A path sandflow would use is not safe to use: one line saying which and why."""


def unsafe_reason(path: str | Path) -> str | None:
    """Why an existing path is not a private directory of this user (None: it is one). lstat, so a symlink is
    judged itself, not what it points to."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return "it does not exist"
    if stat.S_ISLNK(info.st_mode):
        return "it is a symlink"
    if not stat.S_ISDIR(info.st_mode):
        return "it is not a directory"
    if info.st_uid != os.getuid():
        return f"it is owned by uid {info.st_uid}, not by you (uid {os.getuid()})"
    if info.st_mode & 0o077:
        return f"its mode is {stat.S_IMODE(info.st_mode):o}: group or others may enter it (it must be 700)"
    return None


def private_dir(path: str | Path) -> str | None:
    """Make (mode 700) or accept a directory only this user can enter; why not, when it cannot be used."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass  # judged below: someone may have made it first
    except OSError as exc:
        return f"it cannot be created ({exc.strerror})"
    return unsafe_reason(path)


def open_no_follow(path: str | Path, mode: str = "a") -> int:
    """A file descriptor for writing ("w") or appending ("a") to path, which is refused if path is a symlink
    (O_NOFOLLOW): a symlink planted where a log goes must not make sandflow write through it. The file is 600
    before its first byte (a log may show a job's settings), also when an older one of another mode was there."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_APPEND if mode == "a" else os.O_TRUNC)
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePath(f"{path} is a symlink; sandflow does not write through it (remove it)") from None
        raise
    os.fchmod(fd, 0o600)
    return fd


def ensure_within(path: str | Path, root: str | Path, what: str) -> None:
    """Refuse to write path unless it stays under root, both as written (no ..) and on disk (no directory on
    the way that is a symlink leading out of root)."""
    path, root = os.path.abspath(path), os.path.abspath(root)
    real_parent, real_root = os.path.realpath(os.path.dirname(path)), os.path.realpath(root)
    if os.path.commonpath([path, root]) != root or os.path.commonpath([real_parent, real_root]) != real_root:
        raise UnsafePath(f"{what} {path} would be written outside {root}; refused")


def resolves_within(path: str | Path, root: str | Path) -> bool:
    """Whether path, symlinks and all, is under root on disk (a file sandflow may read into what it writes)."""
    real, real_root = os.path.realpath(path), os.path.realpath(root)
    return os.path.commonpath([real, real_root]) == real_root


def copy_replacing(source: str | Path, target: str | Path) -> None:
    """Copy source to target through a temp file of an unguessable name (mkstemp, O_EXCL) beside it, renamed over
    target: a symlink planted at target (or at a temp name) is replaced, never written through."""
    with replacing(target, suffix="") as (fd, temp):
        with os.fdopen(fd, "wb") as out, open(source, "rb") as data:
            shutil.copyfileobj(data, out)
        os.chmod(temp, 0o644)  # a published file or figure is as readable as one written by open()
