"""The stats cache on disk: per op fingerprint, immutable segment files named by the sha256 of their bytes.

    <work_dir>/stats-cache/<op fingerprint>/op.json            what the fingerprint stands for (for people)
    <work_dir>/stats-cache/<op fingerprint>/<sha256>.json      {"entries": {<sample digest>: {<stat>: value}}}

A job adds one segment per op with the stats it computed; nothing is ever rewritten, so any number of jobs
(processes, nodes sharing the work_dir) may add at once without locks: each segment is written under a temp
name and renamed, two jobs that computed the same entries write the same name, and a reader loads every
segment of the fingerprint. A segment whose name is not the sha256 of its bytes (a torn copy, an edit, a file
planted by hand) is skipped, so a stat read from the cache is always one that an op computed.

No Data-Juicer import here: ``cache_size`` is what a command can call to report the cache's size.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandflow.core.atomic import write_text_atomic
from sandflow.core.filehash import sha256_bytes
from sandflow.core.private_fs import ensure_within
from sandflow.core.store_size import two_level_size
from sandflow.hooks.dj_figure_store import ANALYSIS_SUBDIR, PROBES_SUBDIR

OP_RECORD = "op.json"
SEGMENT_SUFFIX = ".json"

Entries = dict[str, dict[str, Any]]  # sample digest -> the stats the op added to that sample


@dataclass(frozen=True)
class CacheSize:
    ops: int
    segments: int
    bytes: int

    def __str__(self) -> str:
        return f"{self.bytes / 1e6:.1f} MB in {self.segments} segment(s) of {self.ops} op fingerprint(s)"


def cache_size(cache_dir: str | Path) -> CacheSize:
    """How much the stats cache under cache_dir holds, less its analysis figures and stored probes (all zeros when
    there is none)."""
    return CacheSize(*two_level_size(cache_dir, _segment, OP_RECORD, (ANALYSIS_SUBDIR, PROBES_SUBDIR)))


def _segment(path: Path) -> bool:
    return path.suffix == SEGMENT_SUFFIX


class OpStats:
    """The cached stats of one op fingerprint: what earlier jobs stored, and what this job adds."""

    def __init__(self, cache_dir: str | Path, fingerprint: str, description: dict[str, Any]) -> None:
        self.directory = Path(cache_dir) / fingerprint
        self.description = description
        self.known: Entries = {}
        self.added: Entries = {}
        self.skipped_segments: list[str] = []

    def load(self, work_dir: str | Path) -> None:
        """Read every intact segment; refuse a cache directory that leads out of work_dir (a planted symlink)."""
        ensure_within(self.directory / OP_RECORD, work_dir, "the stats cache")
        if not self.directory.is_dir():
            return
        for path in sorted(self.directory.iterdir()):
            if path.suffix != SEGMENT_SUFFIX or path.name == OP_RECORD or path.name.startswith("."):
                continue
            data = path.read_bytes() if not path.is_symlink() else b""
            if sha256_bytes(data) != path.stem:
                self.skipped_segments.append(path.name)
                continue
            self.known.update(json.loads(data)["entries"])

    def get(self, digest: str) -> dict[str, Any] | None:
        found = self.known.get(digest)
        return found if found is not None else self.added.get(digest)

    def add(self, digest: str, stats: dict[str, Any]) -> None:
        self.added[digest] = stats

    def flush(self, work_dir: str | Path) -> int:
        """Write what this job added as one segment; the number of entries written."""
        if not self.added:
            return 0
        ensure_within(self.directory / OP_RECORD, work_dir, "the stats cache")
        self.directory.mkdir(parents=True, exist_ok=True)
        record = self.directory / OP_RECORD
        if not record.exists():
            write_text_atomic(record, json.dumps(self.description, indent=2, sort_keys=True) + "\n")
        # Not sort_keys: an entry's stats keep the order the op added them in (the order of the stats columns).
        text = json.dumps({"entries": self.added}, separators=(",", ":"), ensure_ascii=False)
        write_text_atomic(self.directory / f"{sha256_bytes(text.encode())}{SEGMENT_SUFFIX}", text)
        written = len(self.added)
        self.known.update(self.added)
        self.added = {}
        return written

    def __getstate__(self) -> dict[str, Any]:
        # A copy in another process (Data-Juicer pickles ops to its workers) carries no entries: it reads none
        # and adds none (dj_stats_cache wraps only ops that run in the job's own process).
        return {**self.__dict__, "known": {}, "added": {}}


def size_line(cache_dir: str | Path) -> str:
    return f"stats cache {os.fspath(cache_dir)}: {cache_size(cache_dir)}"
