"""Helpers of tests/workflow/test_object_store.py: the workflow its runs use and its data, what a bucket holds, and
stopping a run in a window (as tests/helpers/kill_windows.py does locally: the test watches the bucket, freezes the run
with SIGSTOP once the window is on, reads where the stop landed, and only then kills it).

The workflow is a chain of fast jobs (downsample, duplicate, an mse evaluation of the duplicated pools)
on generated data.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

from sandflow.core.layout import COMMIT_FILE, CONTEXT_FILE, MANIFEST_FILE
from sandflow.run.storage import SNAKEMAKE_TIMESTAMP, UPLOADED

from helpers.env import snakemake_env
from helpers.paths import REPO
from helpers.snakemake import snakemake, snakemake_command

BUCKET = "sandflow-jobs"
# Fake, but unmistakable: it must never appear in anything the run writes.
SECRET = "sandflow-test-secret-5b1f0c"
S3_PROFILE = REPO / "profiles" / "s3"


# Downsample, duplicate x1 and x2, score the duplicated pools by mse against a ground-truth key.
CONFIG = """\
work_dir: ./out
execution_job_configs:
  - {hook: DataPoolManipulationHook, meta_name: sample, output: sampled,
     extra_configs: {type: data_pool_downsampling, dataset_path: ./data.jsonl, target_num_samples: 200,
                     shuffle_seed: 3, export_path: ./out/pools/}}
  - {hook: DataPoolManipulationHook, meta_name: duplicate, output: duplicated,
     input: {extra_configs.dataset_path: -1.sampled},
     extra_configs: {type: data_pool_duplication, dataset_path: <sampled>, duplicating_times: [1, 2],
                     export_path: ./out/duplicated/}}
evaluation_job_configs:
  - {hook: EvaluateDataHook, meta_name: score, output: [results, best],
     input: {extra_configs.predicted_dataset_path: -1.duplicated},
     extra_configs: {type: mse, predicted_dataset_path: <duplicated>, predicted_value_key: score,
                     ground_truth_value_key: TRUTH}}
"""


def write_config(run_dir: Path, truth_key: str = "truth") -> str:
    (run_dir / "experiment.yaml").write_text(CONFIG.replace("TRUTH", truth_key))
    return "experiment.yaml"


def make_run_dir(directory: Path, padding: int = 0) -> Path:
    """The config and its data: 400 rows, each with ``padding`` more characters of text."""
    directory.mkdir(parents=True)
    rows = random.Random(11)
    with (directory / "data.jsonl").open("w") as handle:
        for number in range(400):
            score = rows.randrange(0, 5)
            text = f"sample {number} " + "x" * padding
            handle.write(
                json.dumps({"text": text, "score": score, "truth": score, "truth2": score + (number % 3)}) + "\n"
            )
    write_config(directory)
    return directory


def keys(client, prefix: str) -> list[str]:
    return [
        item["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        for item in page.get("Contents", [])
    ]


def objects(client, prefix: str) -> dict[str, bytes]:
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for item in page.get("Contents", []):
            found[item["Key"][len(prefix) :]] = client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
    return found


def store_args(prefix: str | None) -> list[str]:
    """profiles/s3; the prefix on the command line, or (None) from $SANDFLOW_S3_PREFIX."""
    return ["--profile", str(S3_PROFILE), *(["--default-storage-prefix", f"s3://{BUCKET}/{prefix}"] if prefix else [])]


def store_run(run_dir: Path, prefix: str | None, *args: str, check: bool = True):
    return snakemake(run_dir, "experiment.yaml", *store_args(prefix), *args, check=check)


def whole_jobs(stored: dict[str, bytes]) -> list[str]:
    """The job directories in ``stored`` (keys under <work_dir>/), each checked whole: marker, record, and every
    artifact of its manifest with the sha256 the manifest gives, nothing else (but Snakemake's timestamp)."""
    jobs = sorted(name[: -len(UPLOADED)] for name in stored if name.startswith("jobs/") and name.endswith(UPLOADED))
    for job in jobs:
        manifest = json.loads(stored[f"{job}/{MANIFEST_FILE}"])
        assert f"{job}/{CONTEXT_FILE}" in stored
        for name, entry in manifest.items():
            assert hashlib.sha256(stored[f"{job}/{name}"]).hexdigest() == entry["sha256"], f"{job}/{name}"
            assert len(stored[f"{job}/{name}"]) == entry["size"], f"{job}/{name}"
        held = {name[len(job) + 1 :] for name in stored if name.startswith(f"{job}/")}
        assert held == {*manifest, CONTEXT_FILE, MANIFEST_FILE, COMMIT_FILE, SNAKEMAKE_TIMESTAMP}, job
    return jobs


def start_store_run(run_dir: Path, prefix: str, *args: str) -> subprocess.Popen:
    """snakemake with profiles/s3 in its own process group, to be stopped and killed as a whole; its output
    goes to snakemake.log in run_dir."""
    with (run_dir / "snakemake.log").open("w") as log:
        return subprocess.Popen(
            [*snakemake_command("experiment.yaml", *store_args(prefix), *args), "--cores", "2"],
            cwd=run_dir,
            env=snakemake_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_when(run: subprocess.Popen, run_dir: Path, what: str, found) -> object:
    """Poll the bucket until found() is truthy, then freeze the run (SIGSTOP), so what the bucket holds
    can be read before the run is killed."""
    deadline = time.monotonic() + 600
    while not (result := found()):
        assert run.poll() is None, f"the run ended before {what}:\n{(run_dir / 'snakemake.log').read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no {what} within 600 s"
        time.sleep(0.002)
    os.killpg(run.pid, signal.SIGSTOP)
    return result


def kill(run: subprocess.Popen) -> None:
    if run.poll() is None:
        os.killpg(run.pid, signal.SIGKILL)
    run.wait()
