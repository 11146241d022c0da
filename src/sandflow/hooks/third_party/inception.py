"""EvaluateDataHook ``video_inception_evaluator`` runs ``python -m tools.mm_eval.inception_metrics.
calc_metrics_for_videos`` (upstream's code, shipped in py-data-juicer) with the config's keys as options
and the job's own result file, and returns the result dict upstream returns.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from sandflow.hooks.base import JobRun
from sandflow.hooks.third_party.tools import env_prefix, environment_problems, logged

INCEPTION_MODULE = "tools.mm_eval.inception_metrics.calc_metrics_for_videos"
INCEPTION_METRICS = (
    "fvd2048_16f",
    "fvd2048_128f",
    "fvd2048_128f_subsample8f",
    "kvd2048_16f",
    "isv2048_ucf",
    "prv2048_3n_16f",
    "fid50k",
    "kid50k",
    "is50k",
    "pr50k_3n",
)
INCEPTION_WITHOUT_REAL_DATA = ("isv2048_ucf", "is50k")  # inception scores judge the generated videos alone
INCEPTION_ARGS = (
    "fake_data_path",
    "real_data_path",
    "fake_mm_dir",
    "real_mm_dir",
    "metric",
    "detector_path",
    "num_runs",
    "height",
    "width",
    "replace_cache",
    "verbose",
    "seed",
)
INCEPTION_RESULTS = "inception_eval_results.jsonl"


def inception_requirements(dj_configs: Any, extra_configs: Any) -> list[str]:
    import importlib.util

    config = extra_configs if isinstance(extra_configs, dict) else {}
    metric = config.get("metric", "fvd2048_16f")
    missing = []
    if metric not in INCEPTION_METRICS:
        missing.append(f"extra_configs.metric={metric!r} is none of {', '.join(INCEPTION_METRICS)}")
    if not isinstance(config.get("fake_data_path"), str):
        missing.append("extra_configs.fake_data_path is missing: the generated videos to evaluate")
    if metric not in INCEPTION_WITHOUT_REAL_DATA and not isinstance(config.get("real_data_path"), str):
        missing.append(f"extra_configs.real_data_path is missing: {metric} compares with real videos")
    if config.get("env_manager", "conda") == "none":
        for module, package in ((INCEPTION_MODULE, "py-data-juicer"), ("fire", "fire")):
            try:
                found = importlib.util.find_spec(module) is not None
            except ImportError:
                found = False
            if not found:
                missing.append(f"{module} is not importable: install {package} (envs/inception.yaml pins the set)")
    return missing + environment_problems(config, "inception.yaml")


def video_inception_evaluator(job: JobRun) -> dict[str, Any]:
    """Upstream's calc_metrics as its command line, results in the job's own jsonl; returns its result dict."""
    config = job.extra_configs or {}
    results_file = job.job_dir / INCEPTION_RESULTS
    options = [f"--{key}={config[key]}" for key in INCEPTION_ARGS if config.get(key) is not None]
    prefix = env_prefix(config, "inception")
    python = "python" if prefix else sys.executable  # the env's own python, or this one's with env_manager none
    argv = [*prefix, python, "-m", INCEPTION_MODULE, *options, f"--result_path={results_file}"]
    job.log.info("running %s", argv)
    for _ in logged(argv, Path.cwd(), None, job, "inception metrics"):
        pass
    lines = results_file.read_text().splitlines() if results_file.exists() else []
    if not lines:
        raise RuntimeError(f"the inception metrics wrote no results to {results_file}")
    record = json.loads(lines[-1])
    # the tool's line adds what it ran on to the result dict upstream returns
    return {key: value for key, value in record.items() if key not in ("num_runs", "real_data_path", "fake_data_path")}
