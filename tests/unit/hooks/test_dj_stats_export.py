"""Data-Juicer's stats file without its identity map (hooks/dj_stats_export.py): skipped only where the map would
return every row unchanged, on real Hugging Face datasets and Data-Juicer's own Exporter."""

from __future__ import annotations

import datasets
from datasets import Features, Json, Value

from sandflow.hooks.dj_stats_export import map_changes_nothing, stats_export_without_identity_map

STATS = "__dj__stats__"
META = "__dj__meta__"


def json_dataset(stats: list, meta: list | None = None) -> datasets.Dataset:
    columns = {"text": [f"row {index}" for index in range(len(stats))], STATS: stats}
    features = {"text": Value("string"), STATS: Json()}
    if meta is not None:
        columns[META] = meta
        features[META] = Json()
    return datasets.Dataset.from_dict(columns, features=Features(features))


def exported_rows(dataset: datasets.Dataset) -> list[dict]:
    from data_juicer.core.exporter import Exporter

    return list(Exporter._ensure_meta_stats_dicts_for_export(dataset.select_columns([STATS])))


def test_json_objects_need_no_map_and_read_back_as_data_juicers_map_gives_them():
    dataset = json_dataset([{"text_len": 5, "ratio": 0.25}, {}, {"text_len": 7, "ratio": float("nan")}])
    own = exported_rows(dataset)
    with stats_export_without_identity_map():
        ours = exported_rows(dataset)
        from data_juicer.core.exporter import Exporter

        assert Exporter._ensure_meta_stats_dicts_for_export(dataset) is dataset  # no map ran
    assert repr(ours) == repr(own)  # nan included


def test_a_string_value_leaves_the_map_to_data_juicer():
    """A value that reads back as a string holding JSON is parsed by Data-Juicer's map: it must run."""
    dataset = json_dataset([{"text_len": 5}, '"{\\"text_len\\": 6}"'])
    assert dataset[1][STATS] == '{"text_len": 6}'
    assert not map_changes_nothing(dataset)
    assert exported_rows(dataset)[1][STATS] == {"text_len": 6}
    with stats_export_without_identity_map():
        assert exported_rows(dataset)[1][STATS] == {"text_len": 6}
    assert not map_changes_nothing(json_dataset([{"a": 1}, {"a": 2}], meta=["plain", {"b": 1}]))


def test_a_struct_column_leaves_the_map_to_data_juicer():
    dataset = datasets.Dataset.from_dict({STATS: [{"text_len": 5}, {"text_len": 6}]})
    assert not map_changes_nothing(dataset)


def test_the_exporter_is_as_it_was_after_the_block():
    from data_juicer.core.exporter import Exporter

    before = Exporter.__dict__["_ensure_meta_stats_dicts_for_export"]
    with stats_export_without_identity_map():
        assert Exporter.__dict__["_ensure_meta_stats_dicts_for_export"] is not before
    assert Exporter.__dict__["_ensure_meta_stats_dicts_for_export"] is before
