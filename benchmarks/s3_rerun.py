#!/usr/bin/env python3
"""What the job store in an object store costs: cold runs and no-op reruns, in an S3 bucket vs local.

    .venv/bin/python benchmarks/s3_rerun.py [--scratch DIR] [--rows 50000] [--trivial 100]

The bucket is moto's S3 server on 127.0.0.1, started here (fake credentials in the environment of
snakemake only), so the numbers are Snakemake's storage plugin and sandflow's staging, not a network.
Two configs, each run locally (work_dir on this disk) and with ``--default-storage-provider s3``:

* two independent pipelines of four pool jobs on generated data (benchmarks/run_overheads.py's);
* ``--trivial`` independent trivial jobs (a no-op rerun asks the store about every job directory).

For each: the cold run, a no-op rerun (median of three), a no-op rerun from a directory that has never
seen the run (no .snakemake, no work_dir: another machine), and a rerun after changing one parameter
of one last job. benchmarks/RESULTS.md holds the last results.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_overheads import fresh, pool_chain, snakemake, trivial_jobs, write_data  # noqa: E402

BUCKET = "sandflow-bench"


def start_server() -> tuple[object, str]:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def measure(
    root: Path, name: str, make_config, data_files: dict[str, str], store: list[str], env: dict[str, str]
) -> dict[str, float]:
    """Seconds of: cold, no-op (median of 3), no-op elsewhere, one changed parameter."""

    def directory(label: str) -> Path:
        path = fresh(root, f"{name}-{label}")
        for file_name, text in data_files.items():
            (path / file_name).write_text(text)
        return path

    here, elsewhere = directory("here"), directory("elsewhere")
    results = {"cold": snakemake(here, make_config(False), *store, env=env)}
    results["no-op"] = statistics.median(snakemake(here, make_config(False), *store, env=env) for _ in range(3))
    if store:  # another machine: nothing local but the config and the data
        results["no-op elsewhere"] = snakemake(elsewhere, make_config(False), *store, env=env)
    results["one changed parameter"] = snakemake(here, make_config(True), *store, env=env)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scratch", type=Path, default=None, help="where to run (default: a temporary directory)")
    parser.add_argument("--rows", type=int, default=50000, help="rows of the generated dataset (default 50000)")
    parser.add_argument("--trivial", type=int, default=100, help="independent trivial jobs (default 100)")
    args = parser.parse_args()
    root = args.scratch or Path(tempfile.mkdtemp(prefix="sandflow-s3-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    print(
        f"machine: {os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; scratch {root}"
    )

    import boto3

    server, endpoint = start_server()
    env = {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench-secret",
        "SNAKEMAKE_STORAGE_S3_ENDPOINT_URL": endpoint,
    }
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench-secret",
    ).create_bucket(Bucket=BUCKET)

    write_data(root / "data.jsonl", args.rows)
    data = {"data.jsonl": (root / "data.jsonl").read_text()}

    def pools(changed: bool) -> dict:
        last_target = {"left": 30000, "right": 29999 if changed else 30000}  # a change reaches one last job
        pipelines = {
            name: {"execution_job_configs": pool_chain(name, "./data.jsonl", seed, last_target[name])}
            for name, seed in (("left", 1), ("right", 2))
        }
        return {"work_dir": "./out", "pipelines": pipelines}

    tiny = {"tiny.jsonl": "".join(json.dumps({"text": f"t{i}"}) + "\n" for i in range(5))}

    def trivial(changed: bool) -> dict:
        jobs = trivial_jobs(args.trivial, chained=False)
        if changed:
            jobs[-1]["extra_configs"]["shuffle_seed"] += 1000
        return {"work_dir": "./out", "execution_job_configs": jobs}

    table = []
    try:
        for name, make_config, files, jobs in (("pools", pools, data, 8), ("trivial", trivial, tiny, args.trivial)):
            local = measure(root, f"{name}-local", make_config, files, [], {})
            stored = measure(
                root,
                f"{name}-s3",
                make_config,
                files,
                ["--default-storage-provider", "s3", "--default-storage-prefix", f"s3://{BUCKET}/{name}"],
                env,
            )
            table.append((name, jobs, local, stored))
    finally:
        server.stop()

    print("\n| config | measurement | local | S3 bucket (moto, 127.0.0.1) |\n|---|---|---:|---:|")
    for name, jobs, local, stored in table:
        label = f"{jobs} jobs ({name})"
        for measurement in ("cold", "no-op", "no-op elsewhere", "one changed parameter"):
            local_value = f"{local[measurement]:.1f} s" if measurement in local else "(no store)"
            print(f"| {label} | {measurement} | {local_value} | {stored[measurement]:.1f} s |")
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
