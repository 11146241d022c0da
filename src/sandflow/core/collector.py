"""The garbage collector paused for work that makes many objects and little garbage (imports, a dry run's
listing): its passes over those objects are time spent finding nothing to free."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No collection inside the block; afterwards the collector is on again if it was on before."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()
