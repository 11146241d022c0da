"""What a job and the rules around it share at run time: failures, logs, records."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sandflow.core.atomic import write_text_atomic
from sandflow.core.private_fs import open_no_follow


class JobFailed(RuntimeError):
    """A job could not run; the message says why."""


IN_THE_LOG = "(traceback in the job's log)"
FIRST_LINE_CHARS = 300


def error_line(exc: BaseException) -> str:
    """An error from code that is not sandflow's, in one line for the terminal: its type and first line, and those
    of the error at the root of its chain (``raise ... from``), since libraries wrap the parser's error, which names
    the problem, in their own. The traceback belongs in the job's log."""
    root, seen = exc, {id(exc)}
    while root.__cause__ is not None and id(root.__cause__) not in seen:
        root = root.__cause__
        seen.add(id(root))
    return first_line(exc) if root is exc else f"{first_line(exc)}, from {first_line(root)}"


def first_line(error: BaseException) -> str:
    """The error's type and the first line of its message, cut at FIRST_LINE_CHARS (some libraries put a whole
    row or array in it)."""
    text = str(error).strip()
    line = text.splitlines()[0] if text else ""
    if len(line) > FIRST_LINE_CHARS:
        line = line[: FIRST_LINE_CHARS - 3] + "..."
    return f"{type(error).__name__}: {line}" if line else type(error).__name__


def load_context(path: str | Path) -> dict[str, Any]:
    with open(path) as handle:
        return json.load(handle)


def write_json(path: str | Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


@contextlib.contextmanager
def job_logging(log_path: str, mode: str = "w") -> Iterator[logging.Logger]:
    """Send our logging and Data-Juicer's loguru output to the rule's log file."""
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    # Appending even after truncating: output_to_log writes into the same file through descriptors of its own.
    fd = open_no_follow(log_path, "a")  # a planted symlink is refused
    if mode == "w":
        os.ftruncate(fd, 0)
    stream = open(fd, "a", encoding="utf-8")
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


# While output_to_log holds stdout and stderr: a descriptor of the stderr they replaced (the run's terminal).
_terminal_fd: int | None = None


def terminal_note(message: str) -> None:
    """One line for the user on the terminal of the run, also from inside output_to_log (a warning a job
    wants seen; everything else a job writes belongs in its log)."""
    if _terminal_fd is None:
        print(message, file=sys.stderr)
    else:
        os.write(_terminal_fd, f"{message}\n".encode())


@contextlib.contextmanager
def output_to_log(log_path: str) -> Iterator[None]:
    """The process's stdout and stderr appended to the job's log while the block runs.

    At the file descriptors, so that what libraries write there (tqdm's progress bars, warnings, C code,
    subprocesses) lands in the log too and not on the terminal of the run; restored after, so a job's
    one-line failure message still reaches the terminal (terminal_note: a line for it meanwhile)."""
    global _terminal_fd
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    log_fd = open_no_follow(log_path, "a")
    saved = [os.dup(1), os.dup(2)]
    try:
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        _terminal_fd = saved[1]
        yield
    finally:
        _terminal_fd = None
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        for target, fd in enumerate(saved, start=1):
            os.dup2(fd, target)
        for fd in (*saved, log_fd):
            os.close(fd)


def replace_prefix(value: Any, old: str, new: str) -> Any:
    """Every path in value under ``old`` moved under ``new``."""
    if isinstance(value, str):
        return new + value[len(old) :] if value == old or value.startswith(old + os.sep) else value
    if isinstance(value, list):
        return [replace_prefix(v, old, new) for v in value]
    if isinstance(value, dict):
        return {k: replace_prefix(v, old, new) for k, v in value.items()}
    return value
