"""DJ-Sandbox's path conventions: file or directory by name, and the iter_<N> directory."""

from __future__ import annotations

import os


def guess_kind(path: str) -> str:
    """DJ-Sandbox's rule: a basename with a dot (not leading) is a file, anything else a directory."""
    if path.endswith(("/", os.sep)):
        return "dir"
    base = os.path.basename(path.rstrip("/"))
    return "file" if "." in base and not base.startswith(".") else "dir"


def iterize(path: str, iteration: int) -> str:
    """Insert DJ-Sandbox's iter_<N> directory: a/b/c.jsonl -> a/b/iter_N/c.jsonl, a/b -> a/b/iter_N."""
    if guess_kind(path) == "file":
        return os.path.join(os.path.dirname(path), f"iter_{iteration}", os.path.basename(path))
    return os.path.join(path.rstrip("/"), f"iter_{iteration}")


def normalize(path: str) -> str:
    return os.path.normpath(os.path.abspath(path))
