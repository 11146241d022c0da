"""Data pools: DataPoolManipulationHook's components and GeneralProbeHook's data_pool_ranking.

One function per ``extra_configs.type``, as DJ-Sandbox's
``data_pool_manipulators.py``: the same config keys and defaults, output file
names, output order and return shapes (a list of paths; a single path for
merging). Pools are JSON Lines files; each sample is written back as
``json.dumps(sample, ensure_ascii=False)``, its keys in their own order.
``export_path`` is always a directory (created; a file-like name such as
``new_prompts.jsonl`` becomes a directory of that name, as upstream).
Tables and plots go to ``<job_dir>/plots/`` (see ``sandflow.report.pool_plots``).

Where we differ from upstream, on purpose:

* Inputs may be a path, a list, or nested lists (flattened depth-first). A
  missing input is an error naming the config key (upstream logs and skips it,
  and then crashes or returns fewer pools). Two inputs whose outputs are named
  after the same base name are an error (upstream overwrites one with the other).
* Samples are read and written as they are; upstream goes through Hugging Face
  datasets and pandas, which give every sample the union of all keys (missing
  ones as null), escape ``/`` and, for duplication and downsampling, non-ASCII.
* Shuffles (duplication, downsampling) use ``numpy.random.default_rng(seed)
  .permutation(n)``: exactly the order ``datasets.Dataset.shuffle(seed=...)``
  gives upstream, so pools hold the same samples in the same order.
* Construction sorts every stats key from the input order (stable: ties keep
  input order); upstream sorts one list in place key after key, so its ties
  follow the previous key's order. A stats key missing (or null) in a sample,
  a dataset without ``__dj__stats__``, an empty dataset, and lists mixed with
  numbers are one-line errors (upstream crashes with a TypeError or an Arrow
  error). Numbers and lists of numbers (sorted by their mean, 0 when empty; we
  sum with math.fsum, numpy pairwise) are split as upstream; string and
  list-of-string stats are skipped as upstream; mapping stats are skipped too
  (upstream crashes comparing them). NaN sorts last. ``split_ratios`` must be in
  ascending order; ratios that round to the same index give an empty pool file
  (as upstream), so every stats key yields the same numbered set of files.
  Upstream's ``add_suffix_to_filename`` mangles base names with a dot in them
  (``a.b.jsonl`` -> ``a_text_len_0.jsonl.b``); we write ``a.b_text_len_0.jsonl``.
* Combination writes each combined pool in the order its samples first appear
  in its best-ranked pool (upstream: Python set order, which changes from run to
  run with string hashing); identical samples within a pool count once, as upstream.
* Ranking: a ranking key missing from any pool's metric is an error (upstream
  checks the first pool only and drops missing keys); ``ranking_keys`` may be
  one string; a single metric not in a list is taken as a one-pool list.
* Cartesian join with an empty pool writes an empty file (upstream crashes);
  keys present in both pools are an error, as upstream (duplicated columns).
* Where upstream would return nothing (no input, no numeric stat, every pool
  empty, empty duplicating_times) we raise: a job without its output would
  only fail later, in the job that reads it. A null setting means its default.
  Keys a component does not use are logged as a warning. Inputs may also be one
  JSON array of objects (how some tools write ``.json``).
"""

from __future__ import annotations

import math
import os
from itertools import combinations
from pathlib import Path
from typing import Any

from sandflow.hooks.base import JobRun
from sandflow.hooks.pool_io import (
    Sample,
    bool_setting,
    common_prefix,
    export_dir,
    extra_settings,
    file_stem,
    input_paths,
    int_setting,
    read_samples,
    shuffled_order,
    split_ratios,
    write_samples,
)
from sandflow.report.pool_plots import PLOTS_DIR, RankedPool, plot_stat_histogram, write_ranking_report

__all__ = ["data_pool_construction", "data_pool_combination", "data_pool_duplication", "data_pool_downsampling",
           "data_pool_ranking", "data_pool_merging", "data_pool_cartesian_join", "VERSION"]

VERSION = "1"

STATS_FIELD = "__dj__stats__"  # data_juicer.utils.constant.Fields.stats
DEFAULT_SHUFFLE_SEED = 42
NO_PREFIX = "default_prefix"  # upstream's name when the inputs share no prefix



# ---------------------------------------------------------------- construction


def _split_points(total: int, ratios: list[float], split_num: int | None) -> list[int]:
    """[0, ..., total]: pool i is samples[points[i]:points[i+1]]."""
    if split_num is not None:
        inner = list(range(split_num, total, split_num))
    else:
        inner = [int(total * r + 0.5) for r in ratios]
    return [0, *inner, total]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float))  # bool included: Arrow sorts booleans too


def _sort_values(samples: list[Sample], stats_key: str, path: str) -> list[float] | None:
    """The value each sample is sorted by for one stats key; None for a non-numeric stat (skipped).

    Numbers sort by themselves, lists of numbers by their mean (0 when empty),
    as upstream; strings, lists of strings and mappings are not sortable.
    """
    values = []
    for index, sample in enumerate(samples):
        value = sample[STATS_FIELD].get(stats_key)
        if value is None:
            raise ValueError(f"extra_configs.dataset_path: stats key {stats_key!r} is missing from sample {index} "
                             f"(0-based) of {path}")
        values.append(value)
    lists = [isinstance(v, list) for v in values]
    if any(lists) and not all(lists):
        raise ValueError(f"extra_configs.dataset_path: stats key {stats_key!r} mixes lists and single values "
                         f"(sample {lists.index(not lists[0])} (0-based) of {path} differs from sample 0)")
    if all(lists):
        if all(_is_number(item) for v in values for item in v):
            return [math.fsum(v) / len(v) if v else 0.0 for v in values]
        return None
    return [float(v) for v in values] if all(_is_number(v) for v in values) else None


def _stats_keys(samples: list[Sample], path: str) -> list[str]:
    """Stats keys in order of first appearance (the column order Arrow infers upstream)."""
    keys: dict[str, None] = {}
    for index, sample in enumerate(samples):
        stats = sample.get(STATS_FIELD)
        if not isinstance(stats, dict):
            raise ValueError(f"extra_configs.dataset_path: sample {index} (0-based) of {path} has no {STATS_FIELD} "
                             f"mapping; analyse the dataset first (ProbeViaAnalyzerHook with export_original_dataset: "
                             f"true) or set extra_configs.ignore_stats: true")
        keys.update(dict.fromkeys(stats))
    for stats_key in keys:
        if not stats_key or stats_key in (".", "..") or "/" in stats_key or os.sep in stats_key:
            raise ValueError(f"extra_configs.dataset_path: stats key {stats_key!r} in {path} cannot name a directory")
    return list(keys)


def _sort_key(value: float) -> tuple[bool, float]:
    return (math.isnan(value), 0.0 if math.isnan(value) else value)  # NaN last, deterministically


def _write_parts(samples: list[Sample], points: list[int], directory: Path, name: str) -> list[str]:
    return [write_samples(directory / f"{name}_{i}.jsonl", samples[points[i]:points[i + 1]])
            for i in range(len(points) - 1)]


def data_pool_construction(job: JobRun) -> list[str]:
    """Split each analysed dataset into pools by each numeric stat (ascending), or as it is with ignore_stats.

    Writes ``<export>/<stats_key>/<base>_<stats_key>_<i>.jsonl`` (or
    ``<export>/<base>_ignore_stats_<i>.jsonl``) and, per stats key,
    ``<job_dir>/plots/<base>/<stats_key>_hist.png``. Returns every pool path,
    input by input, stats key by stats key, part by part.
    """
    extra = extra_settings(job, ("dataset_path", "export_path", "split_ratios", "split_num", "ignore_stats"))
    paths = input_paths(extra, "dataset_path", distinct_names=True)
    export = export_dir(extra)
    ratios = split_ratios(extra)
    split_num = int_setting(extra, "split_num", None, minimum=1)
    ignore_stats = bool_setting(extra, "ignore_stats", False)
    outputs: list[str] = []
    for path in paths:
        samples = read_samples(path, "dataset_path")
        if not samples:
            raise ValueError(f"extra_configs.dataset_path: {path} has no samples")
        base = file_stem(path)
        points = _split_points(len(samples), ratios, split_num)
        job.log.info("%s: %d samples, split points %s", path, len(samples), points)
        if ignore_stats:
            outputs += _write_parts(samples, points, export, f"{base}_ignore_stats")
            continue
        for stats_key in _stats_keys(samples, path):
            values = _sort_values(samples, stats_key, path)
            if values is None:
                job.log.info("stats key %s is not numeric: no pools for it", stats_key)
                continue
            sort_keys = [_sort_key(v) for v in values]
            order = sorted(range(len(samples)), key=sort_keys.__getitem__)  # stable: ties keep input order
            outputs += _write_parts([samples[i] for i in order], points, export / stats_key, f"{base}_{stats_key}")
            sorted_values = [values[i] for i in order]
            is_list = isinstance(samples[0][STATS_FIELD][stats_key], list)
            starts = [(i, sorted_values[p]) for i, p in enumerate(points) if 0 < p < len(samples)]
            plot_stat_histogram(Path(job.job_dir) / PLOTS_DIR / base / f"{stats_key}_hist.png", sorted_values,
                                starts, stats_key, f"mean of {stats_key}" if is_list else stats_key)
    if not outputs:
        raise ValueError("extra_configs.dataset_path: no numeric stats to split on "
                         "(set extra_configs.ignore_stats: true to split the datasets as they are)")
    return outputs


# ---------------------------------------------------------------- combination


def _identity(value: Any) -> Any:
    """A hashable stand-in for a sample: equal samples (whatever their key order) get equal identities."""
    if isinstance(value, dict):
        return tuple(sorted((k, _identity(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_identity(v) for v in value)
    return value


def data_pool_combination(job: JobRun) -> list[str]:
    """Intersect every non-empty subset of the ranked pools (dataset_path in rank order).

    Subsets go by size, then in upstream's order within a size (by their
    worst rank, then the next: 0_1, 0_2, 1_2, 0_3, ...); empty intersections
    are not written. Files: ``<export>/<prefix>_top_<ranks>_num_<count>.jsonl``.
    """
    extra = extra_settings(job, ("dataset_path", "export_path"))
    paths = input_paths(extra, "dataset_path")
    export = export_dir(extra)
    prefix = common_prefix(paths) or NO_PREFIX
    pools: list[dict[Any, Sample]] = []  # per rank: identity -> first such sample, in file order
    for path in paths:
        pool: dict[Any, Sample] = {}
        for sample in read_samples(path, "dataset_path"):
            pool.setdefault(_identity(sample), sample)
        pools.append(pool)
    outputs = []
    for size in range(1, len(pools) + 1):
        for ranks in sorted(combinations(range(len(pools)), size), key=lambda c: c[::-1]):
            best, *others = (pools[r] for r in ranks)
            members = [sample for ident, sample in best.items() if all(ident in other for other in others)]
            if members:
                name = f"{prefix}_top_{'_'.join(map(str, ranks))}_num_{len(members)}.jsonl"
                outputs.append(write_samples(export / name, members))
    job.log.info("%d combined pool(s) from %d ranked pool(s)", len(outputs), len(pools))
    if not outputs:
        raise ValueError("extra_configs.dataset_path: every pool is empty")
    return outputs


# ---------------------------------------------------------------- duplication, downsampling


def data_pool_duplication(job: JobRun) -> list[str]:
    """Repeat each pool ``t`` times for each t of duplicating_times (optionally shuffled): ``<base>_x<t>.jsonl``."""
    extra = extra_settings(job, ("dataset_path", "export_path", "duplicating_times", "shuffle", "shuffle_seed"))
    paths = input_paths(extra, "dataset_path", distinct_names=True)
    export = export_dir(extra)
    times = extra.get("duplicating_times")
    if not isinstance(times, list) or not times or any(not isinstance(t, int) or isinstance(t, bool) or t < 1
                                                       for t in times):
        raise ValueError(f"extra_configs.duplicating_times must be a non-empty list of integers >= 1, got {times!r}")
    shuffle = bool_setting(extra, "shuffle", False)
    seed = int_setting(extra, "shuffle_seed", DEFAULT_SHUFFLE_SEED, minimum=0)
    outputs = []
    for path in paths:
        samples = read_samples(path, "dataset_path")
        for t in times:
            rows = samples * t
            if shuffle:
                rows = [rows[i] for i in shuffled_order(len(rows), seed)]
            outputs.append(write_samples(export / f"{file_stem(path)}_x{t}.jsonl", rows))
    return outputs


def data_pool_downsampling(job: JobRun) -> list[str]:
    """Shuffle each pool and keep its first target_num_samples (default: the smallest pool's size).

    Files: ``<base>_<target_num_samples>.jsonl`` (named by the target even when a pool is smaller).
    """
    extra = extra_settings(job, ("dataset_path", "export_path", "target_num_samples", "shuffle_seed"))
    paths = input_paths(extra, "dataset_path", distinct_names=True)
    export = export_dir(extra)
    seed = int_setting(extra, "shuffle_seed", DEFAULT_SHUFFLE_SEED, minimum=0)
    pools = [read_samples(path, "dataset_path") for path in paths]
    target = int_setting(extra, "target_num_samples", None, minimum=0)
    if target is None:
        target = min(len(pool) for pool in pools)
    job.log.info("downsampling %d pool(s) to %d sample(s)", len(pools), target)
    return [write_samples(export / f"{file_stem(path)}_{target}.jsonl",
                           [pool[i] for i in shuffled_order(len(pool), seed)[:target]])
            for path, pool in zip(paths, pools)]


# ---------------------------------------------------------------- ranking


def _lookup(metric: Any, dotted: str) -> Any:
    """metric[dotted], walking into nested mappings ("a.b"); None when absent (as upstream's nested_query)."""
    node = metric
    parts = dotted.split(".")
    for i in range(len(parts)):
        if not isinstance(node, dict):
            return None
        rest = ".".join(parts[i:])
        if node.get(rest) is not None:
            return node[rest]  # a literal key containing dots wins, as upstream
        node = node.get(parts[i])
    return None


def data_pool_ranking(job: JobRun) -> list[str]:
    """Order the pools by their metrics (over ranking_keys; the whole metric without keys); keep the top_n.

    Ties keep input order, descending or not (a stable sort, as upstream's
    ``sorted(reverse=...)``). Writes ``<job_dir>/plots/ranking.{csv,md,png}``.
    """
    extra = extra_settings(job, ("dataset_path", "metrics", "ranking_keys", "descending", "top_n"))
    paths = input_paths(extra, "dataset_path")
    metrics = extra.get("metrics")
    if metrics is None:
        raise ValueError("extra_configs.metrics is required: one metric per pool of extra_configs.dataset_path")
    if not isinstance(metrics, list):
        metrics = [metrics]  # one pool: a ref unpacked its one-element list
    if len(metrics) != len(paths):
        raise ValueError(f"extra_configs.dataset_path has {len(paths)} pool(s) but extra_configs.metrics has "
                         f"{len(metrics)} entr{'y' if len(metrics) == 1 else 'ies'}; they must match one to one")
    keys = extra.get("ranking_keys") or []
    keys = [keys] if isinstance(keys, str) else keys
    if not isinstance(keys, list) or any(not isinstance(k, str) or not k for k in keys):
        raise ValueError(f"extra_configs.ranking_keys must be a list of (dotted) metric keys, got {keys!r}")
    descending = bool_setting(extra, "descending", True)
    top_n = int_setting(extra, "top_n", None, minimum=1)

    columns = keys or ["metric"]
    rows: list[dict[str, Any]] = []
    for index, metric in enumerate(metrics):
        if keys:
            row = {key: _lookup(metric, key) for key in keys}
            missing = [key for key, value in row.items() if value is None]
            if missing:
                raise ValueError(f"extra_configs.metrics[{index}] has no {missing[0]!r} "
                                 f"(named in extra_configs.ranking_keys); it has {_describe_keys(metric)}")
        else:
            row = {"metric": metric}
        rows.append(row)
    try:
        order = sorted(range(len(paths)), key=lambda i: tuple(rows[i][c] for c in columns), reverse=descending)
    except TypeError as exc:
        raise ValueError(f"extra_configs.metrics cannot be ordered over {columns}: {exc}"
                         f"{'' if keys else ' (set extra_configs.ranking_keys)'}") from None
    selected = len(order) if top_n is None else top_n
    ranked = [RankedPool(rank, paths[i], rows[i], rank <= selected) for rank, i in enumerate(order, start=1)]
    write_ranking_report(Path(job.job_dir) / PLOTS_DIR, ranked, columns)
    job.log.info("ranked %d pool(s) by %s (%s); keeping %d", len(paths), columns,
                 "descending" if descending else "ascending", min(selected, len(paths)))
    return [pool.path for pool in ranked if pool.selected]


def _describe_keys(metric: Any) -> str:
    return f"keys {sorted(metric)}" if isinstance(metric, dict) else f"no keys (it is {type(metric).__name__})"


# ---------------------------------------------------------------- merging, cartesian join


def data_pool_merging(job: JobRun) -> str:
    """Concatenate the pools in order into ``<export>/<prefix>_merged.jsonl``; returns that one path."""
    extra = extra_settings(job, ("dataset_path", "export_path"))
    paths = input_paths(extra, "dataset_path")
    export = export_dir(extra)
    merged = [sample for path in paths for sample in read_samples(path, "dataset_path")]
    job.log.info("merged %d pool(s) into %d sample(s)", len(paths), len(merged))
    return write_samples(export / f"{common_prefix(paths) or NO_PREFIX}_merged.jsonl", merged)


def _join(first: Sample, second: Sample, where: str) -> Sample:
    shared = [key for key in second if key in first]
    if shared:
        raise ValueError(f"extra_configs.dataset_path_1 and dataset_path_2 both have the key {shared[0]!r} "
                         f"({where}); a cartesian join needs distinct keys")
    return {**first, **second}


def data_pool_cartesian_join(job: JobRun) -> list[str]:
    """Pool (i, j) = every sample of dataset_path_1[i] joined with every sample of dataset_path_2[j].

    Samples are ``{**a, **b}`` for a in pool i (outer loop), b in pool j;
    files ``<export>/<prefix1>_<prefix2>_cartesian_join_<i>_<j>.jsonl``, i-major.
    """
    extra = extra_settings(job, ("dataset_path_1", "dataset_path_2", "export_path"))
    first_paths = input_paths(extra, "dataset_path_1")
    second_paths = input_paths(extra, "dataset_path_2")
    export = export_dir(extra)
    prefix = f"{common_prefix(first_paths)}_{common_prefix(second_paths)}"
    prefix = NO_PREFIX if prefix == "_" else prefix
    firsts = [read_samples(path, "dataset_path_1") for path in first_paths]
    seconds = [read_samples(path, "dataset_path_2") for path in second_paths]
    outputs = []
    for i, first in enumerate(firsts):
        for j, second in enumerate(seconds):
            where = f"{first_paths[i]} x {second_paths[j]}"
            rows = [_join(a, b, where) for a in first for b in second]
            outputs.append(write_samples(export / f"{prefix}_cartesian_join_{i}_{j}.jsonl", rows))
    job.log.info("joined %d x %d pool(s)", len(firsts), len(seconds))
    return outputs
