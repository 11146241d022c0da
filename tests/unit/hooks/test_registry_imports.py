"""The hook registry names each job's code by module, imported when the job runs (hooks/registry.py): planning a
config imports no hook module and none of the libraries jobs use, so the Snakefile parses and a no-op `sandflow
run` decides (run/noop.py) without them."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.imports import assert_planning_only, imported_after
from helpers.paths import copy_from_repo

PLAN = """
import sys
from sandflow.config.load import load_config_file
from sandflow.plan.planner import plan_config
print(len(plan_config(load_config_file(sys.argv[1])).jobs))
"""


@pytest.mark.parametrize(
    "config, data",
    [("configs/demo/sandbox.yaml", "configs/data/demo"), ("configs/hpo/sandbox.yaml", "configs/data/hpo")],
)
def test_planning_imports_no_hook_module_and_no_job_library(tmp_path: Path, config: str, data: str):
    copy_from_repo(tmp_path, str(Path(config).parent), data)
    result, modules = imported_after(tmp_path, PLAN, config)
    assert int(result.stdout.splitlines()[0]) > 0  # it planned jobs
    assert_planning_only(modules)
