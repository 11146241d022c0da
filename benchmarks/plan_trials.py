#!/usr/bin/env python3
"""Planning an hpo_config grid: N trials of a 3-job pipeline, by sandflow in-process and by `snakemake -n`.

    .venv/bin/python benchmarks/plan_trials.py [--scratch DIR] [--trials 100,1000,10000]

Each trial is merge -> downsample (the searched parameter) -> mse evaluation on cheap pool hooks; the
merge is the same job in every trial, so N trials plan 3N jobs of which 2N+1 are distinct. Prints
seconds and milliseconds per planned job, and the peak memory of `snakemake -n`.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import yaml
from run_overheads import fresh, snakemake_measured


def grid_config(trials: int) -> dict:
    pools = {"type": "data_pool_downsampling", "shuffle_seed": 1}
    return {
        "work_dir": "./out",
        "hpo_config": {
            "method": "grid",
            "metric": {"name": "search.evaluate.min_mse", "goal": "minimize"},
            "parameters": {"search.sample.extra_configs.target_num_samples": {"values": list(range(1, trials + 1))}},
        },
        "pipelines": [
            {
                "search": {
                    "execution_job_configs": [
                        {
                            "hook": "DataPoolManipulationHook",
                            "meta_name": "merge",
                            "output": "merged",
                            "extra_configs": {
                                "type": "data_pool_merging",
                                "dataset_path": ["a.jsonl", "b.jsonl"],
                                "export_path": "./out/merged/all.jsonl",
                            },
                        },
                        {
                            "hook": "DataPoolManipulationHook",
                            "meta_name": "sample",
                            "output": "sample",
                            "input": {"extra_configs.dataset_path": "-1.merged"},
                            "extra_configs": {
                                **pools,
                                "dataset_path": "<merged>",
                                "target_num_samples": 1,
                                "export_path": "./out/s/",
                            },
                        },
                    ],
                    "evaluation_job_configs": [
                        {
                            "hook": "EvaluateDataHook",
                            "meta_name": "evaluate",
                            "output": ["results", "min_mse"],
                            "input": {"extra_configs.predicted_dataset_path": "-1.sample"},
                            "extra_configs": {
                                "type": "mse",
                                "predicted_dataset_path": "<sample>",
                                "predicted_value_key": "grade",
                                "ground_truth_value_key": "truth",
                            },
                        },
                    ],
                }
            }
        ],
    }


def measure(root: Path, trials: int) -> tuple[float, float, float]:
    from sandflow.config.load import load_config_file
    from sandflow.plan.planner import plan_config

    directory = fresh(root, f"trials_{trials}")
    for name in ("a", "b"):
        directory.joinpath(f"{name}.jsonl").write_text(
            "".join(json.dumps({"grade": i % 2, "truth": 1}) + "\n" for i in range(4))
        )
    config = grid_config(trials)
    directory.joinpath("config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    cwd = os.getcwd()
    os.chdir(directory)  # the config's paths are relative to where it runs
    try:
        started = time.monotonic()
        plan_config(load_config_file("config.yaml"))
        own = time.monotonic() - started
    finally:
        os.chdir(cwd)
    seconds, peak_mb = snakemake_measured(directory, config, "-n")
    return own, seconds, peak_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scratch", type=Path, default=None, help="where to run (default: a temporary directory)")
    parser.add_argument("--trials", default="100,1000,10000")
    args = parser.parse_args()
    root = args.scratch or Path(tempfile.mkdtemp(prefix="sandflow-trials-"))
    print(
        f"machine: {os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; scratch {root}"
    )
    print("\n| trials (jobs planned) | sandflow planning | `snakemake -n` | peak memory |\n|---|---:|---:|---:|")
    for trials in (int(t) for t in args.trials.split(",")):
        own, seconds, peak_mb = measure(root, trials)
        jobs = 3 * trials
        print(
            f"| {trials:,} ({jobs:,}) | {own:.2f} s ({own / jobs * 1000:.2f} ms/job) | "
            f"{seconds:.1f} s ({seconds / jobs * 1000:.1f} ms/job) | {peak_mb:.0f} MB |",
            flush=True,
        )
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
