"""JSON Lines: one parser for every reader, so blank lines and raw U+2028 are handled alike, and a bad line is
one line of the job's failure, '<file>:<line>: <problem>' (a JobFailed: the runner prints it without a traceback)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sandflow.core.jobio import JobFailed


class BadData(JobFailed, ValueError):
    """A dataset file that is not what the job reads, at a line (number None: the file as a whole)."""

    def __init__(self, path: str | Path, number: int | None, problem: str):
        super().__init__(f"{path}{'' if number is None else f':{number}'}: {problem}")
        self.path, self.number, self.problem = path, number, problem


class BadJsonLine(BadData):
    """Bad JSON at a line of a JSON Lines file (number None: in a file holding one JSON array)."""

    def __init__(self, path: str | Path, number: int | None, error: json.JSONDecodeError):
        column = error.colno if number is not None else f"{error.colno} of line {error.lineno}"
        super().__init__(path, number, f"not JSON ({error.msg} at column {column})")


def read_utf8(path: str | Path) -> str:
    """The file's text; bytes that are not UTF-8 are a BadData naming their line."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadData(path, data.count(b"\n", 0, exc.start) + 1, "not UTF-8 text") from None


def numbered_json_lines(path: str | Path, text: str | None = None) -> list[tuple[int, Any]]:
    """(line number, value) of every non-blank line. Split on "\\n" only, not splitlines(): JSON written
    with ensure_ascii=False may hold a raw U+2028 inside a string."""
    if text is None:
        text = read_utf8(path)
    return [(number, json_line(path, number, line)) for number, line in enumerate(text.split("\n"), 1) if line.strip()]


def json_line(path: str | Path, number: int | None, line: str) -> Any:
    """The value of one non-blank line (number None: of the whole file); a BadData naming the line when it is not
    JSON."""
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise BadJsonLine(path, number, exc) from None
    except RecursionError:
        raise BadData(path, number, "not JSON (nested too deeply)") from None


def json_object(path: str | Path, number: int, row: Any) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise BadData(path, number, "not a JSON object")
    return row


def json_rows(path: str | Path) -> tuple[list[Any], list[int] | None]:
    """The rows of a JSON Lines file, or of a file holding one JSON array (how Data-Juicer writes ``.json``
    exports), with each row's line number (None for an array)."""
    text = read_utf8(path)
    if text.lstrip().startswith("["):
        return json_line(path, None, text), None
    numbered = numbered_json_lines(path, text)
    return [row for _, row in numbered], [number for number, _ in numbered]


def read_objects(path: str | Path) -> list[dict[str, Any]]:
    """Every row of a JSON Lines file, each a JSON object."""
    return [json_object(path, number, row) for number, row in numbered_json_lines(path)]


def first_bad_row(path: str | Path) -> BadData | None:
    """The first line ``read_objects`` would refuse, in its words, found a line at a time (a dataset of any size
    stays out of memory); None when every line is a JSON object or blank."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):  # binary lines end at b"\n" only, as numbered_json_lines
            try:
                line = raw.decode("utf-8")
                if line.strip():
                    json_object(path, number, json_line(path, number, line))
            except UnicodeDecodeError:
                return BadData(path, number, "not UTF-8 text")
            except BadData as bad:
                return bad
    return None
