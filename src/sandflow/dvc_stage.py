"""The stage of dvc.yaml: run the sandbox experiment params.yaml names, then export its metrics for DVC.

    python -m sandflow.dvc_stage [params.yaml]

params.yaml's ``experiment`` section holds ``config`` (a sandbox config), ``work_dir`` (its job
store, overriding the config's, since dvc.yaml declares it as the stage's persisted output) and
``cores``. The command line is fixed: the values are read here and handed to snakemake as argv
items, never through a shell, so no parameter can become a command.

After the run, ``<work_dir>/metrics.json`` holds every evaluation metric of the experiment (from
``report/metrics.csv``), nested as ``{pipeline: {job: {metric: value}}}``, with ``iter_<N>`` and
``trial_<T>`` levels when there are several iterations or trials, which ``dvc metrics show`` lists.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from sandflow.core.atomic import write_text_atomic

SNAKEFILE = Path(__file__).resolve().parents[2] / "Snakefile"
KEYS = {"config": (str, "a path"), "work_dir": (str, "a path"), "cores": (int, "a whole number")}


def read_params(path: str) -> dict[str, Any]:
    """params.yaml's experiment section, checked; a problem is one line naming the key."""
    try:
        with open(path) as handle:
            experiment = (yaml.safe_load(handle) or {}).get("experiment")
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read it ({exc})") from None
    if not isinstance(experiment, dict):
        raise ValueError(f"{path}: experiment: must be a mapping with config, work_dir and cores")
    for key, (kind, description) in KEYS.items():
        if not isinstance(experiment.get(key), kind) or isinstance(experiment.get(key), bool):
            raise ValueError(f"{path}: experiment.{key}: must be {description}, got {experiment.get(key)!r}")
    if not os.path.isfile(experiment["config"]):
        raise ValueError(f"{path}: experiment.config: no such file: {experiment['config']}")
    return experiment


def nested_metrics(metrics_csv: str) -> dict[str, Any]:
    with open(metrics_csv) as handle:
        rows = list(csv.DictReader(handle))
    several_iterations = len({row["iteration"] for row in rows}) > 1
    metrics: dict[str, Any] = {}
    for row in rows:
        levels = [f"trial_{row['trial']}"] if row["trial"] else []
        levels += [f"iter_{row['iteration']}"] if several_iterations else []
        node = metrics
        for level in [*levels, row["pipeline"], row["job"]]:
            node = node.setdefault(level, {})
        node[row["metric"]] = float(row["value"])
    return metrics


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    params_path = args[0] if args else "params.yaml"
    try:
        experiment = read_params(params_path)
    except ValueError as exc:
        print(f"sandflow: error: {exc}", file=sys.stderr)
        return 2
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--configfile", experiment["config"],
               "--config", f"work_dir={experiment['work_dir']}", "--cores", str(experiment["cores"])]
    code = subprocess.run(command).returncode
    if code:
        return code
    metrics = nested_metrics(os.path.join(experiment["work_dir"], "report", "metrics.csv"))
    write_text_atomic(os.path.join(experiment["work_dir"], "metrics.json"), json.dumps(metrics, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
