"""The analysis cache on disk: per figure key, the figure's bytes in a file named by their sha256.

    <work_dir>/stats-cache/analysis/<figure key>/key.json          what the key stands for (for people)
    <work_dir>/stats-cache/analysis/<figure key>/<sha256>.png      the figure Data-Juicer drew for that key

The discipline is the stats cache's (hooks/dj_stats_store.py): nothing is ever rewritten, each file is written
under a temp name and renamed, so jobs in parallel processes or on nodes sharing the work_dir add figures without
locks and a reader never sees part of one; two jobs that drew the same figure write the same name. A file whose
name is not the sha256 of its bytes (a torn copy, an edit) or that is not a regular file is skipped, and a key
with two different intact figures (drawing that is not deterministic) is drawn again, never guessed.

No Data-Juicer or matplotlib import here: ``figures_size`` is what a command can call to report the size.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandflow.core.atomic import write_bytes_atomic, write_text_atomic
from sandflow.core.filehash import sha256_bytes
from sandflow.core.private_fs import ensure_within
from sandflow.core.store_size import two_level_size

ANALYSIS_SUBDIR = "analysis"  # under <work_dir>/stats-cache
PROBES_SUBDIR = "probes"  # the same layout, for the files of whole probes (hooks/dj_probe_reuse.py)
KEY_RECORD = "key.json"


def _regular_file(path: Path) -> bool:
    """A regular file, not a symlink, FIFO or device (reading a planted FIFO would block the job)."""
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except FileNotFoundError:
        return False


@dataclass(frozen=True)
class FiguresSize:
    keys: int
    figures: int
    bytes: int

    def __str__(self) -> str:
        return f"{self.bytes / 1e6:.1f} MB in {self.figures} figure(s) of {self.keys} key(s)"


def figures_size(directory: str | Path) -> FiguresSize:
    """How much the analysis cache under directory holds (all zeros when there is none)."""
    return FiguresSize(*two_level_size(directory, _regular_file, KEY_RECORD))


@dataclass
class FigureStore:
    """The figures of one work_dir's analysis cache: what earlier jobs stored, and what this job adds (also the
    files of stored probes, hooks/dj_probe_reuse.py)."""

    directory: Path  # <work_dir>/stats-cache/analysis (or probes)
    work_dir: Path
    name: str = "the analysis cache"  # in the error that refuses a directory leading out of work_dir
    skipped: list[str] = field(default_factory=list)  # <key>/<file> whose name is not the sha256 of its bytes
    ambiguous: list[str] = field(default_factory=list)  # keys with two different intact figures
    pending: dict[str, tuple[dict[str, Any], bytes, str]] = field(default_factory=dict)

    def _key_dir(self, key: str) -> Path:
        directory = self.directory / key
        ensure_within(directory / KEY_RECORD, self.work_dir, self.name)
        return directory

    def get(self, key: str, suffix: str) -> bytes | None:
        """The figure stored for key, or None (never stored, or not one intact figure)."""
        directory = self._key_dir(key)
        if not directory.is_dir():
            return None
        intact: dict[str, bytes] = {}
        for path in sorted(directory.iterdir()):
            if path.suffix != suffix or path.name.startswith("."):
                continue
            data = path.read_bytes() if _regular_file(path) else b""
            if sha256_bytes(data) == path.stem:
                intact[path.stem] = data
            else:
                self.skipped.append(f"{key}/{path.name}")
        if len(intact) > 1:
            self.ambiguous.append(key)
        return next(iter(intact.values())) if len(intact) == 1 else None

    def add(self, key: str, description: dict[str, Any], data: bytes, suffix: str) -> None:
        """Keep a figure this job drew, to be written by ``flush`` once the job's analysis succeeded."""
        self.pending[key] = (description, data, suffix)

    def flush(self) -> int:
        """Write the figures this job drew; the number written."""
        for key, (description, data, suffix) in self.pending.items():
            directory = self._key_dir(key)
            directory.mkdir(parents=True, exist_ok=True)
            record = directory / KEY_RECORD
            if not record.exists():
                write_text_atomic(record, json.dumps(description, indent=2, sort_keys=True) + "\n")
            write_bytes_atomic(directory / f"{sha256_bytes(data)}{suffix}", data)
        written = len(self.pending)
        self.pending = {}
        return written


def size_line(directory: str | Path) -> str:
    return f"analysis cache {os.fspath(directory)}: {figures_size(directory)}"
