"""A covered op's stats column (hooks/dj_stats_column.py): op after op, the same texts as the ``Json`` feature's own
encoding of each row's whole stats dict, and the same decoded stats as decoding those, as Data-Juicer's map and
filter pass give them."""

from __future__ import annotations

import hashlib

from datasets import Json

from sandflow.hooks.dj_covered_run import sample_keys
from sandflow.hooks.dj_stats_column import stats_column

FEATURE = Json()


def data_juicers(previous: list[dict], added: list[dict]) -> tuple[list[str], list[dict]]:
    """What Data-Juicer's map writes (each row's decoded stats with the op's added, encoded whole) and what its
    filter pass reads (that decoded)."""
    encoded = [FEATURE.encode_example({**row, **new}) for row, new in zip(previous, added)]
    return encoded, [FEATURE.decode_example(text) for text in encoded]


def run_ops(ops: list[list[dict]]) -> list[tuple[list[str], list[dict], bool]]:
    """Each op's column, from rows without stats, each op given what the one before returned."""
    rows = len(ops[0])
    stats, texts = [{} for _ in range(rows)], ["{}"] * rows
    columns = []
    for added in ops:
        column = stats_column(stats, added, texts)
        columns.append(
            (column.encoded, [dict(row) for row in column.stats], column.reusable)
        )  # the next op adds to them
        stats, texts = column.stats, column.encoded if column.reusable else None
    return columns


def check_against_data_juicer(ops: list[list[dict]]) -> list[bool]:
    previous = [{} for _ in ops[0]]
    reusable = []
    for (encoded, stats, column_reusable), added in zip(run_ops(ops), ops):
        own_encoded, own_stats = data_juicers(previous, added)
        assert encoded == own_encoded
        assert repr(stats) == repr(own_stats)  # the same values, types and key order (repr tells -0.0 from 0.0)
        previous = own_stats
        reusable.append(column_reusable)
    return reusable


NUMBERS = [0, 1, -7, 2**53, 0.1, 1 / 3, 1 / 7, -0.0, 2.5e-11, 123456789.123456789, 1e300, float("nan"), float("inf")]


def test_numbers_op_after_op_are_what_data_juicers_map_writes_and_reads():
    ops = [
        [{"text_len": len(str(number))} for number in NUMBERS],
        [{"ratio": number} for number in NUMBERS],
        [{"flag": index % 2 == 0, "none": None} for index in range(len(NUMBERS))],
        [{"ratio_2": number * 3} for number in reversed(NUMBERS)],
    ]
    assert check_against_data_juicer(ops) == [True, True, True, True]


def test_rows_adding_different_stats_or_none_and_values_that_are_not_numbers():
    ops = [
        [{"a": 1}, {}, {"b": 2.5, "a": 3}, {"a": 4}],
        [{"s": "x,y"}, {"s": 'Grüße, "quoted" / slash'}, {"l": [1, 0.5, "z"]}, {}],
        [{"d": {"k": 1 / 3}}, {"n": 0.2}, {"n": 0.3}, {"n": 2**40}],
    ]
    assert check_against_data_juicer(ops) == [True, True, True]


def test_a_value_that_does_not_encode_back_makes_the_next_op_encode_whole():
    """5e-324 is written 4.940656458e-324 and read back as 0.0, which is written 0.0: the text cannot be reused."""
    ops = [[{"tiny": 5e-324}, {"tiny": 0.5}], [{"next": 1}, {"next": 2}], [{"last": 0.25}, {"last": 0.75}]]
    assert check_against_data_juicer(ops) == [False, True, True]
    first, second, _ = run_ops(ops)
    assert first[0][0] == '{"tiny":4.940656458e-324}' and second[0][0] == '{"tiny":0.0,"next":1}'


def test_rows_with_stats_whose_texts_are_not_known_are_encoded_whole():
    """As after a Mapper: the stats column read back, each row's stats encoded whole, and whether those encode back."""
    previous = [{"b": 1 / 3, "a": [1, 2]}, {}]
    added = [{"c": 0.1}, {"c": 0.2}]
    column = stats_column([dict(row) for row in previous], added, None)
    assert (column.encoded, column.stats) == data_juicers(previous, added) and column.reusable
    column = stats_column([{"tiny": 5e-324}, {}], added, None)
    assert (column.encoded, column.stats) == data_juicers([{"tiny": 5e-324}, {}], added) and not column.reusable


def test_sample_keys_hash_the_stats_names_then_the_content_digest():
    """Pinned: a change of the keys must bump SAMPLE_KEY_SCHEME (hooks/dj_stats_cache.py)."""
    digest = hashlib.sha256(b"row").digest()
    keys = sample_keys([digest, digest, digest, None], [{}, {"b": 1, "a": 2}, {"a": 0, "b": 0}, {}])
    assert keys[0] == hashlib.sha256(digest).hexdigest()[:32]
    assert keys[1] == keys[2] == hashlib.sha256(b"a\0b\0" + digest).hexdigest()[:32]
    assert keys[3] is None
