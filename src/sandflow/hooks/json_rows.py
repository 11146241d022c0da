"""Encoding many rows with one ``json.JSONEncoder``: ``encode`` builds the C encoder again for every value (about
1.5 us of a 400-character row's 4 us); this builds it once, with the encoder's settings, as ``encode`` would."""

from __future__ import annotations

import json
from collections.abc import Callable
from json import encoder as json_encoder
from typing import Any

__all__ = ["row_encoder"]


def row_encoder(encoder: json.JSONEncoder) -> Callable[[Any], str]:
    """``encoder.encode`` for values that are not a str, with no check for circular references (rows read from a
    dataset hold none). Where Python has no C encoder, or with an indent, it is ``encoder.encode`` itself."""
    if json_encoder.c_make_encoder is None or encoder.indent is not None:
        return encoder.encode
    iterencode = json_encoder.c_make_encoder(
        None,  # markers: a dict of the ids being encoded, left stale by an encoding that failed
        encoder.default,
        json_encoder.encode_basestring_ascii if encoder.ensure_ascii else json_encoder.encode_basestring,
        encoder.indent,
        encoder.key_separator,
        encoder.item_separator,
        encoder.sort_keys,
        encoder.skipkeys,
        encoder.allow_nan,
    )
    return lambda value: "".join(iterencode(value, 0))
