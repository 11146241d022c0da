#!/usr/bin/env python3
"""A no-op rerun's wall time: `sandflow run <config>` (the fast path, run/noop.py) against Snakemake deciding the
same (``snakemake --cores all`` on sandflow's Snakefile, which builds the DAG).

    .venv/bin/python benchmarks/noop_rerun.py [--config configs/demo/sandbox.yaml] [--repeat 5] [--compile-sandflow]

Run from the checkout after a cold run of the config (`make demo`). Prints the median wall time of each side (and
its median CPU time, which the machine's load barely moves), the ratio to a baseline cold time (``--baseline``,
seconds; default the DJ-Sandbox sequential baseline that benchmarks/stats_cache.py measured, benchmarks/RESULTS.md),
and the machine's load average before and after.

Python's bytecode cache is on, as in any installed sandflow, and kept out of the checkout (PYTHONPYCACHEPREFIX, a
temporary directory, filled by one untimed run of each side). With ``--compile-sandflow`` every run compiles
sandflow's own modules from source again (the libraries' stay cached), as under PYTHONDONTWRITEBYTECODE with no
``__pycache__``: how a sandbox that sets it runs a fresh checkout.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, offline_env, sandflow_run_argv, snakemake_argv

BASELINE_COLD_S = 117.7


def cpu_seconds() -> float:
    """User and system time of this process's finished children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def seconds(command: list[str], env: dict[str, str], expect: str) -> tuple[float, float]:
    """Wall and CPU seconds of one run (CPU time counts what the run does, whatever the load of the machine)."""
    started, cpu = time.perf_counter(), cpu_seconds()
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=True)
    elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    if expect not in result.stderr + result.stdout:
        sys.exit(f"not a no-op ({' '.join(command)}):\n{result.stderr[-2000:]}")
    return elapsed, cpu


def bytecode_env(cache: str, compile_sandflow: bool) -> dict[str, str]:
    """This process's offline environment with bytecode cached under ``cache``; with ``compile_sandflow``, none
    written (the warm-up runs wrote the libraries') and sandflow's own dropped from it."""
    env = offline_env({"PYTHONPYCACHEPREFIX": cache})
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if compile_sandflow:
        shutil.rmtree(Path(cache, *REPO.parts[1:], "src"), ignore_errors=True)  # the cache mirrors absolute paths
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/demo/sandbox.yaml")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline", type=float, default=BASELINE_COLD_S)
    parser.add_argument("--compile-sandflow", action="store_true", help="compile sandflow's modules in every run")
    args = parser.parse_args()
    sides = {
        "sandflow run (fast path)": (
            sandflow_run_argv(args.config),
            "sandflow: nothing to do",
        ),
        "snakemake (DAG)": (snakemake_argv(args.config, "--cores", "all"), "Nothing to be done"),
    }
    print(f"load average {' '.join(f'{load:.2f}' for load in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="noop-pycache-") as cache:
        warm = bytecode_env(cache, compile_sandflow=False)
        for command, expect in sides.values():
            seconds(command, warm, expect)
        env = bytecode_env(cache, args.compile_sandflow)
        times = {
            name: [seconds(command, env, expect) for _ in range(args.repeat)]
            for name, (command, expect) in sides.items()
        }
    for name, runs in times.items():
        median = statistics.median(wall for wall, _ in runs)
        shown = ", ".join(f"{wall:.2f}" for wall, _ in runs)
        cpu = statistics.median(cpu for _, cpu in runs)
        print(
            f"{name:<26} median {median:.2f} s ({shown}; CPU {cpu:.2f} s); "
            f"{median / args.baseline:.4f}x of {args.baseline} s cold"
        )
    print(f"load average {' '.join(f'{load:.2f}' for load in os.getloadavg())}")
    print("sandflow's modules compiled in every run" if args.compile_sandflow else "bytecode cached (as installed)")


if __name__ == "__main__":
    main()
