"""A covered filter's run (Data-Juicer's ``Filter.run``) with its stats from the stats cache, without Hugging Face
maps: the result is the dataset Data-Juicer's run returns, the same rows, order, features and values.

Data-Juicer's run maps ``compute_stats`` over every row (each row's every column decoded to Python and encoded
back), then filters with ``process`` (every row decoded again). Here the stats column is read once, each row's
stats are looked up by its sample key, the rows the cache does not know go to the op's own ``compute_stats`` in
batches, and the new stats column is encoded as its ``Json`` feature encodes it (dj_stats_column.py) and written
with Arrow (hf_columns.py). The op's own ``process`` then decides on the stats as the map wrote them (the ``Json``
feature keeps 10 decimals, so ``process`` sees them encoded and decoded, as Data-Juicer's filter pass does).

A row's sample key is the sha256 of the names of the stats it has (a covered filter skips a stat already there)
and of the digest of its content (every field but the stats and context). The content digests are computed once
per job: a covered run remembers those of the dataset it returned, and its rows' stats decoded and encoded, which
the next covered op gets unchanged when no other op ran between them.
"""

from __future__ import annotations

import hashlib
import json
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sandflow.hooks.dj_stats_column import stats_column
from sandflow.hooks.dj_stats_store import OpStats
from sandflow.hooks.hf_columns import column_batches, rows_at, whole_column, with_json_column
from sandflow.hooks.json_rows import row_encoder

__all__ = ["CANONICAL_ENCODER", "CoveredFilterRun", "JobRows", "OpCounts", "plain_value", "sample_keys"]

STATS_FIELD = "__dj__stats__"  # data_juicer.utils.constant.Fields.stats
CONTEXT_FIELD = "__dj__context__"  # Fields.context: intermediate values fused ops share
DIGEST_BATCH_ROWS = 10_000  # rows formatted at a time to digest their content
DEFAULT_BATCH_ROWS = 1_000  # Data-Juicer's default batch size, for an op without one

CANONICAL_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True)
encode_canonical = row_encoder(CANONICAL_ENCODER)  # one encoder for every sample


def content_digest(row: dict[str, Any]) -> bytes | None:
    """sha256 of the canonical JSON of a row's content; None when a field is not plain JSON (never cached)."""
    try:
        text = encode_canonical(row)
    except (TypeError, ValueError):
        return None
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def sample_keys(digests: Sequence[bytes | None], stats: Sequence[dict[str, Any]]) -> list[str | None]:
    """The cache key of each row for an op: the names of the stats it already has (each ended by a NUL, which no
    stat name holds), then its content digest; None for a row whose content has none."""
    rows_by_names: dict[tuple[str, ...], list[int]] = {}  # the rows of a dataset share a few sets of names
    for index, row_stats in enumerate(stats):
        rows_by_names.setdefault(tuple(row_stats), []).append(index)
    keys: list[str | None] = [None] * len(stats)
    for names, rows in rows_by_names.items():
        names_hash = hashlib.sha256("".join(f"{name}\0" for name in sorted(names)).encode())
        for index in rows:
            digest = digests[index]
            if digest is not None:
                key = names_hash.copy()
                key.update(digest)
                keys[index] = key.hexdigest()[:32]
    return keys


def content_digests(dataset: Any) -> list[bytes | None]:
    columns = [name for name in dataset.column_names if name not in (STATS_FIELD, CONTEXT_FIELD)]
    digests: list[bytes | None] = []
    for batch in column_batches(dataset, columns, DIGEST_BATCH_ROWS):
        digests.extend(content_digest(dict(zip(columns, row))) for row in zip(*(batch[name] for name in columns)))
    return digests


def plain_value(value: Any) -> bool:
    """Whether a stat reads back from JSON as the same Python value and type (numpy scalars do not)."""
    kind = type(value)
    if kind in (bool, int, float, str, type(None)):
        return True
    if kind is list:
        return all(plain_value(item) for item in value)
    if kind is dict:
        return all(type(key) is str and plain_value(item) for key, item in value.items())
    return False


@dataclass
class OpCounts:
    name: str
    fingerprint: str
    hits: int = 0
    computed: int = 0
    not_cacheable: int = 0


class JobRows:
    """What the last covered run of a job returned: the dataset, and each row's content digest, its stats as its
    stats column holds them decoded and, when they are what encoding those gives, the column's texts. The next
    covered op, given that dataset, reads none of them again."""

    def __init__(self) -> None:
        self.remember(None, [], [], None)

    def take(self, dataset: Any) -> tuple[list[bytes | None], list[dict[str, Any]], list[str] | None]:
        """The rows of dataset, whose stats the caller may change: those remembered are forgotten."""
        if dataset is self.dataset:
            rows = self.digests, self.stats, self.texts
            self.remember(None, [], [], None)
            return rows
        if STATS_FIELD in dataset.features:
            return content_digests(dataset), whole_column(dataset, STATS_FIELD), None
        return content_digests(dataset), [{} for _ in range(len(dataset))], ["{}"] * len(dataset)

    def remember(
        self, dataset: Any, digests: list[bytes | None], stats: list[dict[str, Any]], texts: list[str] | None
    ) -> None:
        self.dataset, self.digests, self.stats, self.texts = dataset, digests, stats, texts


class CoveredFilterRun:
    """``op.run`` of a covered filter: Data-Juicer's ``Filter.run`` (stats, optional stats export, then the
    filter pass unless ``reduce`` is off or the Analyzer set ``process`` to None), its stats from the cache."""

    def __init__(self, op: Any, stats: OpStats, counts: OpCounts, rows: JobRows, log: Any) -> None:
        self.op = op
        self.own_run = op.run
        self.stats = stats
        self.counts = counts
        self.rows = rows
        self.log = log

    def __call__(self, dataset: Any, *, exporter: Any = None, tracer: Any = None, reduce: bool = True) -> Any:
        from data_juicer.core.data import NestedDataset
        from datasets import Json

        if not isinstance(dataset, NestedDataset):
            dataset = NestedDataset(dataset)
        feature = dataset.features.get(STATS_FIELD)
        if (feature is not None and not isinstance(feature, Json)) or getattr(self.op, "index_key", None):
            self.log.info("stats cache: %s computed as before (stats column %r)", self.counts.name, feature)
            return self.own_run(dataset, exporter=exporter, tracer=tracer, reduce=reduce)
        if not len(dataset):
            return dataset
        digests, stats, texts = self.rows.take(dataset)
        column = stats_column(stats, self.fill(dataset, digests, stats), texts)
        encoded, stats = column.encoded, column.stats
        with_stats = NestedDataset(with_json_column(dataset, STATS_FIELD, encoded))
        if exporter is not None and self.op.stats_export_path is not None:
            exporter.export_compute_stats(with_stats, self.op.stats_export_path)
        result = with_stats
        if reduce and self.op.process is not None:
            keep = self.kept_rows(with_stats, stats, tracer)
            if len(keep) < len(with_stats):
                # its own fingerprint: Hugging Face's would pickle every position to hash them
                kept = hashlib.sha256(f"{with_stats._fingerprint}\0{self.counts.name}\0".encode())
                kept.update(array("q", keep).tobytes())
                result = NestedDataset(with_stats.select(keep, new_fingerprint=kept.hexdigest()[:16]))
                digests, stats = [digests[index] for index in keep], [stats[index] for index in keep]
                encoded = [encoded[index] for index in keep]
        self.rows.remember(result, digests, stats, encoded if column.reusable else None)
        return result

    def fill(self, dataset: Any, digests: list[bytes | None], stats: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The stats this op adds to each row's: from the cache, or computed by the op (and stored)."""
        keys = sample_keys(digests, stats)
        added: list[dict[str, Any]] = [{}] * len(keys)
        missing = []
        for index, key in enumerate(keys):
            found = None if key is None else self.stats.get(key)
            if found is None:
                missing.append(index)
            else:
                added[index] = found
        self.counts.hits += len(keys) - len(missing)
        size = self.op.batch_size or DEFAULT_BATCH_ROWS
        for start in range(0, len(missing), size):
            positions = missing[start : start + size]
            for index, computed in zip(positions, self.computed(dataset, positions, stats)):
                had = stats[index]
                if list(computed)[: len(had)] != list(had) or any(
                    computed[name] is not value and computed[name] != value for name, value in had.items()
                ):
                    raise RuntimeError(
                        f"stats cache: {self.counts.name} changed a stat a sample already had, which the cache cannot "
                        "give back on a rerun; run it with SANDFLOW_STATS_CACHE=off (docs/stats-cache.md)"
                    )
                added[index] = {name: value for name, value in computed.items() if name not in had}
                if keys[index] is not None and plain_value(added[index]):
                    self.stats.add(keys[index], added[index])
                    self.counts.computed += 1
                else:
                    self.counts.not_cacheable += 1
        return added

    def computed(self, dataset: Any, positions: Sequence[int], stats: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The op's own compute_stats on these rows (each with a copy of its stats so far)."""
        batch = rows_at(dataset, positions)
        batch[STATS_FIELD] = [dict(stats[index]) for index in positions]
        before = {name: list(values) for name, values in batch.items() if name != STATS_FIELD}
        if self.op.is_batched_op():
            result = self.op.compute_stats(batch)
        else:
            rows = [self.op.compute_stats({name: batch[name][row] for name in batch}) for row in range(len(positions))]
            result = {name: [row[name] for row in rows] for name in batch}
        for name, values in result.items():
            if name != STATS_FIELD and values != before.get(name):
                raise RuntimeError(f"{self.counts.name} changed the column {name!r} computing its stats: not cacheable")
        return list(result[STATS_FIELD])

    def kept_rows(self, with_stats: Any, stats: list[dict[str, Any]], tracer: Any) -> list[int]:
        """The positions the op's process keeps, deciding on the stats as the stats column holds them."""
        from data_juicer.core.tracer import should_trace_op
        from data_juicer.ops.base_op import wrap_filter_with_tracer

        process: Callable[..., Any] = self.op.process
        batched = self.op.is_batched_op()
        size = (self.op.batch_size or DEFAULT_BATCH_ROWS) if batched else 1
        traced = tracer is not None and should_trace_op(tracer, self.counts.name)
        if traced:  # the tracer records each dropped row whole
            process = wrap_filter_with_tracer(process, self.counts.name, tracer, batched)
        keep: list[int] = []
        for start in range(0, len(stats), size):
            end = min(start + size, len(stats))
            # copies: process may not change the stats the next op reads
            if traced:
                batch = rows_at(with_stats, range(start, end))
            else:
                batch = {STATS_FIELD: [dict(row_stats) for row_stats in stats[start:end]]}
            if batched:
                flags = list(process(batch))
            else:
                flags = [process({name: values[0] for name, values in batch.items()})]
            keep.extend(start + offset for offset, flag in enumerate(flags) if flag)
        return keep
