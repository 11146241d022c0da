"""Compute each Data-Juicer filter stat once per work_dir: covered filters read the stats of samples an earlier
job (or an earlier op of this job) already computed, from <work_dir>/stats-cache/ (hooks/dj_stats_store.py).

How: while Data-Juicer's Analyzer or DefaultExecutor loads its ops, each covered filter's ``compute_stats`` is
wrapped. For every sample of a batch the wrapper takes a digest of everything the op can read (the whole
sample except the stats and context fields, plus the names of the stats already present, since a covered
filter skips a stat that is there); samples whose digest the cache knows get their stats from it, the others
go to the op as a smaller batch, and the stats the op added are stored. The op's ``process`` (the thresholds)
then runs on every sample as before; when a covered filter is the job's first, it also adds the empty stats
column itself, without Data-Juicer's row-by-row map. Outputs are byte-identical with the cache empty, full or off
(docs/stats-cache.md; tests/workflow/test_stats_cache.py).

An op's stats are keyed by its fingerprint: its name, its arguments except thresholds and execution settings,
Data-Juicer's version and the source of the op's module and of the Data-Juicer modules it uses. Covered are
the filters in COVERED only, whose stats are a pure function of the sample and those arguments; an op that
reads a tokenizer model by name, runs in worker processes (np > 1) or is fused is computed as before.

``SANDFLOW_STATS_CACHE=off`` turns the cache off (neither read nor written).
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from sandflow.core.keys import canonical_json, library_version
from sandflow.core.layout import stats_cache_dir, work_dir_of_job_dir
from sandflow.core.replaced import replaced
from sandflow.hooks.base import JobRun
from sandflow.hooks.dj_stats_export import stats_export_without_identity_map
from sandflow.hooks.dj_stats_store import OpStats, size_line

__all__ = ["COVERED", "stats_cache", "op_fingerprint", "sample_digest", "cache_off_reason"]

STATS_FIELD = "__dj__stats__"  # data_juicer.utils.constant.Fields.stats
CONTEXT_FIELD = "__dj__context__"  # Fields.context: intermediate values fused ops share
OFF_VARIABLE = "SANDFLOW_STATS_CACHE"
STATS_COLUMN_BATCH_ROWS = 10_000  # rows taken, extended and written at a time when adding the stats column

# Covered filters and their thresholds: arguments read only by process() (keep or drop), never by compute_stats.
COVERED: dict[str, frozenset[str]] = {
    "text_length_filter": frozenset({"min_len", "max_len"}),
    "alphanumeric_filter": frozenset({"min_ratio", "max_ratio"}),
    "special_characters_filter": frozenset({"min_ratio", "max_ratio"}),
    "character_repetition_filter": frozenset({"min_ratio", "max_ratio"}),
    "words_num_filter": frozenset({"min_num", "max_num"}),
    "word_repetition_filter": frozenset({"min_ratio", "max_ratio"}),
    "average_line_length_filter": frozenset({"min_len", "max_len"}),
    "maximum_line_length_filter": frozenset({"min_len", "max_len"}),
}
# Every Filter's range settings (base_op.Filter) are thresholds too.
RANGE_ARGS = frozenset({"min_closed_interval", "max_closed_interval", "reversed_range"})
# How and where an op runs, never what it computes (base_op.OP._BASE_PARAMS; stats_export_path only names a file).
EXECUTION_ARGS = frozenset(
    {
        "work_dir",
        "skip_op_error",
        "adaptive_batching",
        "auto_op_parallelism",
        "batch_mode",
        "accelerator",
        "batch_size",
        "num_proc",
        "turbo",
        "cpu_required",
        "gpu_required",
        "mem_required",
        "num_cpus",
        "num_gpus",
        "memory",
        "runtime_env",
        "ray_execution_mode",
        "stats_export_path",
    }
)
# With tokenization on these read a tokenizer downloaded by name: not pinned by content, so not covered.
READS_MODEL_WHEN = {
    "alphanumeric_filter": "tokenization",
    "words_num_filter": "tokenization",
    "word_repetition_filter": "tokenization",
}


@cache
def op_source_digest(module_name: str) -> str:
    """sha256 over the source of a Data-Juicer module (an op's, an analysis's) and of the Data-Juicer modules whose
    names it holds."""
    module = sys.modules[module_name]
    used = {module_name}
    for value in vars(module).values():
        owner = value.__name__ if inspect.ismodule(value) else getattr(value, "__module__", None)
        if isinstance(owner, str) and owner.split(".")[0] == "data_juicer":
            used.add(owner)
    parts = []
    for name in sorted(used):
        source_file = getattr(sys.modules.get(name), "__file__", None)
        if source_file and os.path.isfile(source_file):
            with open(source_file, "rb") as handle:
                parts.append(f"{name}\0{hashlib.sha256(handle.read()).hexdigest()}\n")
    return hashlib.sha256("".join(parts).encode()).hexdigest()


def stat_arguments(name: str, args: dict[str, Any]) -> dict[str, Any]:
    """The op's arguments that may change its stats (everything but thresholds and execution settings)."""
    left_out = COVERED[name] | RANGE_ARGS | EXECUTION_ARGS
    return {key: value for key, value in args.items() if key not in left_out}


def op_fingerprint(name: str, args: dict[str, Any], op_module: str) -> tuple[str, dict[str, Any]]:
    """The op fingerprint (32 hex digits) and what it stands for."""
    description = {
        "op": name,
        "args": stat_arguments(name, args),
        "data_juicer": library_version("py-data-juicer"),
        "source": op_source_digest(op_module),
    }
    return hashlib.sha256(canonical_json(description).encode()).hexdigest()[:32], description


# One encoder for every sample (json.dumps with options builds a new one per call).
CANONICAL_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True)


def sample_digest(row: dict[str, Any]) -> str | None:
    """A digest of what a covered op can read in a sample: every field but the stats and context, and the names
    of the stats already there. None when a field is not plain JSON (such a sample is never cached)."""
    content = {key: value for key, value in row.items() if key not in (STATS_FIELD, CONTEXT_FIELD)}
    try:
        text = CANONICAL_ENCODER.encode([sorted(row.get(STATS_FIELD) or {}), content])
    except (TypeError, ValueError):
        return None
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


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


class CachedComputeStats:
    """A covered filter's compute_stats: stats of known samples from the cache, the op's own for the rest.

    ``__wrapped__`` keeps Data-Juicer's view of the op: it unwraps it to decide batching and fingerprints."""

    def __init__(self, compute: Callable[..., Any], stats: OpStats, counts: OpCounts) -> None:
        self.__wrapped__ = compute
        self.stats = stats
        self.counts = counts
        self.pid = os.getpid()

    def __call__(self, samples: Any, *args: Any, **kwargs: Any) -> Any:
        if os.getpid() != self.pid:  # a worker process: computed as before
            return self.__wrapped__(samples, *args, **kwargs)
        keys = list(samples.keys())
        columns = [samples[key] for key in keys]  # a lazy batch formats a column on each access
        stats = samples[STATS_FIELD]
        digests = [sample_digest(dict(zip(keys, row))) for row in zip(*columns)]
        missing = []
        for index, digest in enumerate(digests):
            found = None if digest is None else self.stats.get(digest)
            if found is None:
                missing.append(index)
            else:
                stats[index].update(found)
        self.counts.hits += len(digests) - len(missing)
        if not missing:
            return samples
        present = [set(stats[index]) for index in missing]
        if len(missing) == len(digests):
            samples = self.__wrapped__(samples, *args, **kwargs)
            computed = samples[STATS_FIELD]
        else:
            batch = {key: [samples[key][index] for index in missing] for key in keys}
            result = self.__wrapped__(batch, *args, **kwargs)
            for key in result.keys():
                if key not in samples or len(result[key]) != len(missing):
                    raise RuntimeError(f"{self.counts.name} changed the batch's column {key!r}: not cacheable")
                for position, index in enumerate(missing):
                    samples[key][index] = result[key][position]
            computed = result[STATS_FIELD]
        for position, index in enumerate(missing):
            added = {key: value for key, value in computed[position].items() if key not in present[position]}
            if digests[index] is not None and plain_value(added):
                self.stats.add(digests[index], added)
                self.counts.computed += 1
            else:
                self.counts.not_cacheable += 1
        return samples


class RunWithStatsColumn:
    """A covered filter's run, given a dataset that has the stats column: Data-Juicer's first Filter of a job adds
    it with a row-by-row map that decodes and re-encodes every column (17-20 s at 200,000 rows), where Arrow takes
    and extends the same rows in a fraction of that (with_empty_stats). The rows, their order and their features
    are the same; only Hugging Face's fingerprint differs, which no output holds."""

    def __init__(self, run: Callable[..., Any], log: Any) -> None:
        self.run = run
        self.log = log

    def __call__(self, dataset: Any, *args: Any, **kwargs: Any) -> Any:
        from data_juicer.core.data import NestedDataset

        if isinstance(dataset, NestedDataset) and STATS_FIELD not in dataset.features:
            dataset = with_empty_stats(dataset)
            self.log.info("stats cache: added the empty stats column to %d rows without a map", len(dataset))
        return self.run(dataset, *args, **kwargs)


def with_empty_stats(dataset: Any) -> Any:
    """The dataset's rows with a stats column of empty stats, encoded as Data-Juicer's map encodes them, written
    batch by batch with Arrow's own take and append (no row passes through Python) to a file in Hugging Face's
    temporary cache directory, as the map would have written its result, and memory-mapped from there."""
    import pyarrow as pa
    from data_juicer.core.data import NestedDataset
    from datasets import Dataset, Features, Json
    from datasets.fingerprint import get_temporary_cache_files_directory

    features = Features({**dataset.features, STATS_FIELD: Json()})
    (encoded,) = Features({STATS_FIELD: Json()}).encode_example({STATS_FIELD: {}}).values()
    column_type = features.arrow_schema.field(STATS_FIELD).type
    table = dataset.data.table
    indices = None if dataset._indices is None else dataset._indices.column(0)
    path = os.path.join(get_temporary_cache_files_directory(), f"sandflow-stats-column-{uuid.uuid4().hex}.arrow")
    writer = None
    with pa.OSFile(path, "wb") as sink:
        for start in range(0, len(dataset), STATS_COLUMN_BATCH_ROWS):
            end = min(start + STATS_COLUMN_BATCH_ROWS, len(dataset))
            rows = table.slice(start, end - start) if indices is None else table.take(indices.slice(start, end - start))
            empty = pa.array([encoded] * rows.num_rows, column_type.storage_type)
            rows = rows.append_column(STATS_FIELD, pa.ExtensionArray.from_storage(column_type, empty))
            rows = rows.replace_schema_metadata(features.arrow_schema.metadata)
            if writer is None:
                writer = pa.ipc.new_stream(sink, rows.schema)
            writer.write_table(rows)
        if writer is not None:
            writer.close()
    if writer is None:  # no rows: nothing to write, and Data-Juicer's map costs nothing
        return dataset
    info = dataset.info.copy()
    info.features = features
    return NestedDataset(Dataset.from_file(path, info=info, split=dataset.split))


def _in_this_process() -> None:
    """num_proc for a covered op's maps: None runs them in the calling process."""
    return None


@dataclass
class StatsCacheRun:
    """The covered ops of one Data-Juicer run and what they read and added."""

    work_dir: str
    cache_dir: str
    ops: list[tuple[OpStats, OpCounts]] = field(default_factory=list)

    def wrap(self, op: Any, log: Any) -> None:
        name = getattr(op, "_name", None)
        if name not in COVERED or not hasattr(op, "_op_cfg"):
            return
        ((_, args),) = op._op_cfg.items()
        model_switch = READS_MODEL_WHEN.get(name)
        if model_switch and args.get(model_switch):
            log.info("stats cache: %s not covered (%s=true reads a model by name)", name, model_switch)
            return
        processes = op.runtime_np()
        if processes != 1:
            log.info("stats cache: %s not covered (it runs in %s processes)", name, processes)
            return
        fingerprint, description = op_fingerprint(name, args, type(op).__module__)
        stats = OpStats(self.cache_dir, fingerprint, description)
        stats.load(self.work_dir)
        for segment in stats.skipped_segments:
            log.warning("stats cache: skipped %s/%s (its name is not the sha256 of its bytes)", fingerprint, segment)
        counts = OpCounts(name, fingerprint)
        op.compute_stats = CachedComputeStats(op.compute_stats, stats, counts)
        op.run = RunWithStatsColumn(op.run, log)
        # Hugging Face datasets runs a map of num_proc=1 in a pool of one forked process, where the cache's
        # reads and additions would be lost: the same map in this process computes the same rows.
        op.runtime_np = _in_this_process
        self.ops.append((stats, counts))

    def finish(self, log: Any) -> None:
        for stats, counts in self.ops:
            stats.flush(self.work_dir)
            log.info(
                "stats cache: %s %d from cache, %d computed and stored, %d not cacheable (%s)",
                counts.name,
                counts.hits,
                counts.computed,
                counts.not_cacheable,
                counts.fingerprint,
            )
        log.info("%s", size_line(self.cache_dir))


def cache_off_reason(job: JobRun) -> str | None:
    """Why neither the stats cache nor the analysis cache (hooks/dj_analysis_cache.py) is used by this job."""
    if os.environ.get(OFF_VARIABLE, "").lower() in ("off", "0", "false", "no"):
        return f"{OFF_VARIABLE}={os.environ[OFF_VARIABLE]}"
    if work_dir_of_job_dir(str(job.job_dir)) is None:
        return "the job directory is not in a work_dir's jobs/"
    return None


def _why_off(job: JobRun, cfg: Any) -> str | None:
    reason = cache_off_reason(job)
    if reason is not None:
        return reason
    if getattr(cfg, "op_fusion", False):
        return "op_fusion is on (fused ops are computed as before)"
    return None


@contextlib.contextmanager
def stats_cache(job: JobRun, cfg: Any) -> Iterator[None]:
    """Wrap the covered filters that Data-Juicer's Analyzer and DefaultExecutor load inside this block.

    Both call ``load_ops`` through their module's global name: it is replaced for the block and restored
    after (jobs run one per process, or one at a time in tests)."""
    reason = _why_off(job, cfg)
    if reason is not None:
        job.log.info("stats cache off: %s", reason)
        yield
        return
    import data_juicer.core.analyzer as analyzer_module
    import data_juicer.core.executor.default_executor as executor_module

    work_dir = work_dir_of_job_dir(str(job.job_dir))
    assert work_dir is not None
    run = StatsCacheRun(work_dir, stats_cache_dir(work_dir))
    original = analyzer_module.load_ops

    def load_cached_ops(*args: Any, **kwargs: Any) -> list[Any]:
        ops = original(*args, **kwargs)
        for op in ops:
            run.wrap(op, job.log)
        return ops

    with (
        replaced(analyzer_module, load_ops=load_cached_ops),
        replaced(executor_module, load_ops=load_cached_ops),
        stats_export_without_identity_map(),
    ):
        yield
    run.finish(job.log)
