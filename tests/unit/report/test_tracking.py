"""wandb tracking: what is logged per pipeline, offline, from finished job records (real wandb, no network)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandflow.report.tracking import scalars, track


def test_scalars_flatten_outputs_as_upstreams_watcher_does():
    value = {"mse": 0.25, "per_pool": [{"acc": 1}, {"acc": True, "name": "x"}], "path": "/a.jsonl", "nan": float("nan")}
    assert dict(scalars(value, "eval.results")) == {
        "eval.results.mse": 0.25,
        "eval.results.per_pool.0.acc": 1.0,
        "eval.results.per_pool.1.acc": 1.0,
    }


def job(tmp_path: Path, key: str, meta_name: str, iteration: int, values: list, config: dict) -> dict:
    job_dir = tmp_path / "jobs" / key
    job_dir.mkdir(parents=True)
    (job_dir / "context.json").write_text(json.dumps({"values": values, "config": config}))
    return {
        "key": key,
        "job_dir": str(job_dir),
        "meta_name": meta_name,
        "pipeline": "p",
        "iteration": iteration,
        "trial": None,
        "output_names": None,
    }


@pytest.mark.slow  # wandb starts its service process: ~5 s
def test_one_offline_run_per_pipeline_with_scalars_per_iteration_and_training_curves(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    jobs = [
        job(tmp_path, "a1", "train", 1, ["/ckpt"], {"extra_configs": {"lr": 0.1}}),
        job(tmp_path, "b1", "eval", 1, [{"ppl": 9.5}], {}),
        job(tmp_path, "b2", "eval", 2, [{"ppl": 7.25}], {}),
    ]
    curve = Path(jobs[0]["job_dir"]) / "extra_configs.export_path" / "pool_0"
    curve.mkdir(parents=True)
    (curve / "train_log.json").write_text(
        json.dumps(
            [
                {"step": 1, "epoch": 0.5, "loss": 4.0, "grad_norm": None, "learning_rate": 0.1},
                {"step": 2, "epoch": 1.0, "loss": 3.5, "grad_norm": 1.5, "learning_rate": 0.05},
            ]
        )
    )
    spec = {"work_dir": str(tmp_path), "jobs": jobs, "wandb": {"project": "proj", "experiment": "exp"}}
    (run,) = track(spec, str(tmp_path / "tracked.json"))
    curve_keys = [
        f"train/extra_configs.export_path.pool_0/{c}" for c in ("epoch", "grad_norm", "learning_rate", "loss")
    ]
    assert run["name"] == "exp.p" and run["keys"] == sorted(["eval.0.ppl", *curve_keys])
    assert json.loads((tmp_path / "tracked.json").read_text()) == {"mode": "offline", "runs": [run]}
    (run_dir,) = (tmp_path / "wandb").glob(f"offline-run-*-{run['id']}")
    records = (run_dir / f"run-{run['id']}.wandb").read_bytes()
    # wandb's transaction log is protobuf: keys and JSON values appear as bytes.
    for text in ("eval.0.ppl", "7.25", "9.5", curve_keys[3], "3.5", '{"extra_configs":{"lr":0.1}}', "iteration"):
        assert text.encode() in records, text
