#!/usr/bin/env python3
"""A no-op rerun's wall time: `sandflow run <config>` (the fast path, run/noop.py) against Snakemake deciding the
same (``snakemake --cores all`` on sandflow's Snakefile, which builds the DAG).

    .venv/bin/python benchmarks/noop_rerun.py [--config configs/demo/sandbox.yaml] [--repeat 5]

Run from the checkout after a cold run of the config (`make demo`). Prints the median of each side, and the
ratio to a baseline cold time (``--baseline``, seconds; default the DJ-Sandbox sequential baseline that
benchmarks/stats_cache.py measured, benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from _common import REPO, offline_env, snakemake_argv

BASELINE_COLD_S = 117.7


def seconds(command: list[str], expect: str) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, env=offline_env(), capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - started
    if expect not in result.stderr + result.stdout:
        sys.exit(f"not a no-op ({' '.join(command)}):\n{result.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/demo/sandbox.yaml")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline", type=float, default=BASELINE_COLD_S)
    args = parser.parse_args()
    fast = [sys.executable, "-m", "sandflow.cli", "run", args.config]
    slow = snakemake_argv(args.config, "--cores", "all")
    sides = {
        "sandflow run (fast path)": [seconds(fast, "sandflow: nothing to do") for _ in range(args.repeat)],
        "snakemake (DAG)": [seconds(slow, "Nothing to be done") for _ in range(args.repeat)],
    }
    for name, times in sides.items():
        median = statistics.median(times)
        runs = ", ".join(f"{t:.2f}" for t in times)
        print(f"{name:<26} median {median:.2f} s ({runs}); {median / args.baseline:.4f}x of {args.baseline} s cold")


if __name__ == "__main__":
    main()
