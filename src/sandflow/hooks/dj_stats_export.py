"""Data-Juicer's stats file written without its identity map.

Before writing ``<export>_stats.jsonl`` Data-Juicer's Exporter runs a row-by-row ``map`` over the stats and meta
columns (``_ensure_meta_stats_dicts_for_export``) that parses a value stored as a JSON string back to an object.
With Hugging Face datasets' ``Json`` features (what these columns are in a Data-Juicer job here) every value
reads back as the object it was, so the map changes nothing unless a value is itself a string: it returns each
row as it came and re-encodes it, about half the export's time. Within ``stats_export_without_identity_map`` the
map is skipped when every such column is ``Json`` and no stored value is a JSON string; otherwise Data-Juicer's
own runs. The stats file is the same bytes either way (tests/workflow/test_stats_cache.py compares it with the
cache, and this, off).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sandflow.core.replaced import replaced

__all__ = ["stats_export_without_identity_map"]

STATS_AND_META = ("__dj__stats__", "__dj__meta__")  # data_juicer.utils.constant.Fields.stats, Fields.meta
JSON_STRING = r'^\s*"'  # a stored JSON text whose value is a string


def map_changes_nothing(dataset: Any) -> bool:
    """Whether Data-Juicer's parse-back map would return every row of dataset unchanged."""
    import pyarrow.compute as pc
    from datasets import Json

    for name in STATS_AND_META:
        if name not in dataset.column_names:
            continue
        if not isinstance(dataset.features[name], Json):
            return False
        for chunk in dataset.data.column(name).chunks:
            if pc.any(pc.match_substring_regex(chunk.storage, JSON_STRING)).as_py():
                return False
    return True


@contextlib.contextmanager
def stats_export_without_identity_map() -> Iterator[None]:
    from data_juicer.core.exporter import Exporter

    parse_back = Exporter._ensure_meta_stats_dicts_for_export

    def ensure_dicts(dataset: Any) -> Any:
        return dataset if map_changes_nothing(dataset) else parse_back(dataset)

    with replaced(Exporter, _ensure_meta_stats_dicts_for_export=staticmethod(ensure_dicts)):
        yield
