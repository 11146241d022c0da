"""Data-Juicer's load without its empty-text filter when it keeps every row (hooks/dj_load_filter.py): on real
files through Data-Juicer's own formatter, the rows are the ones its filter gives, and a None text still goes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandflow.hooks.dj_load_filter import keeps_every_row, load_without_identity_filter

from helpers.env import OFFLINE_ENV, environ


@pytest.fixture(autouse=True)
def offline():
    with environ(OFFLINE_ENV):
        yield


def loaded(path: Path, skip: bool) -> tuple[list[dict], bool]:
    """The rows Data-Juicer's JSON formatter loads from path (its text in "text", as a job's default text_keys
    says), and whether its filter ran over them."""
    from data_juicer.core.data import NestedDataset
    from data_juicer.format.load import load_formatter

    calls = []
    own = NestedDataset.filter

    def counted(self, function=None, *args, **kwargs):
        calls.append(getattr(function, "__qualname__", None))
        return own(self, function, *args, **kwargs)

    NestedDataset.filter = counted  # under the block's replacement: it sees what reaches Data-Juicer's filter
    try:
        if skip:
            with load_without_identity_filter():
                dataset = load_formatter(str(path), text_keys=["text"]).load_dataset()
        else:
            dataset = load_formatter(str(path), text_keys=["text"]).load_dataset()
    finally:
        NestedDataset.filter = own
    return dataset.to_list(), bool(calls)


def write_rows(path: Path, texts: list) -> Path:
    path.write_text(
        "".join(json.dumps({"text": text, "meta": {"n": index}}) + "\n" for index, text in enumerate(texts))
    )
    return path


def test_texts_without_a_none_load_as_data_juicer_loads_them_without_its_filter(tmp_path):
    path = write_rows(tmp_path / "rows.jsonl", ["one", "", "Grüße", "  "])
    own, filtered = loaded(path, skip=False)
    ours, filtered_ours = loaded(path, skip=True)
    assert filtered and not filtered_ours and ours == own and len(own) == 4


def test_a_none_text_is_dropped_by_data_juicers_own_filter(tmp_path):
    path = write_rows(tmp_path / "rows.jsonl", ["one", None, "three"])
    own, _ = loaded(path, skip=False)
    ours, filtered_ours = loaded(path, skip=True)
    assert filtered_ours and ours == own and [row["text"] for row in own] == ["one", "three"]


def test_only_data_juicers_empty_text_filter_is_recognised(tmp_path):
    import datasets

    dataset = datasets.Dataset.from_dict({"text": ["a", "b"]})

    def non_empty_text(sample, target_keys):  # the same name, not Data-Juicer's function
        return True

    assert not keeps_every_row(dataset, non_empty_text, {"target_keys": ["text"]})
