"""Data-Juicer's ops free models without importing torch when no op loaded one (hooks/dj_free_models.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.imports import imported_after
from helpers.paths import REPO

# A probe job of the demo's five filters (no model) on 40 demo rows, in a work_dir, as a run lays it out.
PROBE_JOB = f"""
import sys, yaml
sys.path.insert(0, {str(REPO / "tests")!r})
from pathlib import Path
from helpers.dj_jobs import process_recipe, run_dj_job
recipe = yaml.safe_load(open({str(REPO / "configs/demo/process.yaml")!r}))
data = Path("data.jsonl")
data.write_text("".join(open({str(REPO / "configs/data/demo/demo-dataset.jsonl")!r}).readlines()[:40]))
job = run_dj_job(Path("work"), sys.argv[1], "k1", process_recipe(data.resolve(), recipe["process"]))
assert " Done in " in job.log and job.result.is_file(), job.log
"""


@pytest.mark.slow  # imports Data-Juicer in a fresh process
@pytest.mark.parametrize("hook", ["ProbeViaAnalyzerHook", "ProcessDataHook"])
def test_a_job_whose_ops_load_no_model_imports_no_torch(hook, tmp_path: Path):
    # Before: every op's run ended in free_models() -> torch.cuda.empty_cache(), importing torch (2-4 s).
    _, modules = imported_after(tmp_path, PROBE_JOB, hook)
    assert "data_juicer.ops.filter.text_length_filter" in modules
    assert "torch" not in modules


@pytest.mark.slow  # imports Data-Juicer
def test_a_loaded_model_is_still_freed():
    import data_juicer.ops.base_op as base_op
    from data_juicer.utils import model_utils

    from sandflow.hooks.dj_free_models import free_models_lazily

    class Model:
        devices: list[str] = []

        def to(self, device: str) -> None:
            self.devices.append(device)

    original = base_op.free_models
    model_utils.MODEL_ZOO["a model"] = Model()
    try:
        with free_models_lazily():
            assert base_op.free_models is not original
            base_op.free_models()
    finally:
        model_utils.MODEL_ZOO.pop("a model", None)
    assert Model.devices == ["cpu"] and not model_utils.MODEL_ZOO  # Data-Juicer's own free_models ran
    assert base_op.free_models is original
