"""One data-pool downsampling job over a generated dataset, and the job server request that runs it."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from sandflow.config.load import load_config_file
from sandflow.plan.planner import plan_config
from sandflow.run.specs import job_spec


def write_pool_config(directory: Path, samples: int, target: object = 3) -> Path:
    """One downsampling job over a generated dataset, with paths relative to directory."""
    with (directory / "data.jsonl").open("w") as handle:
        for number in range(samples):
            handle.write(json.dumps({"text": f"sample {number}"}) + "\n")
    config = {
        "work_dir": "./out",
        "execution_job_configs": [
            {
                "hook": "DataPoolManipulationHook",
                "meta_name": "sample",
                "output": "pool",
                "extra_configs": {
                    "type": "data_pool_downsampling",
                    "dataset_path": "./data.jsonl",
                    "export_path": "./out/pools/",
                    "target_num_samples": target,
                },
            }
        ],
    }
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def request_for(config: Path) -> dict:
    (job,) = plan_config(load_config_file(str(config))).jobs
    log = Path(job.work_dir) / "logs" / f"{job.key}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    return {
        "entry": "job",
        "spec": json.loads(json.dumps(job_spec(job))),
        "output": [job.context_path],
        "output_names": {},
        "log": [str(log)],
        "threads": 1,
        "preload": [],
    }
