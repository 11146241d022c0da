"""Columns of a Hugging Face dataset read and written whole with Arrow, where a row-by-row ``map`` would decode and
re-encode every column of every row. What a row read gives is Hugging Face's own formatting (not Data-Juicer's
NestedQueryDict), and what is written is encoded by the column's own feature, so values and bytes are the same."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["whole_column", "column_batches", "rows_at", "with_json_column"]

WRITE_BATCH_ROWS = 10_000  # rows taken, given their new column and written at a time


def whole_column(dataset: Any, name: str) -> list[Any]:
    """A column's values as a row-by-row read gives them, formatted as one batch."""
    from datasets import Dataset

    return Dataset.__getitem__(dataset.select_columns([name]), slice(None))[name]


def column_batches(dataset: Any, names: Sequence[str], rows: int) -> Iterator[dict[str, list[Any]]]:
    """The named columns, formatted batch by batch of at most ``rows`` rows, in the dataset's order."""
    from datasets import Dataset

    view = dataset.select_columns(list(names))
    for start in range(0, len(dataset), rows):
        yield Dataset.__getitem__(view, slice(start, start + rows))


def rows_at(dataset: Any, positions: Sequence[int]) -> dict[str, list[Any]]:
    """Every column of the rows at these positions, formatted as one batch (a plain dict of lists)."""
    from datasets import Dataset

    return dict(Dataset.__getitem__(dataset, list(positions)))


def with_json_column(dataset: Any, name: str, encoded: Sequence[str | None]) -> Any:
    """The dataset's rows with column ``name`` (a ``Json`` feature) holding these encoded values, in place of the
    column if it is there, after the others otherwise. Written batch by batch with Arrow's own take and append (no
    row passes through Python) to a file in Hugging Face's temporary cache directory, as a map would have written
    its result, and memory-mapped from there."""
    import pyarrow as pa
    from datasets import Dataset, Features, Json
    from datasets.fingerprint import get_temporary_cache_files_directory

    if not len(dataset):  # as Hugging Face's map of no rows: the dataset as it is
        return dataset
    features = Features({**dataset.features, name: Json()})
    column_type = features.arrow_schema.field(name).type
    table = dataset.data.table
    indices = None if dataset._indices is None else dataset._indices.column(0)
    path = os.path.join(get_temporary_cache_files_directory(), f"sandflow-{name}-{uuid.uuid4().hex}.arrow")
    with pa.OSFile(path, "wb") as sink:
        writer = None
        for start in range(0, len(dataset), WRITE_BATCH_ROWS):
            end = min(start + WRITE_BATCH_ROWS, len(dataset))
            rows = table.slice(start, end - start) if indices is None else table.take(indices.slice(start, end - start))
            values = pa.ExtensionArray.from_storage(column_type, pa.array(encoded[start:end], column_type.storage_type))
            if name in rows.column_names:
                rows = rows.set_column(rows.column_names.index(name), name, values)
            else:
                rows = rows.append_column(name, values)
            rows = rows.replace_schema_metadata(features.arrow_schema.metadata)
            if writer is None:
                writer = pa.ipc.new_stream(sink, rows.schema)
            writer.write_table(rows)
        assert writer is not None
        writer.close()
    info = dataset.info.copy()
    info.features = features
    return Dataset.from_file(path, info=info, split=dataset.split)
