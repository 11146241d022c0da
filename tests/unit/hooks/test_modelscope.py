"""The ModelScope components without the modelscope package (sandflow does not pin it): each says so
before any job runs, and a job started anyway fails with the same line."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from sandflow.core.jobio import JobFailed
from sandflow.hooks import modelscope as modelscope_hooks
from sandflow.hooks.base import JobRun
from sandflow.hooks.registry import HOOKS, missing_requirements

from helpers.job_runs import job_run

pytestmark = pytest.mark.skipif(modelscope_hooks.modelscope_available(), reason="modelscope is installed here")


def make_job(tmp_path: Path, hook: str, extra_configs: dict, dj_configs: dict | None = None) -> JobRun:
    log = logging.getLogger("test.modelscope")
    return job_run(hook, tmp_path, dj_configs=dj_configs, extra_configs=extra_configs, log=log)


@pytest.mark.parametrize("hook", ["TrainModelHook", "ProbeViaModelInferHook"])
def test_the_registry_says_what_to_install_before_any_job(hook: str):
    assert missing_requirements(HOOKS[hook], None, {"type": "modelscope"}) == [
        f"{hook} type 'modelscope' needs the modelscope package (pip install modelscope)"
    ]


def test_a_job_started_anyway_fails_with_the_same_line(tmp_path: Path):
    train = make_job(tmp_path, "TrainModelHook", {"type": "modelscope", "model_name": "m", "trainer_name": "t"})
    with pytest.raises(JobFailed, match=r"^TrainModelHook type 'modelscope' needs the modelscope package"):
        modelscope_hooks.train_modelscope(train)
    probe = make_job(
        tmp_path,
        "ProbeViaModelInferHook",
        {"type": "modelscope", "task": "text-generation", "model": "qwen/Qwen2-0.5B"},
        {"dataset_path": "d.jsonl"},
    )
    with pytest.raises(JobFailed, match=r"^ProbeViaModelInferHook type 'modelscope' needs the modelscope package"):
        modelscope_hooks.probe_modelscope(probe)
