#!/usr/bin/env python3
"""Planning an hpo_config grid: N trials of a 3-job pipeline, by sandflow in-process and by `snakemake -n`.

    .venv/bin/python benchmarks/plan_trials.py [--scratch DIR] [--trials 100,1000,10000] [--rounds 3]

Each trial is merge -> downsample (the searched parameter) -> mse evaluation on cheap pool hooks; the
merge is the same job in every trial, so N trials plan 3N jobs of which 2N+1 are distinct. Prints
wall and CPU seconds of each, their ratio in CPU time (on a shared machine wall times move with the other
processes' load much more than CPU times do), and the peak memory of `snakemake -n`. Each grid is measured
in several rounds, each one planning then `snakemake -n` (so the two alternate), one row per round, then
a row of their medians and the ratio of the median CPU times: on a shared machine the same planning's CPU
time moved by up to 40% between runs, one round's ratio with it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import yaml
from _common import REPO
from run_overheads import fresh, snakemake_measured

sys.path.insert(0, str(REPO / "tests"))  # the grid tests/unit/run/test_per_job.py plans too
from helpers.hpo_grid import grid_config  # noqa: E402


class Measured(NamedTuple):
    own: float  # sandflow's planning in this process, wall seconds
    own_cpu: float
    snakemake: float  # `snakemake -n`, wall seconds
    snakemake_cpu: float  # user + system of the snakemake process
    peak_mb: float


def children_cpu() -> float:
    """CPU seconds of every child this process has waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(root: Path, trials: int) -> Measured:
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
        started, started_cpu = time.monotonic(), time.process_time()
        plan_config(load_config_file("config.yaml"))
        own, own_cpu = time.monotonic() - started, time.process_time() - started_cpu
    finally:
        os.chdir(cwd)
    before = children_cpu()
    seconds, peak_mb = snakemake_measured(directory, config, "-n")
    return Measured(own, own_cpu, seconds, children_cpu() - before, peak_mb)


def row(name: str, got: Measured) -> str:
    return (
        f"| {name} | {got.own:.2f} s ({got.own_cpu:.2f} s) | {got.snakemake:.1f} s ({got.snakemake_cpu:.1f} s) | "
        f"{got.snakemake_cpu / got.own_cpu:.2f}x | {got.peak_mb:.0f} MB |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scratch", type=Path, default=None, help="where to run (default: a temporary directory)")
    parser.add_argument("--trials", default="100,1000,10000")
    parser.add_argument("--rounds", type=int, default=3, help="measurements of each grid (default: 3)")
    args = parser.parse_args()
    root = args.scratch or Path(tempfile.mkdtemp(prefix="sandflow-trials-"))
    print(
        f"machine: {os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; scratch {root}"
    )
    print(
        "\n| trials (jobs planned) | sandflow planning, wall (CPU) | `snakemake -n`, wall (CPU) "
        "| `snakemake -n` / planning, CPU | peak memory |\n|---|---:|---:|---:|---:|"
    )
    for trials in (int(t) for t in args.trials.split(",")):
        rounds = []
        for round_ in range(1, args.rounds + 1):
            rounds.append(measure(root, trials))
            print(row(f"{trials:,} ({3 * trials:,}), round {round_}", rounds[-1]), flush=True)
        if len(rounds) > 1:
            print(row(f"{trials:,} ({3 * trials:,}), median", Measured(*map(statistics.median, zip(*rounds)))))
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
