"""sha256 of the external files jobs read, cached by (path, size, mtime) so re-planning does not re-read data."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from sandflow.core.atomic import write_text_atomic

CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


class FileHashCache:
    """A JSON cache file mapping absolute path -> [size, mtime_ns, sha256]."""

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
        stat = os.stat(absolute)
        cached = self.entries.get(absolute)
        if cached and cached[0] == stat.st_size and cached[1] == stat.st_mtime_ns:
            return cached[2]
        digest = sha256_file(absolute)
        self.entries[absolute] = [stat.st_size, stat.st_mtime_ns, digest]
        self.changed = True
        return digest

    def tree(self, path: str) -> str:
        """Hash of a directory: relative names and content hashes of every file under it."""
        digest = hashlib.sha256()
        for root, dirs, files in os.walk(path):
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
