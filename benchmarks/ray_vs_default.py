#!/usr/bin/env python3
"""The demo with Data-Juicer's Ray executor vs its default executor: same rows?, time of each.

    .venv/bin/python benchmarks/ray_vs_default.py [--scratch DIR] [--rows N]

Runs configs/demo/sandbox.yaml cold with real snakemake (``--cores 2``, the job
server on, as ``make demo``) twice, each in its own copy of configs/: once as
it is and once with ``executor_type: 'ray'`` added to configs/demo/process.yaml
(so all four jobs' recipes say ray: both analyses and the processing run on a
private local Ray of 1 CPU per job). ``--rows N`` takes the first N rows of the
demo dataset instead of all 3,000. Prints whether the processed rows (the
refined recipe's export) and the refined recipe are the same bytes, and the
wall time of each run and of each job (from the job records).
benchmarks/RESULTS.md holds the last results.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _common import REPO, offline_env, snakemake_argv

WORK_DIR = "outputs/demo-sandbox"
PROCESS_JOB = "process_data_with_refined_recipe"


def prepare(directory: Path, executor: str, rows: int | None) -> None:
    shutil.copytree(REPO / "configs/demo", directory / "configs/demo")
    data = directory / "configs/data/demo"
    data.mkdir(parents=True)
    with open(REPO / "configs/data/demo/demo-dataset.jsonl", encoding="utf-8") as source:
        lines = source.readlines()
    (data / "demo-dataset.jsonl").write_text("".join(lines[:rows] if rows else lines), encoding="utf-8")
    if executor == "ray":
        recipe = directory / "configs/demo/process.yaml"
        recipe.write_text(recipe.read_text() + "\nexecutor_type: 'ray'  # benchmarks/ray_vs_default.py\n")


def run_demo(directory: Path) -> float:
    command = snakemake_argv("configs/demo/sandbox.yaml", "--cores", "2")
    started = time.monotonic()
    result = subprocess.run(command, cwd=directory, env=offline_env(), capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"snakemake failed in {directory} ({result.returncode}):\n{result.stderr[-4000:]}")
    return elapsed


def job_dir(directory: Path, meta_name: str) -> Path:
    return (directory / WORK_DIR / "pipelines" / "anonymous" / "iter_1" / meta_name).resolve()


def processed_rows(directory: Path) -> Path:
    export_dir = job_dir(directory, PROCESS_JOB) / "dj_configs.export_path"
    exports = [p for p in export_dir.glob("*.jsonl") if not p.name.endswith("_stats.jsonl")]
    if len(exports) != 1:
        sys.exit(f"expected one processed export in {job_dir(directory, PROCESS_JOB)}, found {exports}")
    return exports[0]


def refined_recipe(directory: Path) -> Path:
    return next((job_dir(directory, "analysis_ori_data-1") / "extra_configs.path_k_sigma_recipe").glob("*.yaml"))


def threshold_difference(default: Path, ray: Path) -> float:
    """The largest absolute difference between the two refined recipes' op arguments (same ops, same args)."""
    ops = [yaml.safe_load(path.read_text())["process"] for path in (default, ray)]
    if [list(op) for op in ops[0]] != [list(op) for op in ops[1]]:
        return math.inf
    largest = 0.0
    for op_default, op_ray in zip(*ops):
        (args_default,), (args_ray,) = op_default.values(), op_ray.values()
        for name, value in args_default.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                largest = max(largest, abs(value - args_ray[name]))
            elif value != args_ray.get(name):
                return math.inf
    return largest


def job_seconds(directory: Path) -> dict[str, float]:
    times = {}
    for link in sorted((directory / WORK_DIR / "pipelines" / "anonymous" / "iter_1").iterdir()):
        record = json.loads((link.resolve() / "context.json").read_text())
        times[link.name] = record["duration_s"]
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scratch", type=Path, help="where to run (default: a new temp dir, removed after)")
    parser.add_argument("--rows", type=int, help="first N rows of the demo dataset (default: all)")
    args = parser.parse_args()
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="sandflow-ray-bench-"))
    runs: dict[str, dict] = {}
    try:
        for executor in ("default", "ray"):
            directory = scratch / executor
            if directory.exists():
                shutil.rmtree(directory)
            prepare(directory, executor, args.rows)
            seconds = run_demo(directory)
            runs[executor] = {"dir": directory, "seconds": seconds, "jobs": job_seconds(directory)}
        default, ray = runs["default"]["dir"], runs["ray"]["dir"]
        rows_default, rows_ray = processed_rows(default), processed_rows(ray)
        n_rows = sum(1 for line in rows_default.open(encoding="utf-8") if line.strip())
        print(f"demo: configs/demo/sandbox.yaml, {args.rows or 3000} input rows, snakemake --cores 2, cold")
        print(
            f"same processed rows (bytes): {'yes' if rows_default.read_bytes() == rows_ray.read_bytes() else 'no'}"
            f" ({n_rows} rows kept)"
        )
        diff = threshold_difference(refined_recipe(default), refined_recipe(ray))
        print(
            f"same refined thresholds: {'yes' if diff == 0 else 'no'} (largest difference {diff:.2g}; the "
            f"default executor's stats are rounded to 10 decimals, Ray's are not)"
        )
        print("| job | default (s) | ray (s) |\n|---|---:|---:|")
        for name in runs["default"]["jobs"]:
            print(
                f"| {name} | {runs['default']['jobs'][name]:.1f} | {runs['ray']['jobs'].get(name, float('nan')):.1f} |"
            )
        print(f"| whole run (wall) | {runs['default']['seconds']:.1f} | {runs['ray']['seconds']:.1f} |")
    finally:
        if args.scratch is None:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
