"""The analysed dataset's columns read once, as one batch (hooks/dj_analysis_cache.ColumnsReadOnce): the values a
row-by-row read gives, on a real Data-Juicer dataset with an indices mapping (as after a filter)."""

from __future__ import annotations

import datasets
from datasets import Features, Json, Value

from sandflow.hooks.dj_analysis_cache import ColumnsReadOnce

STATS = "__dj__stats__"


def test_each_column_reads_as_row_by_row_in_one_batch():
    from data_juicer.core.data import NestedDataset

    rows = 40
    dataset = datasets.Dataset.from_dict(
        {
            "text": [f"text {index} é" for index in range(rows)],
            "meta": [{"id": str(index), "tag": None if index % 3 else "x"} for index in range(rows)],
            STATS: [
                {"text_len": index, "ratio": float("nan") if index == 7 else index / 3, "words": ["a"] * (index % 4)}
                for index in range(rows)
            ],
        },
        features=Features(
            {"text": Value("string"), "meta": {"id": Value("string"), "tag": Value("string")}, STATS: Json()}
        ),
    )
    dataset = NestedDataset(dataset.select(range(1, rows, 3)))
    columns = ColumnsReadOnce(dataset)
    for name in (STATS, "meta", "text"):
        row_by_row = list(dataset[name])
        read = columns[name]
        assert type(read) is list and repr(read) == repr(row_by_row)
        assert [type(value) for value in read] == [type(value) for value in row_by_row]  # no Data-Juicer wrapper
        assert columns[name] is read  # read once
