"""EvaluateDataHook ``vbench_video_evaluator`` runs ``vbench evaluate --ngpus ... --dimension <d> ...``
once per ``dimension_list`` entry, as upstream, reads each dimension's score from the results file
VBench names in its log, writes ``<eval_name>_merged_results.json`` ({mean_score, detail}) and returns
the mean score. Its ``output_path`` is the job's ``eval_results`` directory.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from sandflow.hooks.base import JobRun
from sandflow.hooks.third_party.tools import env_prefix, environment_problems, gpu_count, logged

VBENCH_RESULTS = re.compile(r"Evaluation results saved to (.*?)\.json")


def vbench_requirements(dj_configs: Any, extra_configs: Any) -> list[str]:
    config = extra_configs if isinstance(extra_configs, dict) else {}
    missing = [
        f"extra_configs.{key} is missing: VBench needs it"
        for key in ("full_json_dir", "videos_path")
        if not isinstance(config.get(key), str)
    ]
    dimensions = config.get("dimension_list")
    if not isinstance(dimensions, list) or not dimensions or not all(isinstance(d, str) for d in dimensions):
        missing.append("extra_configs.dimension_list must list the VBench dimensions to evaluate")
    if config.get("env_manager", "conda") == "none" and not shutil.which("vbench"):
        missing.append("vbench is not on PATH: `pip install vbench` (or use env_manager conda with envs/vbench.yaml)")
    return missing + environment_problems(config, "vbench.yaml")


def vbench_video_evaluator(job: JobRun) -> float:
    config = job.extra_configs or {}
    output = job.job_dir / "eval_results"
    output.mkdir()
    detail: dict[str, float] = {}
    for dimension in config["dimension_list"]:
        argv = [
            *env_prefix(config, "vbench"),
            "vbench",
            "evaluate",
            "--ngpus",
            str(config.get("num_gpus") or gpu_count()),
            "--full_json_dir",
            str(config["full_json_dir"]),
            "--output_path",
            str(output),
            "--videos_path",
            str(config["videos_path"]),
            "--dimension",
            dimension,
            "--load_ckpt_from_local",
            str(bool(config.get("load_ckpt_from_local", False))),
        ]
        job.log.info("running %s", argv)
        results_file = None
        for line in logged(argv, Path.cwd(), None, job, "vbench", output / f"eval_log_{dimension}.txt"):
            found = VBENCH_RESULTS.search(line)
            results_file = results_file or (found and f"{found.group(1)}.json")
        if results_file is None:
            raise RuntimeError(
                f"VBench's log for {dimension} names no results file (eval_results/eval_log_{dimension}.txt)"
            )
        detail[dimension] = float(json.loads(Path(results_file).read_text())[dimension][0])
    merged = {"mean_score": sum(detail.values()) / len(detail), "detail": detail}
    name = config.get("eval_name", "vbench_evaluator")
    (output / f"{name}_merged_results.json").write_text(json.dumps(merged, indent=2) + "\n")
    return merged["mean_score"]
