"""Reading data pool settings and JSON Lines pools, and writing pools, as DJ-Sandbox's data pool manipulators do
(hooks/data_pools.py says where and why sandflow differs)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from sandflow.core.jsonl import BadData, json_rows
from sandflow.hooks.base import JobRun

Sample = dict[str, Any]

DEFAULT_SPLIT_RATIOS = [1.0 / 3.0, 2.0 / 3.0]


# ---------------------------------------------------------------- config values


def extra_settings(job: JobRun, known: Iterable[str]) -> dict[str, Any]:
    """The job's extra_configs; unknown keys are logged (upstream ignores them silently)."""
    extra = job.extra_configs
    if not isinstance(extra, dict):
        raise ValueError(f"{job.hook} needs extra_configs: a mapping with type and its settings")
    unknown = sorted(set(extra) - set(known) - {"type"})
    if unknown:
        job.log.warning("extra_configs keys not used by %s: %s", extra.get("type"), ", ".join(unknown))
    return extra


def flatten(value: Any, key: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [path for item in value for path in flatten(item, key)]
    raise ValueError(f"extra_configs.{key} must be a path or a list of paths, got {value!r}")


def input_paths(extra: dict[str, Any], key: str, distinct_names: bool = False) -> list[str]:
    """The dataset files named by extra_configs[key]: flattened depth-first, each one must exist."""
    paths = flatten(extra.get(key), key)
    if not paths:
        raise ValueError(f"extra_configs.{key} names no dataset")
    for path in paths:
        if not os.path.isfile(path):
            raise ValueError(f"extra_configs.{key}: {path} does not exist or is not a file")
    if distinct_names:
        seen: dict[str, str] = {}
        for path in paths:
            stem = file_stem(path)
            if stem in seen:
                raise ValueError(
                    f"extra_configs.{key}: {seen[stem]} and {path} have the same base name {stem!r}, "
                    f"so their pools would overwrite each other"
                )
            seen[stem] = path
    return paths


def export_dir(extra: dict[str, Any]) -> Path:
    value = extra.get("export_path")
    if not isinstance(value, str) or not value:
        raise ValueError("extra_configs.export_path must be a directory path")
    if os.path.isfile(value):
        raise ValueError(f"extra_configs.export_path: {value} is a file; pools need a directory")
    os.makedirs(value, exist_ok=True)
    return Path(os.path.abspath(value))


def setting(extra: dict[str, Any], key: str, default: Any) -> Any:
    """extra_configs[key]; an absent or empty (null) value means the default, as upstream's falsy checks."""
    value = extra.get(key)
    return default if value is None else value


def int_setting(extra: dict[str, Any], key: str, default: int | None, minimum: int) -> int | None:
    value = setting(extra, key, default)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"extra_configs.{key} must be an integer >= {minimum}, got {value!r}")
    return value


def bool_setting(extra: dict[str, Any], key: str, default: bool) -> bool:
    value = setting(extra, key, default)
    if not isinstance(value, bool):
        raise ValueError(f"extra_configs.{key} must be true or false, got {value!r}")
    return value


def split_ratios(extra: dict[str, Any]) -> list[float]:
    """split_ratios as floats; numbers or fraction strings ("1/3") in (0, 1), ascending."""
    value = setting(extra, "split_ratios", DEFAULT_SPLIT_RATIOS)
    message = f"extra_configs.split_ratios must be a list of numbers or fractions in (0, 1), got {value!r}"
    if not isinstance(value, list):
        raise ValueError(message)
    ratios = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (int, float, str)):
            raise ValueError(message)
        try:
            ratio = float(Fraction(item))
        except (ValueError, ZeroDivisionError):
            raise ValueError(message) from None
        if not 0 < ratio < 1:
            raise ValueError(message)
        ratios.append(ratio)
    if ratios != sorted(ratios):
        raise ValueError(f"extra_configs.split_ratios must be in ascending order, got {value!r}")
    return ratios


# ---------------------------------------------------------------- files


def file_stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def common_prefix(paths: Sequence[str]) -> str:
    """Longest common prefix of the inputs' base names (without extension), as upstream."""
    return os.path.commonprefix([file_stem(p) for p in paths])


def read_samples(path: str, key: str) -> list[Sample]:
    """A JSON Lines file (or one JSON array) of objects, as written; a bad line fails the job naming it."""
    rows, lines = json_rows(path)
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            if lines is None:
                raise BadData(path, None, f"item {index} (0-based) is not a JSON object (extra_configs.{key})")
            raise BadData(path, lines[index], f"not a JSON object (extra_configs.{key})")
    return rows


def write_samples(path: Path, samples: Iterable[Sample]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        for sample in samples:
            handle.write(json.dumps(sample, ensure_ascii=False) + "\n")
    return str(path)


def shuffled_order(n: int, seed: int) -> list[int]:
    """The order datasets.Dataset.shuffle(seed=seed) puts n rows in (numpy's default PCG64 generator)."""
    import numpy as np

    return np.random.default_rng(seed).permutation(n).tolist()
