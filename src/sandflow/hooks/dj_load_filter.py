"""Data-Juicer's dataset load without its row-by-row filter when that filter keeps every row.

Loading a dataset, Data-Juicer's ``unify_format`` drops the rows whose text field is None with a Hugging Face
``filter`` that formats every row to Python (in a pool of one forked process even with ``np: 1``): about 3 s at
50,000 rows, in every Data-Juicer job. Arrow counts a column's nulls without reading a row; when no text field
holds one the filter keeps every row, and the dataset is returned as it is (the same rows, in the same order;
only Hugging Face's fingerprint differs, which no output holds). Otherwise Data-Juicer's filter runs. The
filter is recognised by its function, Data-Juicer's own ``non_empty_text`` in ``data_juicer.format.formatter``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sandflow.core.replaced import replaced

__all__ = ["load_without_identity_filter", "keeps_every_row"]

FILTER_MODULE = "data_juicer.format.formatter"
FILTER_NAME = "unify_format.<locals>.non_empty_text"


def keeps_every_row(dataset: Any, function: Any, fn_kwargs: dict[str, Any] | None) -> bool:
    """Whether this is Data-Juicer's empty-text filter and no text field of dataset holds a None."""
    if getattr(function, "__module__", None) != FILTER_MODULE or getattr(function, "__qualname__", None) != FILTER_NAME:
        return False
    keys = (fn_kwargs or {}).get("target_keys")
    if not isinstance(keys, list) or not all(isinstance(key, str) and key in dataset.column_names for key in keys):
        return False
    table = dataset.data.table  # every row, also those outside an indices mapping: a None there is counted too
    return all(table.column(key).null_count == 0 for key in keys)


@contextlib.contextmanager
def load_without_identity_filter() -> Iterator[None]:
    from data_juicer.core.data import NestedDataset

    own_filter = NestedDataset.filter

    def filter_rows(self: Any, function: Any = None, *args: Any, **kwargs: Any) -> Any:
        if keeps_every_row(self, function, kwargs.get("fn_kwargs")):
            return self
        return own_filter(self, function, *args, **kwargs)

    with replaced(NestedDataset, filter=filter_rows):
        yield
