"""A covered filter's run (Data-Juicer's ``Filter.run``) with its stats from the stats cache, without Hugging Face
maps: the result is the dataset Data-Juicer's run returns, the same rows, order, features and values.

Data-Juicer's run maps ``compute_stats`` over every row (each row's every column decoded to Python and encoded
back), then filters with ``process`` (every row decoded again). Here the stats column is read once, each row's
stats are looked up by its sample key, the rows the cache does not know go to the op's own ``compute_stats`` in
batches, and the new stats column is encoded by its ``Json`` feature and written with Arrow (hf_columns.py). The
op's own ``process`` then decides on the stats as the map wrote them (the ``Json`` feature keeps 10 significant
digits, so ``process`` sees them encoded and decoded, as Data-Juicer's filter pass does).

A row's sample key is the sha256 of the digest of its content (every field but the stats and context) and of the
names of the stats it has (a covered filter skips a stat already there). The content digests are computed once per
job: a covered run remembers those of the dataset it returned, which the next covered op gets unchanged when no
other op ran between them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sandflow.hooks.dj_stats_store import OpStats
from sandflow.hooks.hf_columns import column_batches, rows_at, whole_column, with_json_column

__all__ = ["CANONICAL_ENCODER", "CoveredFilterRun", "JobRows", "OpCounts", "plain_value", "sample_key"]

STATS_FIELD = "__dj__stats__"  # data_juicer.utils.constant.Fields.stats
CONTEXT_FIELD = "__dj__context__"  # Fields.context: intermediate values fused ops share
DIGEST_BATCH_ROWS = 10_000  # rows formatted at a time to digest their content
DEFAULT_BATCH_ROWS = 1_000  # Data-Juicer's default batch size, for an op without one

# One encoder for every sample (json.dumps with options builds a new one per call).
CANONICAL_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True)


def content_digest(row: dict[str, Any]) -> bytes | None:
    """sha256 of the canonical JSON of a row's content; None when a field is not plain JSON (never cached)."""
    try:
        text = CANONICAL_ENCODER.encode(row)
    except (TypeError, ValueError):
        return None
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def sample_key(content: bytes | None, stats: dict[str, Any]) -> str | None:
    """The cache key of a row for an op: its content digest and the names of the stats it already has (stat
    names hold no NUL)."""
    if content is None:
        return None
    return hashlib.sha256(content + "\0".join(["", *sorted(stats)]).encode()).hexdigest()[:32]


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
    """What the last covered run of a job returned: the dataset, and each row's content digest and stats as its
    stats column holds them. The next covered op, given that dataset, reads neither again."""

    def __init__(self) -> None:
        self.dataset: Any = None
        self.digests: list[bytes | None] = []
        self.stats: list[dict[str, Any]] = []

    def of(self, dataset: Any) -> tuple[list[bytes | None], list[dict[str, Any]]]:
        if dataset is self.dataset:
            return self.digests, self.stats
        if STATS_FIELD in dataset.features:
            return content_digests(dataset), whole_column(dataset, STATS_FIELD)
        return content_digests(dataset), [{} for _ in range(len(dataset))]

    def remember(self, dataset: Any, digests: list[bytes | None], stats: list[dict[str, Any]]) -> None:
        self.dataset, self.digests, self.stats = dataset, digests, stats


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
        digests, stats = self.rows.of(dataset)
        stats = [dict(row_stats) for row_stats in stats]  # the remembered ones stay as their dataset holds them
        self.fill(dataset, digests, stats)
        json_feature = Json()
        encoded = [json_feature.encode_example(row_stats) for row_stats in stats]
        stats = [json_feature.decode_example(value) for value in encoded]  # what the stats column holds
        with_stats = NestedDataset(with_json_column(dataset, STATS_FIELD, encoded))
        if exporter is not None and self.op.stats_export_path is not None:
            exporter.export_compute_stats(with_stats, self.op.stats_export_path)
        result = with_stats
        if reduce and self.op.process is not None:
            keep = self.kept_rows(with_stats, stats, tracer)
            if len(keep) < len(with_stats):
                result = NestedDataset(with_stats.select(keep))
                digests, stats = [digests[index] for index in keep], [stats[index] for index in keep]
        self.rows.remember(result, digests, stats)
        return result

    def fill(self, dataset: Any, digests: list[bytes | None], stats: list[dict[str, Any]]) -> None:
        """Add this op's stats to each row's: from the cache, or computed by the op (and stored)."""
        keys = [sample_key(digest, row_stats) for digest, row_stats in zip(digests, stats)]
        missing = []
        for index, key in enumerate(keys):
            found = None if key is None else self.stats.get(key)
            if found is None:
                missing.append(index)
            else:
                stats[index].update(found)
        self.counts.hits += len(keys) - len(missing)
        size = self.op.batch_size or DEFAULT_BATCH_ROWS
        for start in range(0, len(missing), size):
            positions = missing[start : start + size]
            for index, computed in zip(positions, self.computed(dataset, positions, stats)):
                added = {name: value for name, value in computed.items() if name not in stats[index]}
                stats[index] = computed
                if keys[index] is not None and plain_value(added):
                    self.stats.add(keys[index], added)
                    self.counts.computed += 1
                else:
                    self.counts.not_cacheable += 1

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
