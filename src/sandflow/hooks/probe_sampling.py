"""The sample a ProbeViaModelInferHook job runs its model on: Data-Juicer's probe sampling.

Upstream's hook calls Data-Juicer's ``sample_data(sample_ratio=data_probe_ratio,
sample_algo=data_probe_algo)`` on the job's dataset. Its ``uniform`` algorithm
(``data_juicer.utils.sample.random_sample`` with seed 42) takes ``ceil(rows x ratio)``
rows of the dataset shuffled as ``datasets.Dataset.shuffle(seed=42)`` orders it, going
round the shuffled rows again when the ratio is above 1, and leaves the dataset as it
is when the count equals its size. The same rows come out here, without loading the
dataset through ``datasets``. Its other two algorithms are field selectors to which
the probe hook passes no field, so only ``uniform`` is accepted.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sandflow.hooks.pool_io import shuffled_order

PROBE_SEED = 42  # random_sample's default, which upstream's probe does not change
PROBE_SAMPLE_DIR = "probe_sample"


def probe_rows(rows: list[Any], ratio: float) -> list[Any]:
    """Data-Juicer's uniform sample of rows at this ratio."""
    count = math.ceil(len(rows) * ratio)
    if count == len(rows):
        return rows
    order = shuffled_order(len(rows), PROBE_SEED)
    return [rows[order[position % len(rows)]] for position in range(count)]


def probe_settings(dj_configs: Any) -> float:
    """The probe ratio of a job's dj_configs (1.0: no sampling); an unusable setting is a ValueError."""
    settings = dj_configs if isinstance(dj_configs, Mapping) else {}
    algo = settings.get("data_probe_algo", "uniform")
    if algo != "uniform":
        raise ValueError(
            f"dj_configs.data_probe_algo={algo!r}: only 'uniform' is supported (Data-Juicer's field "
            "selectors need a field to select by, which the probe hook does not give them)"
        )
    ratio = settings.get("data_probe_ratio", 1.0)
    if not isinstance(ratio, (int, float)) or isinstance(ratio, bool) or ratio <= 0:
        raise ValueError(f"dj_configs.data_probe_ratio must be a number above 0, got {ratio!r}")
    return float(ratio)


def sampled_inputs(paths: list[str], ratio: float, job_dir: Path) -> list[str]:
    """Each jsonl input's probe sample, kept in the job's probe_sample/ under the input's own file name."""
    if ratio == 1.0:
        return paths
    directory = job_dir / PROBE_SAMPLE_DIR
    directory.mkdir(parents=True, exist_ok=True)
    samples = []
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            lines = [line if line.endswith("\n") else line + "\n" for line in handle if line.strip()]
        sample = directory / os.path.basename(path)
        sample.write_text("".join(probe_rows(lines, ratio)), encoding="utf-8")
        samples.append(str(sample))
    return samples
