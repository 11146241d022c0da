"""Attributes of a module (or any object) replaced for a block and restored after it, whatever the block raised.

The caches and Data-Juicer's ops are wired in this way: Data-Juicer names what they replace through its modules'
globals (``load_ops``, the analysis classes, ``free_models``). Jobs run one per process, or one at a time in tests.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def replaced(owner: Any, **values: Any) -> Iterator[None]:
    """``owner.<name> = value`` for each value inside the block; the originals again after it, as they were stored
    (a class's staticmethod stays one)."""
    originals = {name: inspect.getattr_static(owner, name) for name in values}
    for name, value in values.items():
        setattr(owner, name, value)
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(owner, name, original)
