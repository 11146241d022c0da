"""JSON Lines: one parser for every reader, so blank lines and raw U+2028 are handled alike."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class BadJsonLine(ValueError):
    """Bad JSON at a line of a JSON Lines file (number None: in a file holding one JSON array)."""

    def __init__(self, path: str | Path, number: int | None, error: json.JSONDecodeError):
        super().__init__(f"{path}{'' if number is None else f' line {number}'} is not JSON: {error}")
        self.path, self.number, self.error = path, number, error


def numbered_json_lines(path: str | Path, text: str | None = None) -> list[tuple[int, Any]]:
    """(line number, value) of every non-blank line. Split on "\\n" only, not splitlines(): JSON written
    with ensure_ascii=False may hold a raw U+2028 inside a string."""
    if text is None:
        text = Path(path).read_text(encoding="utf-8")
    rows = []
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            try:
                rows.append((number, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise BadJsonLine(path, number, exc) from None
    return rows


def json_rows(path: str | Path) -> tuple[list[Any], list[int] | None]:
    """The rows of a JSON Lines file, or of a file holding one JSON array (how Data-Juicer writes ``.json``
    exports), with each row's line number (None for an array)."""
    text = Path(path).read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        try:
            return json.loads(text), None
        except json.JSONDecodeError as exc:
            raise BadJsonLine(path, None, exc) from None
    numbered = numbered_json_lines(path, text)
    return [row for _, row in numbered], [number for number, _ in numbered]


def read_objects(path: str | Path) -> list[dict[str, Any]]:
    """Every row of a JSON Lines file, each a JSON object."""
    rows = []
    for number, row in numbered_json_lines(path):
        if not isinstance(row, dict):
            raise ValueError(f"{path} line {number} is not a JSON object")
        rows.append(row)
    return rows
