"""A finished TrainModelHook job's record with its training log, as the report's figures read it."""

from __future__ import annotations

import json
from pathlib import Path


def training_job(tmp_path: Path, losses: list[float]) -> dict:
    job_dir = tmp_path / "jobs" / "TrainModelHook" / "k1"
    (job_dir / "extra_configs.export_path").mkdir(parents=True, exist_ok=True)
    (job_dir / "context.json").write_text(json.dumps({"values": ["/ckpt"], "config": {}}))
    (job_dir / "extra_configs.export_path" / "train_log.json").write_text(
        json.dumps([{"step": step, "loss": loss} for step, loss in enumerate(losses, 1)])
    )
    return {
        "key": "k1",
        "job_dir": str(job_dir),
        "hook": "TrainModelHook",
        "meta_name": "train",
        "pipeline": "p",
        "iteration": 1,
        "trial": None,
        "readable_name": "train",
        "output_names": None,
    }
