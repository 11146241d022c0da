"""Columns of a Hugging Face dataset read and written whole with Arrow, where a row-by-row ``map`` would decode and
re-encode every column of every row. What a row read gives is Hugging Face's own formatting (not Data-Juicer's
NestedQueryDict), and what is written is encoded by the column's own feature, so values and bytes are the same.
Rows through an indices mapping (a filter's select) are taken by Arrow from the slice of the table they span."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["whole_column", "column_batches", "rows_at", "with_json_column"]

WRITE_BATCH_ROWS = 10_000  # rows taken, given their new column and written at a time


def formatted(dataset: Any, key: slice | Sequence[int]) -> dict[str, list[Any]]:
    """The rows at key (a slice or positions) formatted as one batch, as ``Dataset.__getitem__`` gives them. Rows
    that are not one slice of the table are read by Arrow's take, where Hugging Face gathers them a row at a time
    (about 5 us per row through an indices mapping)."""
    import pyarrow as pa
    from datasets import Dataset
    from datasets.formatting import format_table, get_formatter

    if dataset._indices is None and isinstance(key, slice):
        return Dataset.__getitem__(dataset, key)
    positions = pa.array(range(*key.indices(len(dataset))) if isinstance(key, slice) else key, pa.uint64())
    if not len(positions):
        return Dataset.__getitem__(dataset, key)
    rows = positions if dataset._indices is None else dataset._indices.column(0).take(positions)
    formatter = get_formatter(dataset._format_type, features=dataset._info.features, **(dataset._format_kwargs or {}))
    return format_table(
        taken(dataset.data.table, rows),
        key,
        formatter=formatter,
        format_columns=dataset._format_columns,
        output_all_columns=dataset._output_all_columns,
    )


def taken(table: Any, rows: Any) -> Any:
    """The table's rows at these positions (a non-empty Arrow array), by Arrow's take within the slice they span: a
    chunked column's take concatenates its chunks first, all of them for the whole table."""
    import pyarrow.compute as pc

    first, last = pc.min_max(rows).values()
    return table.slice(first.as_py(), last.as_py() - first.as_py() + 1).take(pc.subtract(rows, first))


def whole_column(dataset: Any, name: str) -> list[Any]:
    """A column's values as a row-by-row read gives them, formatted as one batch."""
    return formatted(dataset.select_columns([name]), slice(None))[name]


def column_batches(dataset: Any, names: Sequence[str], rows: int) -> Iterator[dict[str, list[Any]]]:
    """The named columns, formatted batch by batch of at most ``rows`` rows, in the dataset's order."""
    view = dataset.select_columns(list(names))
    for start in range(0, len(dataset), rows):
        yield formatted(view, slice(start, start + rows))


def rows_at(dataset: Any, positions: Sequence[int]) -> dict[str, list[Any]]:
    """Every column of the rows at these positions, formatted as one batch (a plain dict of lists)."""
    return dict(formatted(dataset, list(positions)))


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
            rows = (
                table.slice(start, end - start) if indices is None else taken(table, indices.slice(start, end - start))
            )
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
