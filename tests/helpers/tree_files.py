"""sha256 of every file under a directory, to show that something was, or was not, written."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Container
from pathlib import Path


def file_digests(
    root: Path, skip: Container[str] = (), normalise: Callable[[Path, bytes], bytes] | None = None
) -> dict[str, str]:
    """Relative path -> sha256 of every file under root ('-> target' for a link), not entering the top-level
    entries named in skip; normalise(path, content) may first rewrite what is hashed."""
    digests: dict[str, str] = {}
    for directory, dirs, files in os.walk(root):
        here = Path(directory)
        if here == root:
            dirs[:] = [name for name in dirs if name not in skip]
            files = [name for name in files if name not in skip]
        for name in dirs + files:
            path = here / name
            relative = str(path.relative_to(root))
            if path.is_symlink():
                digests[relative] = f"-> {os.readlink(path)}"
            elif path.is_file():
                data = path.read_bytes()
                digests[relative] = hashlib.sha256(normalise(path, data) if normalise else data).hexdigest()
    return digests
