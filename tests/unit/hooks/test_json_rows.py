"""One C encoder for many rows (hooks/json_rows.py): the same text as ``encoder.encode`` gives each row."""

from __future__ import annotations

import json

import pytest

from sandflow.hooks.json_rows import row_encoder

ROWS = [
    {"text": 'Grüße aus Köln — 東京\u2028 "quoted" \\ /', "meta": {"b": 1, "a": [1.5, None, True]}},
    {"z": float("nan"), "y": float("-inf"), "x": 1e-7, "w": -0.0, "v": 2**70, "u": {"n": {"m": []}}},
    {"ctrl": "\x00\x1f\n\t", "emoji": "\U0001f600", "lone": "\ud800"},
    {},
]
ENCODERS = [
    json.JSONEncoder(ensure_ascii=False),  # the JSON lines export's
    json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True),  # content digests'
    json.JSONEncoder(),
]


@pytest.mark.parametrize("encoder", ENCODERS, ids=["export", "canonical", "default"])
def test_rows_encode_as_the_encoders_own_encode(encoder):
    encode = row_encoder(encoder)
    assert [encode(row) for row in ROWS] == [encoder.encode(row) for row in ROWS]


def test_a_row_that_fails_leaves_the_next_ones_as_they_were():
    encode = row_encoder(ENCODERS[0])
    with pytest.raises(TypeError):
        encode({"bytes": b"x"})
    with pytest.raises(ValueError):
        row_encoder(json.JSONEncoder(allow_nan=False))({"nan": float("nan")})
    assert encode(ROWS[0]) == ENCODERS[0].encode(ROWS[0])
