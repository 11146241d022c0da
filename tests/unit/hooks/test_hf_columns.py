"""Columns read and written with Arrow (hooks/hf_columns.py): the same rows, values, column order and features as
Hugging Face's own reads and add_column give, also through an indices mapping (as a filter's select leaves)."""

from __future__ import annotations

import datasets
from datasets import Dataset, Features, Json, Value

from sandflow.hooks.hf_columns import column_batches, rows_at, whole_column, with_json_column

STATS = "__dj__stats__"


def rows(count: int, chunk: int = 3) -> Dataset:
    """Text, a struct and a Json column, in Arrow chunks of ``chunk`` rows (as a loaded dataset's table is)."""
    stats = [f'{{"n":{index}}}' for index in range(count)]
    parts = [
        Dataset.from_dict(
            {
                "text": [f"row {index}" for index in range(start, min(start + chunk, count))],
                "meta": [{"id": str(index)} for index in range(start, min(start + chunk, count))],
                STATS: stats[start : start + chunk],
            },
            features=Features({"text": Value("string"), "meta": {"id": Value("string")}, STATS: Json()}),
        )
        for start in range(0, count, chunk)
    ]
    return datasets.concatenate_datasets(parts)


def test_reads_through_an_indices_mapping_are_hugging_faces():
    selected = rows(20).select([17, 2, 3, 5, 11, 12, 13, 19, 0])
    assert selected.data.table.column("text").num_chunks == 7
    assert whole_column(selected, STATS) == Dataset.__getitem__(selected, slice(None))[STATS]
    batches = list(column_batches(selected, ["meta", "text"], 4))
    assert batches == [
        Dataset.__getitem__(selected.select_columns(["meta", "text"]), slice(s, s + 4)) for s in (0, 4, 8)
    ]
    assert rows_at(selected, [8, 1, 4]) == Dataset.__getitem__(selected, [8, 1, 4])
    assert rows_at(rows(20), [19, 0, 7]) == Dataset.__getitem__(rows(20), [19, 0, 7])


def test_a_json_column_written_through_an_indices_mapping_is_hugging_faces_add_column():
    selected = rows(20).select([4, 5, 6, 9, 15, 16])
    encoded = [f'{{"n":{index},"len":{index * 2}}}' for index in range(6)]
    ours = with_json_column(selected, STATS, encoded)
    own = selected.flatten_indices().remove_columns([STATS]).add_column(STATS, encoded, feature=Json())
    assert ours._indices is None and ours.column_names == own.column_names and ours.features == own.features
    assert ours.to_list() == own.to_list()
    added = with_json_column(selected.remove_columns([STATS]), "new", ["1", "[2]", '"x"', "null", "{}", "0.5"])
    assert added.column_names == ["text", "meta", "new"] and added["new"] == [1, [2], "x", None, {}, 0.5]
