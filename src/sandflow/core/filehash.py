"""sha256 of the external files jobs read, cached so that re-planning does not re-read data.

A cached hash is trusted only while the file's size, mtime and ctime are those recorded and the file was last
written clearly before it was hashed. ctime catches what mtime hides: ``os.utime`` can put an old mtime back,
but any write (or utime) sets ctime to now, and nothing in user space sets it back. The margin catches a write
in the same clock tick as the hash, which leaves both timestamps as recorded.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat as stat_kinds
import time
from pathlib import Path
from typing import BinaryIO

from sandflow.core.atomic import write_text_atomic

CHUNK = 1 << 20
# How far apart two timestamps of one moment may be: a file system's tick (FAT counts in 2 s, some NFS servers
# in 1 s, ext4 in ms or finer) and a file server's clock against this machine's.
TIMESTAMP_SLACK_NS = 2_000_000_000


def touched_since(stat: os.stat_result, since_ns: int) -> bool:
    """Whether the file may have been written, or had its mtime set, at or after since_ns."""
    return max(stat.st_mtime_ns, stat.st_ctime_ns) >= since_ns


class NotARegularFile(OSError):
    """A path to hash that is a FIFO, a device or a socket: reading one may block forever or never end."""

    def __init__(self, path: str | Path, mode: int):
        kind = (
            "a FIFO"
            if stat_kinds.S_ISFIFO(mode)
            else "a device"
            if stat_kinds.S_ISCHR(mode) or stat_kinds.S_ISBLK(mode)
            else "a socket"
            if stat_kinds.S_ISSOCK(mode)
            else "not a regular file"
        )
        super().__init__(f"{path} is {kind}: only regular files and directories are read and hashed")


def sha256_file(path: str | Path) -> str:
    """sha256 of a regular file. Opened without blocking and checked after opening: a FIFO swapped in after a
    stat would otherwise block the open until a writer comes."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with open(descriptor, "rb") as handle:
        mode = os.fstat(descriptor).st_mode
        if not stat_kinds.S_ISREG(mode):
            raise NotARegularFile(path, mode)
        return sha256_stream(handle)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_stream(handle: BinaryIO) -> str:
    """sha256 of what is left to read in an open binary file."""
    digest = hashlib.sha256()
    for block in iter(lambda: handle.read(CHUNK), b""):
        digest.update(block)
    return digest.hexdigest()


class FileHashCache:
    """A JSON cache file mapping absolute path -> [size, mtime_ns, ctime_ns, hashed_at_ns, sha256]."""

    def __init__(self, cache_file: str | Path):
        self.cache_file = Path(cache_file)
        self.entries: dict[str, list] = {}
        self.changed = False
        try:
            self.entries = json.loads(self.cache_file.read_text())
        except (OSError, ValueError):
            self.entries = {}

    def file(self, path: str) -> str:
        absolute = os.path.abspath(path)
        hashed_at = time.time_ns()
        stat = os.stat(absolute)
        if not stat_kinds.S_ISREG(stat.st_mode):
            raise NotARegularFile(path, stat.st_mode)
        seen = [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns]
        cached = self.entries.get(absolute)
        if (
            cached
            and len(cached) == 5
            and cached[:3] == seen
            and not touched_since(stat, cached[3] - TIMESTAMP_SLACK_NS)
        ):
            return cached[4]
        digest = sha256_file(absolute)
        self.entries[absolute] = [*seen, hashed_at, digest]
        self.changed = True
        return digest

    def tree(self, path: str) -> str:
        """Hash of a directory: relative names and content hashes of every file under it. A directory that
        cannot be listed is an error (os.walk would skip it, leaving its files out of the hash)."""

        def unreadable(error: OSError) -> None:
            raise error

        digest = hashlib.sha256()
        for root, dirs, files in os.walk(path, onerror=unreadable):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(root, name)
                digest.update(f"{os.path.relpath(full, path)}\0{self.file(full)}\n".encode())
        return digest.hexdigest()

    def save(self) -> None:
        if not self.changed:
            return
        write_text_atomic(self.cache_file, json.dumps(self.entries, sort_keys=True))
        self.changed = False
