"""docs/resources.md is what the registry says, and a dry run through the real profiles/slurm asks SLURM for it."""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from sandflow.config.load import load_config_file
from sandflow.devtools import resources_table
from sandflow.plan.planner import plan_config

from helpers.env import snakemake_env
from helpers.every_hook import EVERY_HOOK
from helpers.paths import REPO
from helpers.snakemake import snakemake_command

DOC = REPO / "docs" / "resources.md"


def documented_rows() -> dict[tuple[str, str], dict[str, str]]:
    """(hook, component) -> the row's cells by column, as docs/resources.md has them."""
    lines = [line for line in DOC.read_text().splitlines() if line.startswith("| ") and not line.startswith("| hook")]
    rows = [dict(zip(resources_table.COLUMNS, (cell.strip() for cell in line.strip("|").split("|")))) for line in lines]
    return {(row["hook"], row["component"]): row for row in rows}


def test_docs_resources_md_is_the_generated_table():
    assert DOC.read_text() == resources_table.markdown(), "regenerate: python -m sandflow.devtools.resources_table"


def test_the_table_has_every_hook_and_component_and_what_the_issue_asked():
    rows = documented_rows()
    assert len(rows) == len(resources_table.rows())
    # perplexity and caption metrics are CPU evaluation; only InternVL's evaluation is internvl
    for key in [("EvaluateModelHook", "perplexity"), ("EvaluateDataHook", "coco_caption")]:
        assert (rows[key]["family"], rows[key]["gpu"], rows[key]["env"]) == ("evaluation", "0", "training"), key
    assert rows[("EvaluateModelHook", "internvl_coco_caption")]["family"] == "internvl"
    # a local model's inference on one GPU asks less than training; an API call asks no GPU
    inference, training = rows[("InferModelHook", "huggingface")], rows[("TrainModelHook", "huggingface")]
    assert inference["gpu"] == "1" and int(inference["mem_mb"]) < int(training["mem_mb"])
    assert int(inference["runtime"]) < int(training["runtime"])
    assert rows[("InferModelHook", "api")]["gpu"] == "0"


# Training, inference (local and API) and evaluation (CPU and GPU), each job on its family's defaults.
DEFAULTS_ONLY = copy.deepcopy(EVERY_HOOK)
for job in DEFAULTS_ONLY["execution_job_configs"]:
    job.pop("resources", None)
DEFAULTS_ONLY["execution_job_configs"] += [
    {"hook": "InferModelHook", "meta_name": "infer_hf", "extra_configs": {"type": "huggingface"}},
    {"hook": "InferModelHook", "meta_name": "infer_api", "extra_configs": {"type": "api", "api_key_env": ""}},
]
DEFAULTS_ONLY["evaluation_job_configs"] += [
    {"hook": "EvaluateModelHook", "meta_name": "perplexity", "extra_configs": {"type": "perplexity"}},
    {"hook": "EvaluateDataHook", "meta_name": "captions", "extra_configs": {"type": "coco_caption"}},
]
JOB_BLOCK = re.compile(r"^rule (\w+):\n((?:    .*\n)+)", re.M)


def dry_run_requests(text: str) -> dict[str, dict[str, str]]:
    """Job key -> what Snakemake's dry run prints for the job: its rule, threads and each resource."""
    requests = {}
    for rule, body in JOB_BLOCK.findall(text):
        output = re.search(r"^    output: .*/jobs/\w+/(\w+)/context\.json$", body, re.M)
        if not output:
            continue  # not a hook job
        fields = dict(re.findall(r"^    (\w+): (.*)$", body, re.M))
        asked = dict(item.split("=", 1) for item in fields["resources"].split(", "))
        requests[output.group(1)] = {"rule": rule, "threads": fields.get("threads", "1"), **asked}
    return requests


@pytest.mark.slow  # one snakemake dry run: ~6 s
def test_a_dry_run_through_profiles_slurm_asks_what_the_table_says(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "data.jsonl").write_text('{"text": "a"}\n')
    (tmp_path / "sandbox.yaml").write_text(yaml.safe_dump(DEFAULTS_ONLY))
    # A dry run caps threads at --cores (1 unless given); a SLURM run does not cap them.
    result = subprocess.run(
        [*snakemake_command("sandbox.yaml", "-n", "--cores", "1024"), "--profile", str(REPO / "profiles/slurm")],
        cwd=tmp_path,
        env=snakemake_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "conda" not in result.stdout + result.stderr  # the venv: no conda asked for
    requests = dry_run_requests(result.stdout + result.stderr)
    monkeypatch.chdir(tmp_path)
    jobs = plan_config(load_config_file("sandbox.yaml")).by_key
    assert set(requests) == set(jobs)
    rows = documented_rows()
    asked_by_component = {}
    for key, asked in requests.items():
        job = jobs[key]
        row = rows[(job.hook.name, job.component or "-")]
        gpu_job = row["gpu"] != "0"
        expected = {
            "rule": row["rule"],
            "threads": row["threads"],
            "gpu": row["gpu"],
            "mem_mb": row["mem_mb"],
            "runtime": row["runtime"],
            "cpus_per_gpu": row["cpus_per_gpu"] if gpu_job else None,
            "slurm_partition": None,  # SLURM's default partition (the profile's EDIT line sets one)
        }
        assert {name: asked.get(name) for name in expected} == expected, (job.hook.name, job.component)
        asked_by_component[job.hook.name, job.component] = (asked["gpu"], asked["mem_mb"], asked["runtime"])
    # the issue's two cases were 64 GB / 24 h (HF inference) and 128 GB / 24 h (perplexity)
    assert asked_by_component["InferModelHook", "huggingface"] == ("1", "32768", "240")
    assert asked_by_component["EvaluateModelHook", "perplexity"] == ("0", "16384", "240")
    assert asked_by_component["InferModelHook", "api"] == ("0", "4096", "240")
    assert asked_by_component["TrainModelHook", "huggingface"] == ("1", "65536", "1440")
