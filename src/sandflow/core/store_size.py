"""How much a two-level store holds (<root>/<group>/<file>): the stats cache's and the analysis cache's layout."""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path


def two_level_size(
    root: str | Path, counted: Callable[[Path], bool], record: str, skip: Collection[str] = ()
) -> tuple[int, int, int]:
    """(groups, entries, bytes): the real directories under root (not symlinks, not one named in skip), and in them
    the files counted accepts, hidden ones aside: their bytes, and how many are not the group's record file.
    All zeros when root is no directory."""
    groups = entries = size = 0
    top = Path(root)
    if not top.is_dir() or top.is_symlink():
        return 0, 0, 0
    for group in top.iterdir():
        if not group.is_dir() or group.is_symlink() or group.name in skip:
            continue
        groups += 1
        for path in group.iterdir():
            if not path.name.startswith(".") and counted(path):
                size += path.lstat().st_size
                entries += path.name != record
    return groups, entries, size
