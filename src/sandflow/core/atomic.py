"""Write a file under a temporary name next to it, then rename: a killed writer leaves no finished-looking file.

The temporary file is made with O_EXCL under a random name (tempfile.mkstemp), so a name planted beforehand
(a symlink to someone's file) is never opened, and it is flushed to disk (fsync) before the rename, so a
crash right after cannot leave the new name on an empty file.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Collection, Iterator
from pathlib import Path


def current_umask() -> int:
    """The process's umask, read without changing it (Linux: /proc/self/status); 022 when it cannot be read."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return 0o022


@contextlib.contextmanager
def replacing(path: str | Path, suffix: str = ".tmp") -> Iterator[tuple[int, str]]:
    """A new temp file beside path (O_EXCL, random name: never a planted one), open as the yielded descriptor,
    that the block fills and closes; renamed over path when the block ends, removed when it fails."""
    path = Path(path)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    try:
        yield handle, temp
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def remove_leftover_temps(directory: str | Path, suffix: str = ".tmp", names: Collection[str] | None = None) -> None:
    """Remove the temp files ``replacing`` left in directory when their writer was killed before its rename
    (``.<name>.<8 random characters><suffix>``; of those names only, when given). Only for a writer that no
    other can be at work beside: one that holds the work_dir lock, as a run's assembly does (a live writer's temp
    would go from under it)."""
    leftover = re.compile(rf"\.(.+)\.[a-z0-9_]{{8}}{re.escape(suffix)}")
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for entry in os.scandir(directory):
            found = leftover.fullmatch(entry.name)
            if found and (names is None or found[1] in names) and not entry.is_dir(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)


def write_text_atomic(path: str | Path, text: str, sole_writer: bool = False) -> None:
    write_bytes_atomic(path, text.encode("utf-8"), sole_writer)


def write_bytes_atomic(path: str | Path, data: bytes, sole_writer: bool = False) -> None:
    """sole_writer: no other process can be writing path (a rule's output, written while the run holds the
    work_dir lock), so the temp files of its killed writers are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if sole_writer:
        remove_leftover_temps(path.parent, names={path.name})
    with replacing(path) as (handle, _):
        os.fchmod(handle, 0o666 & ~current_umask())  # as open() would make it (mkstemp makes 600)
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
