"""Data-Juicer's stats file without its identity map (hooks/dj_stats_export.py): skipped only where the map would
return every row unchanged, on real Hugging Face datasets and Data-Juicer's own Exporter."""

from __future__ import annotations

import datasets
from datasets import Features, Json, Value

from sandflow.hooks.dj_stats_export import export_without_needless_work, map_changes_nothing, plain_json_features

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
    with export_without_needless_work():
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
    with export_without_needless_work():
        assert exported_rows(dataset)[1][STATS] == {"text_len": 6}
    assert not map_changes_nothing(json_dataset([{"a": 1}, {"a": 2}], meta=["plain", {"b": 1}]))


def test_a_struct_column_leaves_the_map_to_data_juicer():
    dataset = datasets.Dataset.from_dict({STATS: [{"text_len": 5}, {"text_len": 6}]})
    assert not map_changes_nothing(dataset)


def test_the_exporter_is_as_it_was_after_the_block():
    from data_juicer.core.exporter import Exporter

    before = Exporter.__dict__["_ensure_meta_stats_dicts_for_export"]
    with export_without_needless_work():
        assert Exporter.__dict__["_ensure_meta_stats_dicts_for_export"] is not before
    assert Exporter.__dict__["_ensure_meta_stats_dicts_for_export"] is before


def written_by(write: object, dataset: datasets.Dataset, path) -> bytes:
    write(dataset, str(path))
    return path.read_bytes()


def test_plain_json_rows_are_written_as_data_juicers_writer_writes_them(tmp_path):
    from data_juicer.core.exporter import Exporter

    rows = {
        "text": ["ascii", 'Grüße, 東京 — \u2028 "quoted"\n', ""],
        "count": [1, -(2**40), 0],
        "ratio": [0.1, float("nan"), 1e-20],
        "flag": [True, False, None],
        "tags": [["a", "ß"], [], None],
        "meta": [{"id": 1, "src": "x"}, {"id": 2, "src": None}, {"id": None, "src": "z"}],
        STATS: [{"text_len": 5, "ratio": 0.25}, {}, {"nested": {"a": [1, 2.5]}}],
    }
    features = Features(
        {
            "text": Value("string"),
            "count": Value("int64"),
            "ratio": Value("float64"),
            "flag": Value("bool"),
            "tags": datasets.List(Value("string")),
            "meta": {"id": Value("int32"), "src": Value("large_string")},
            STATS: Json(),
        }
    )
    dataset = datasets.Dataset.from_dict(rows, features=features).select([2, 0, 1])  # through an indices mapping
    own = written_by(Exporter._write_jsonl_utf8, dataset, tmp_path / "own.jsonl")
    with export_without_needless_work():
        ours = written_by(Exporter._write_jsonl_utf8, dataset, tmp_path / "ours.jsonl")
    assert plain_json_features(dataset.features) and ours == own and len(own.splitlines()) == 3


def test_values_data_juicer_converts_leave_the_writing_to_it(tmp_path):
    """A date (written as its isoformat) is not plain JSON: Data-Juicer's own writer runs, and gives the same."""
    import datetime

    from data_juicer.core.exporter import Exporter

    dataset = datasets.Dataset.from_dict({"day": [datetime.date(2026, 12, 7)], "text": ["x"]})
    assert not plain_json_features(dataset.features)
    with export_without_needless_work():
        ours = written_by(Exporter._write_jsonl_utf8, dataset, tmp_path / "ours.jsonl")
    assert ours == b'{"day": "2026-12-07", "text": "x"}\n'
