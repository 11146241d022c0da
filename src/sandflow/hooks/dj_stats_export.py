"""Data-Juicer's export without work that changes nothing, for JSON lines exports.

* Before writing ``<export>_stats.jsonl`` Data-Juicer's Exporter runs a row-by-row ``map`` over the stats and meta
  columns (``_ensure_meta_stats_dicts_for_export``) that parses a value stored as a JSON string back to an object.
  With Hugging Face datasets' ``Json`` features (what these columns are in a Data-Juicer job here) every value
  reads back as the object it was, so the map changes nothing unless a value is itself a string: it returns each
  row as it came and re-encodes it, about half the export's time. It is skipped when every such column is
  ``Json`` and no stored value is a JSON string; otherwise Data-Juicer's own runs.
* Its JSON lines writer (``_write_jsonl_utf8``) converts each value of each row for JSON (dates, numpy and Arrow
  scalars) and builds a new JSON encoder per row. When every column's feature reads back as plain JSON values
  (strings, numbers, booleans, nulls, ``Json``, and structs and lists of those) the conversion returns each row
  as it came: then the rows are written by one encoder with the same settings; otherwise Data-Juicer's own runs.

Every file is the same bytes either way (tests/workflow/test_stats_cache.py compares them with the cache, and
this, off; tests/unit/hooks/test_dj_stats_export.py with Data-Juicer's own code).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any

from sandflow.core.replaced import replaced
from sandflow.hooks.hf_columns import column_batches
from sandflow.hooks.json_rows import row_encoder

__all__ = ["export_without_needless_work", "map_changes_nothing", "plain_json_features"]

STATS_AND_META = ("__dj__stats__", "__dj__meta__")  # data_juicer.utils.constant.Fields.stats, Fields.meta
JSON_STRING = r'^\s*"'  # a stored JSON text whose value is a string
WRITE_BATCH_ROWS = 1_000  # as Data-Juicer's writer
# Arrow types whose values Hugging Face formats as Python str, int, float, bool or None.
PLAIN_VALUE_TYPES = frozenset(
    {"null", "bool", "string", "large_string", "float16", "float32", "float64"}
    | {f"{sign}int{bits}" for sign in ("", "u") for bits in (8, 16, 32, 64)}
)


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


def plain_json_features(feature: Any) -> bool:
    """Whether every value a feature (or a dict of them) reads back as is plain JSON, which Data-Juicer's
    conversion for JSON returns as it came."""
    from datasets import Json, LargeList, List, Value

    if isinstance(feature, dict):
        return all(plain_json_features(item) for item in feature.values())
    if isinstance(feature, Json):
        return True
    if isinstance(feature, Value):
        return feature.dtype in PLAIN_VALUE_TYPES
    if isinstance(feature, (List, LargeList)):
        return plain_json_features(feature.feature)
    return False


def write_plain_jsonl(dataset: Any, export_path: str) -> None:
    """Data-Juicer's JSON lines writer for rows of plain JSON values: the same lines, by one encoder."""
    encode = row_encoder(json.JSONEncoder(ensure_ascii=False))  # json.dumps(row, ensure_ascii=False) per row
    names = dataset.column_names
    os.makedirs(os.path.dirname(os.path.abspath(export_path)), exist_ok=True)
    with open(export_path, "w", encoding="utf-8") as handle:
        for batch in column_batches(dataset, names, WRITE_BATCH_ROWS):
            handle.writelines(encode(dict(zip(names, row))) + "\n" for row in zip(*(batch[name] for name in names)))


@contextlib.contextmanager
def export_without_needless_work() -> Iterator[None]:
    from data_juicer.core.exporter import Exporter

    parse_back = Exporter._ensure_meta_stats_dicts_for_export
    own_writer = Exporter._write_jsonl_utf8

    def ensure_dicts(dataset: Any) -> Any:
        return dataset if map_changes_nothing(dataset) else parse_back(dataset)

    def write_jsonl(dataset: Any, export_path: str, storage_options: Any = None) -> None:
        if storage_options is None and plain_json_features(dataset.features):
            write_plain_jsonl(dataset, export_path)
        else:
            own_writer(dataset, export_path, storage_options)

    with replaced(
        Exporter,
        _ensure_meta_stats_dicts_for_export=staticmethod(ensure_dicts),
        _write_jsonl_utf8=staticmethod(write_jsonl),
    ):
        yield
