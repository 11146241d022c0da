"""Compute each Data-Juicer filter stat once per work_dir: covered filters read the stats of samples an earlier
job (or an earlier op of this job) already computed, from <work_dir>/stats-cache/ (hooks/dj_stats_store.py).

How: while Data-Juicer's Analyzer or DefaultExecutor loads its ops, each covered filter's ``run`` is replaced by
a run that reads the stats of the rows the cache knows, has the op compute the others and stores them, and then
applies the op's own ``process`` (the thresholds) to every row, without Hugging Face maps
(hooks/dj_covered_run.py). Outputs are byte-identical with the cache empty, full or off (docs/stats-cache.md;
tests/workflow/test_stats_cache.py).

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
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from sandflow.core.keys import canonical_json, library_version
from sandflow.core.layout import stats_cache_dir, work_dir_of_job_dir
from sandflow.core.replaced import replaced
from sandflow.hooks.base import JobRun
from sandflow.hooks.dj_covered_run import CoveredFilterRun, JobRows, OpCounts
from sandflow.hooks.dj_load_filter import load_without_identity_filter
from sandflow.hooks.dj_stats_export import export_without_needless_work
from sandflow.hooks.dj_stats_store import OpStats, size_line

__all__ = ["COVERED", "stats_cache", "op_fingerprint", "cache_off_reason"]

OFF_VARIABLE = "SANDFLOW_STATS_CACHE"
# Bumped when the sample keys change (2: content digested once per job; 3: the stats' names hashed before the
# content digest, hooks/dj_covered_run.py): an op's entries under the old keys are in another fingerprint's
# directory, never read.
SAMPLE_KEY_SCHEME = 3

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
        "sample_key": SAMPLE_KEY_SCHEME,
    }
    return hashlib.sha256(canonical_json(description).encode()).hexdigest()[:32], description


@dataclass
class StatsCacheRun:
    """The covered ops of one Data-Juicer run and what they read and added."""

    work_dir: str
    cache_dir: str
    ops: list[tuple[OpStats, OpCounts]] = field(default_factory=list)
    rows: JobRows = field(default_factory=JobRows)

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
        op.run = CoveredFilterRun(op, stats, counts, self.rows, log)
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
        export_without_needless_work(),
        load_without_identity_filter(),
    ):
        yield
    run.finish(job.log)
