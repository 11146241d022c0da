"""What a job and the rules around it share at run time: failures, logs, records."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sandflow.core.atomic import write_text_atomic
from sandflow.core.private_fs import open_no_follow


class JobFailed(RuntimeError):
    """A job could not run; the message says why."""


def load_context(path: str | Path) -> dict[str, Any]:
    with open(path) as handle:
        return json.load(handle)


def write_json(path: str | Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


@contextlib.contextmanager
def job_logging(log_path: str, mode: str = "w") -> Iterator[logging.Logger]:
    """Send our logging and Data-Juicer's loguru output to the rule's log file."""
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    stream = open(open_no_follow(log_path, mode), mode, encoding="utf-8")  # a planted symlink is refused
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield logging.getLogger("sandflow.job")
    finally:
        root.removeHandler(handler)
        handler.close()
        stream.close()


def replace_prefix(value: Any, old: str, new: str) -> Any:
    """Every path in value under ``old`` moved under ``new``."""
    if isinstance(value, str):
        return new + value[len(old) :] if value == old or value.startswith(old + os.sep) else value
    if isinstance(value, list):
        return [replace_prefix(v, old, new) for v in value]
    if isinstance(value, dict):
        return {k: replace_prefix(v, old, new) for k, v in value.items()}
    return value
