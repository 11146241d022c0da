#!/usr/bin/env python3
"""Where a sandflow run's time goes, as ratios: parallel vs DJ-Sandbox's sequential order, reruns, per-job cost, planning.

    .venv/bin/python benchmarks/run_overheads.py [--scratch DIR] [--plan-sizes 100,1000,10000] [--flagship]

Every measurement runs real snakemake on generated configs of data-pool jobs (no Data-Juicer or torch
start-up, so the numbers show sandflow's and Snakemake's own costs, not the libraries'):

* parallel vs sequential: two independent pipelines of four pool jobs, cold, ``--cores 2``, once as
  planned and once with ``sequential: true`` (every job waits for the one before it, as upstream);
* no-op rerun and a rerun after changing one parameter of the last job, each over the cold run;
* per-job overhead: a chain of 1 vs 11 trivial jobs (the difference over 10), against the same hook
  called in-process through sandflow.run.runner.run_job;
* planning: sandflow's own planning in-process and ``snakemake -n`` on configs of N independent trivial jobs,
  seconds and peak memory;
* with ``--flagship``, the same rerun ratios on a real workload: the flagship recipe search
  (configs/paper/recipe_search.yaml, Data-Juicer and 27 tiny models, minutes), a no-op rerun and a rerun
  after changing one evaluation parameter (the baseline's ``seq_len``), also with SANDFLOW_JOB_SERVER=keep.

Prints one table; benchmarks/RESULTS.md holds the last results with the machine they ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _common import REPO, offline_env, snakemake_argv


def write_data(path: Path, rows: int) -> None:
    draw = random.Random(1)
    with path.open("w") as handle:
        for number in range(rows):
            handle.write(json.dumps({"text": f"row {number} " + "y" * draw.randrange(20, 400)}) + "\n")


def pool_chain(name: str, data: str, seed: int, last_target: int) -> list[dict]:
    """Four pool jobs: downsample -> duplicate x2,x3 -> downsample each -> merge."""
    out = f"./out/{name}"
    return [
        {
            "hook": "DataPoolManipulationHook",
            "meta_name": "sample",
            "output": "a",
            "extra_configs": {
                "type": "data_pool_downsampling",
                "dataset_path": data,
                "target_num_samples": 40000,
                "shuffle_seed": seed,
                "export_path": f"{out}/sample/",
            },
        },
        {
            "hook": "DataPoolManipulationHook",
            "meta_name": "duplicate",
            "output": "b",
            "input": {"extra_configs.dataset_path": "-1.a"},
            "extra_configs": {
                "type": "data_pool_duplication",
                "dataset_path": "<a>",
                "duplicating_times": [2, 3],
                "export_path": f"{out}/duplicate/",
            },
        },
        {
            "hook": "DataPoolManipulationHook",
            "meta_name": "resample",
            "output": "c",
            "input": {"extra_configs.dataset_path": "-1.b"},
            "extra_configs": {
                "type": "data_pool_downsampling",
                "dataset_path": "<b>",
                "target_num_samples": 50000,
                "export_path": f"{out}/resample/",
            },
        },
        {
            "hook": "DataPoolManipulationHook",
            "meta_name": "merge",
            "output": "d",
            "input": {"extra_configs.dataset_path": "-1.c"},
            "extra_configs": {
                "type": "data_pool_downsampling",
                "dataset_path": "<c>",
                "target_num_samples": last_target,
                "export_path": f"{out}/merge/",
            },
        },
    ]


def trivial_jobs(count: int, chained: bool) -> list[dict]:
    jobs = []
    for number in range(count):
        job = {
            "hook": "DataPoolManipulationHook",
            "meta_name": f"job_{number}",
            "output": "pool",
            "extra_configs": {
                "type": "data_pool_downsampling",
                "dataset_path": "./tiny.jsonl",
                "target_num_samples": 2,
                "shuffle_seed": number,
                "export_path": f"./out/t{number}/",
            },
        }
        if chained and number:
            job["input"] = {"extra_configs.dataset_path": "-1.pool"}
            job["extra_configs"]["dataset_path"] = "<previous>"
        jobs.append(job)
    return jobs


def snakemake(directory: Path, config: dict, *args: str, env: dict[str, str] | None = None) -> float:
    """Seconds for one snakemake invocation on config (written to directory/config.yaml)."""
    return snakemake_measured(directory, config, *args, env=env)[0]


def snakemake_measured(
    directory: Path, config: dict, *args: str, env: dict[str, str] | None = None
) -> tuple[float, float]:
    """(seconds, peak resident MB of snakemake and what it waited for) for one invocation on config."""
    (directory / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    command = snakemake_argv("config.yaml", "--cores", "2", "--quiet", "all", *args)
    started = time.monotonic()
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            command,
            cwd=directory,
            env=offline_env(env),
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
        _, status, usage = os.wait4(process.pid, 0)  # this child's own peak, not the largest child's so far
        seconds = time.monotonic() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            errors.seek(0)
            sys.exit(f"snakemake failed in {directory}:\n{errors.read().decode()[-3000:]}")
    return seconds, usage.ru_maxrss / 1024


def fresh(root: Path, name: str) -> Path:
    directory = root / name
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return directory


def measure_runs(root: Path, rows: int) -> dict[str, float]:
    data = root / "data.jsonl"
    write_data(data, rows)
    two_pipelines = lambda sequential, last: {  # noqa: E731
        "work_dir": "./out",
        "sequential": sequential,
        "pipelines": {
            name: {"execution_job_configs": pool_chain(name, str(data), seed, last)}
            for name, seed in (("left", 1), ("right", 2))
        },
    }
    parallel_dir, sequential_dir = fresh(root, "parallel"), fresh(root, "sequential")
    results = {
        "parallel cold (s)": snakemake(parallel_dir, two_pipelines(False, 30000)),
        "sequential cold (s)": snakemake(sequential_dir, two_pipelines(True, 30000)),
    }
    results["no-op rerun (s)"] = snakemake(parallel_dir, two_pipelines(False, 30000))
    results["one changed parameter, last job (s)"] = snakemake(parallel_dir, two_pipelines(False, 29999))
    return results


def measure_per_job(root: Path) -> dict[str, float]:
    for name in ("one", "eleven"):
        fresh(root, name).joinpath("tiny.jsonl").write_text(
            "".join(json.dumps({"text": f"t{i}"}) + "\n" for i in range(5))
        )
    one = snakemake(root / "one", {"work_dir": "./out", "execution_job_configs": trivial_jobs(1, True)})
    eleven = snakemake(root / "eleven", {"work_dir": "./out", "execution_job_configs": trivial_jobs(11, True)})
    direct = direct_call_seconds(root)
    return {"per job through the rule (s)": (eleven - one) / 10, "per job called directly (s)": direct}


def direct_call_seconds(root: Path) -> float:
    """The same trivial hook through sandflow.run.runner.run_job in this process (imports already paid)."""
    from sandflow.config.load import load_config_file
    from sandflow.plan.planner import plan_config
    from sandflow.run.runner import run_job
    from sandflow.run.specs import job_spec

    directory = fresh(root, "direct")
    directory.joinpath("tiny.jsonl").write_text("".join(json.dumps({"text": f"t{i}"}) + "\n" for i in range(5)))
    (directory / "config.yaml").write_text(
        yaml.safe_dump({"work_dir": "./out", "execution_job_configs": trivial_jobs(10, False)})
    )
    cwd = os.getcwd()
    os.chdir(directory)
    try:
        specs = [json.loads(json.dumps(job_spec(job))) for job in plan_config(load_config_file("config.yaml")).jobs]
        started = time.monotonic()
        for spec in specs:
            run_job(spec, f"out/logs/{spec['key']}.log")
        return (time.monotonic() - started) / len(specs)
    finally:
        os.chdir(cwd)


def measure_planning(root: Path, sizes: list[int]) -> list[tuple[int, float, float, float]]:
    """(jobs, sandflow's own planning s, snakemake -n s, peak MB of snakemake -n) per size."""
    from sandflow.config.load import load_config_file
    from sandflow.plan.planner import plan_config

    rows = []
    for size in sizes:
        directory = fresh(root, f"plan_{size}")
        directory.joinpath("tiny.jsonl").write_text("".join(json.dumps({"text": f"t{i}"}) + "\n" for i in range(5)))
        config = {"work_dir": "./out", "execution_job_configs": trivial_jobs(size, False)}
        directory.joinpath("config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        started = time.monotonic()
        plan_config(load_config_file(str(directory / "config.yaml")))
        own = time.monotonic() - started
        seconds, peak_mb = snakemake_measured(directory, config, "-n")
        rows.append((size, own, seconds, peak_mb))
    return rows


def measure_flagship(root: Path) -> dict[str, float]:
    """Cold run, no-op rerun and one changed evaluation parameter of the flagship, in a copy of its configs;
    then the same change with a job server kept between runs (SANDFLOW_JOB_SERVER=keep)."""
    directory = fresh(root, "flagship")
    for part in ("paper", "data"):
        shutil.copytree(REPO / "configs" / part, directory / "configs" / part)
    config = yaml.safe_load((REPO / "configs" / "paper" / "recipe_search.yaml").read_text())

    def with_seq_len(seq_len: int) -> dict:
        changed = json.loads(json.dumps(config))  # a deep copy without the YAML anchors' sharing
        (baseline,) = [p["baseline"] for p in changed["pipelines"] if "baseline" in p]
        baseline["evaluation_job_configs"][0]["extra_configs"]["seq_len"] = seq_len
        return changed

    results = {
        "cold (s)": snakemake(directory, config),
        "no-op rerun (s)": snakemake(directory, config),
        "one changed evaluation parameter (s)": snakemake(directory, with_seq_len(48)),
    }
    keep = {"SANDFLOW_JOB_SERVER": "keep", "SANDFLOW_JOB_SERVER_IDLE": "60"}  # leaves a minute after the benchmark
    snakemake(directory, with_seq_len(40), env=keep)  # starts the kept server
    results["the same, job server kept (s)"] = snakemake(directory, with_seq_len(32), env=keep)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scratch", type=Path, default=None, help="where to run (default: a temporary directory)")
    parser.add_argument("--rows", type=int, default=50000, help="rows of the generated dataset (default 50000)")
    parser.add_argument("--plan-sizes", default="100,1000,10000")
    parser.add_argument("--flagship", action="store_true", help="also measure reruns of the flagship (minutes)")
    args = parser.parse_args()
    root = args.scratch or Path(tempfile.mkdtemp(prefix="sandflow-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    print(
        f"machine: {os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; scratch {root}"
    )

    runs = measure_runs(root, args.rows)
    per_job = measure_per_job(root)
    planning = measure_planning(root, [1, *(int(size) for size in args.plan_sizes.split(","))])
    startup = planning.pop(0)[2]
    flagship = measure_flagship(root) if args.flagship else None
    cold = runs["parallel cold (s)"]

    print("\n| measurement | value | goal |\n|---|---:|---|")
    print(f"| cold, 2 pipelines, --cores 2 | {cold:.1f} s | |")
    print(f"| cold, sequential: true | {runs['sequential cold (s)']:.1f} s | |")
    print(f"| sequential / parallel | {runs['sequential cold (s)'] / cold:.2f} | > 1 |")
    noop, changed = runs["no-op rerun (s)"], runs["one changed parameter, last job (s)"]
    print(f"| no-op rerun / cold | {noop:.1f} s = {noop / cold:.1%} | < 5% |")
    print(f"| one changed parameter of the last job / cold | {changed:.1f} s = {changed / cold:.1%} | < 15% |")
    print(f"| per job through the rule | {per_job['per job through the rule (s)']:.2f} s | < 1 s |")
    print(f"| per job called directly | {per_job['per job called directly (s)']:.3f} s | |")
    print(f"| `snakemake -n` of 1 job (start-up: imports, parsing) | {startup:.1f} s | |")
    for size, own, seconds, peak_mb in planning:
        print(
            f"| planning {size:,} jobs: sandflow / `snakemake -n` | {own:.2f} s ({own / size * 1000:.2f} ms/job) / "
            f"{seconds:.1f} s ({(seconds - startup) / size * 1000:.1f} ms/job after start-up), peak {peak_mb:.0f} MB "
            f"| {'< 3 s' if size == 1000 else ''} |"
        )
    if flagship:
        cold_flagship = flagship["cold (s)"]
        print(f"| flagship: cold run | {cold_flagship:.0f} s | |")
        for name, goal in (
            ("no-op rerun (s)", "< 5%"),
            ("one changed evaluation parameter (s)", "< 15%"),
            ("the same, job server kept (s)", "< 15%"),
        ):
            print(
                f"| flagship: {name[:-4]} / cold | {flagship[name]:.1f} s = {flagship[name] / cold_flagship:.1%} | {goal} |"
            )
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
