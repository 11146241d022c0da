"""What names a piece of work: canonical JSON, its short sha256 digest, and library versions."""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib import metadata
from typing import Any

KEY_LENGTH = 16
# The wildcard pattern of every key and digest in a path (the Snakefile's one wildcard_constraints).
KEY_PATTERN = f"[0-9a-f]{{{KEY_LENGTH}}}"


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def digest_of(value: Any) -> str:
    """The first KEY_LENGTH hex digits of sha256 over the value's canonical JSON."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:KEY_LENGTH]


@cache
def library_version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "absent"
