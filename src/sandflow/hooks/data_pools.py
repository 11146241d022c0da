"""Data pools: DataPoolManipulationHook's components and GeneralProbeHook's data_pool_ranking.

Construction, the one component that reads Data-Juicer's stats, is in pool_construction.py.

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
    write_samples,
)
from sandflow.report.pool_plots import PLOTS_DIR, RankedPool, write_ranking_report

DEFAULT_SHUFFLE_SEED = 42
NO_PREFIX = "default_prefix"  # upstream's name when the inputs share no prefix


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
    if (
        not isinstance(times, list)
        or not times
        or any(not isinstance(t, int) or isinstance(t, bool) or t < 1 for t in times)
    ):
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
    return [
        write_samples(
            export / f"{file_stem(path)}_{target}.jsonl", [pool[i] for i in shuffled_order(len(pool), seed)[:target]]
        )
        for path, pool in zip(paths, pools)
    ]


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
        raise ValueError(
            f"extra_configs.dataset_path has {len(paths)} pool(s) but extra_configs.metrics has "
            f"{len(metrics)} entr{'y' if len(metrics) == 1 else 'ies'}; they must match one to one"
        )
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
                raise ValueError(
                    f"extra_configs.metrics[{index}] has no {missing[0]!r} "
                    f"(named in extra_configs.ranking_keys); it has {_describe_keys(metric)}"
                )
        else:
            row = {"metric": metric}
        rows.append(row)
    try:
        order = sorted(range(len(paths)), key=lambda i: tuple(rows[i][c] for c in columns), reverse=descending)
    except TypeError as exc:
        raise ValueError(
            f"extra_configs.metrics cannot be ordered over {columns}: {exc}"
            f"{'' if keys else ' (set extra_configs.ranking_keys)'}"
        ) from None
    selected = len(order) if top_n is None else top_n
    ranked = [RankedPool(rank, paths[i], rows[i], rank <= selected) for rank, i in enumerate(order, start=1)]
    write_ranking_report(Path(job.job_dir) / PLOTS_DIR, ranked, columns)
    job.log.info(
        "ranked %d pool(s) by %s (%s); keeping %d",
        len(paths),
        columns,
        "descending" if descending else "ascending",
        min(selected, len(paths)),
    )
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
        raise ValueError(
            f"extra_configs.dataset_path_1 and dataset_path_2 both have the key {shared[0]!r} "
            f"({where}); a cartesian join needs distinct keys"
        )
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
