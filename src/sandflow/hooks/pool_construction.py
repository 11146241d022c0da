"""DataPoolManipulationHook's data_pool_construction: split analysed datasets into pools by each stat.

As DJ-Sandbox's ``data_pool_construction`` (the shared conventions are in data_pools.py), except:

* It sorts every stats key from the input order (stable: ties keep
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
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from sandflow.hooks import pool_io
from sandflow.hooks.base import JobRun
from sandflow.hooks.pool_io import Sample
from sandflow.report.pool_plots import PLOTS_DIR, plot_stat_histogram

STATS_FIELD = "__dj__stats__"  # data_juicer.utils.constant.Fields.stats


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
            raise ValueError(
                f"extra_configs.dataset_path: stats key {stats_key!r} is missing from sample {index} "
                f"(0-based) of {path}"
            )
        values.append(value)
    lists = [isinstance(v, list) for v in values]
    if any(lists) and not all(lists):
        raise ValueError(
            f"extra_configs.dataset_path: stats key {stats_key!r} mixes lists and single values "
            f"(sample {lists.index(not lists[0])} (0-based) of {path} differs from sample 0)"
        )
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
            raise ValueError(
                f"extra_configs.dataset_path: sample {index} (0-based) of {path} has no {STATS_FIELD} "
                f"mapping; analyse the dataset first (ProbeViaAnalyzerHook with export_original_dataset: "
                f"true) or set extra_configs.ignore_stats: true"
            )
        keys.update(dict.fromkeys(stats))
    for stats_key in keys:
        if not stats_key or stats_key in (".", "..") or "/" in stats_key or os.sep in stats_key:
            raise ValueError(f"extra_configs.dataset_path: stats key {stats_key!r} in {path} cannot name a directory")
    return list(keys)


def _sort_key(value: float) -> tuple[bool, float]:
    return (math.isnan(value), 0.0 if math.isnan(value) else value)  # NaN last, deterministically


def _write_parts(samples: list[Sample], points: list[int], directory: Path, name: str) -> list[str]:
    return [
        pool_io.write_samples(directory / f"{name}_{i}.jsonl", samples[points[i] : points[i + 1]])
        for i in range(len(points) - 1)
    ]


def data_pool_construction(job: JobRun) -> list[str]:
    """Split each analysed dataset into pools by each numeric stat (ascending), or as it is with ignore_stats.

    Writes ``<export>/<stats_key>/<base>_<stats_key>_<i>.jsonl`` (or
    ``<export>/<base>_ignore_stats_<i>.jsonl``) and, per stats key,
    ``<job_dir>/plots/<base>/<stats_key>_hist.png``. Returns every pool path,
    input by input, stats key by stats key, part by part.
    """
    extra = pool_io.extra_settings(job, ("dataset_path", "export_path", "split_ratios", "split_num", "ignore_stats"))
    paths = pool_io.input_paths(extra, "dataset_path", distinct_names=True)
    export = pool_io.export_dir(extra)
    ratios = pool_io.split_ratios(extra)
    split_num = pool_io.int_setting(extra, "split_num", None, minimum=1)
    ignore_stats = pool_io.bool_setting(extra, "ignore_stats", False)
    outputs: list[str] = []
    for path in paths:
        samples = pool_io.read_samples(path, "dataset_path")
        if not samples:
            raise ValueError(f"extra_configs.dataset_path: {path} has no samples")
        base = pool_io.file_stem(path)
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
            plot_stat_histogram(
                Path(job.job_dir) / PLOTS_DIR / base / f"{stats_key}_hist.png",
                sorted_values,
                starts,
                stats_key,
                f"mean of {stats_key}" if is_list else stats_key,
            )
    if not outputs:
        raise ValueError(
            "extra_configs.dataset_path: no numeric stats to split on "
            "(set extra_configs.ignore_stats: true to split the datasets as they are)"
        )
    return outputs
