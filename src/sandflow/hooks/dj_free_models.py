"""Data-Juicer's ops without a torch import for nothing.

Every Data-Juicer op calls ``free_models()`` when its run ends: it moves the models the op loaded off the GPU and
calls ``torch.cuda.empty_cache()``, through a lazy ``torch`` module, so that the first op of a job imports torch
(2-4 s on our 2-core machine: the first op of every demo job took that much longer than the next ones). When no
model was loaded and torch was never imported there is nothing to free and no CUDA cache to empty: then nothing
is done. Any other time Data-Juicer's own ``free_models`` runs.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from sandflow.core.replaced import replaced

__all__ = ["free_models_lazily"]


@contextlib.contextmanager
def free_models_lazily() -> Iterator[None]:
    """Within the block, ops' ``free_models()`` (data_juicer.ops.base_op's global) imports nothing to free nothing."""
    import data_juicer.ops.base_op as base_op
    from data_juicer.utils import model_utils

    original = base_op.free_models

    def free_models(*args: Any, **kwargs: Any) -> None:
        if model_utils.MODEL_ZOO or "torch" in sys.modules:
            original(*args, **kwargs)

    with replaced(base_op, free_models=free_models):
        yield
