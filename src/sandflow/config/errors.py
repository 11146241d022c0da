"""A bad config: the error every check raises, and how messages name places and values."""

from __future__ import annotations

import difflib
import sys
from collections.abc import Iterable
from typing import Any


class ConfigError(Exception):
    """A bad config: one line naming where it is. The CLI and the Snakefile exit 2 on it."""

    def __init__(self, where: str, message: str):
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where
        self.message = message


def print_error(*parts: object) -> int:
    """The one line a failed command prints, 'sandflow: error: <part>: ...: <message>'; returns exit code 2."""
    print("sandflow: error: " + ": ".join(str(part) for part in parts), file=sys.stderr)
    return 2


def config_path(*parts: str | int) -> str:
    """Render a location in the config: ('pipelines', 'p1', 'jobs', 2, 'input', 'a.b') -> pipelines.p1.jobs[2].input['a.b']."""
    out = ""
    for part in parts:
        if not isinstance(part, (str, int)) or isinstance(part, bool):
            out += f"[{part!r}]"
        elif isinstance(part, int):
            out += f"[{part}]"
        elif part.replace("_", "").replace("-", "").isalnum():
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def suggest(name: str, choices: Iterable[str], most: int = 8) -> str:
    """' (did you mean ...?)' when one is close, else the choices themselves when there are few."""
    choices = sorted(set(choices))
    hint = did_you_mean(name, choices)
    if hint or not choices or len(choices) > most:
        return hint
    return f" (known: {', '.join(choices)})"


def describe_value(value: Any) -> str:
    """How an error message names a value the user gave: its kind, and the value when it is short."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value!r}" if len(value) <= 60 else "a string"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def child_path(where: str, part: str | int) -> str:
    rendered = config_path(part)
    return where + (rendered if rendered.startswith("[") else "." + rendered)
