"""Config and recipe files nested deeper than any config needs are one line, exit 2: libyaml's parser recursed
until the C stack overflowed (a segfault) and json.loads raised RecursionError (a traceback)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

DEPTH = 60_000


def sandflow_check(root: Path, config: str) -> subprocess.CompletedProcess:
    sandflow = Path(sys.executable).with_name("sandflow")
    return subprocess.run([str(sandflow), "check", config], cwd=root, capture_output=True, text=True, timeout=120)


def job_config(root: Path, recipe: str) -> str:
    job = {"hook": "ProcessDataHook", "meta_name": "process", "dj_configs": recipe}
    (root / "sandbox.yaml").write_text(yaml.safe_dump({"work_dir": "./work", "execution_job_configs": [job]}))
    return "sandbox.yaml"


def test_a_config_nested_past_the_parsers_stack_is_one_line(tmp_path: Path):
    (tmp_path / "deep.yaml").write_text("execution_job_configs: " + "[" * DEPTH + "]" * DEPTH + "\n")
    result = sandflow_check(tmp_path, "deep.yaml")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "sandflow: error: deep.yaml: not valid YAML: nested more than 100 levels deep\n"


def test_a_json_recipe_nested_past_pythons_recursion_limit_is_one_line(tmp_path: Path):
    (tmp_path / "recipe.json").write_text('{"process": ' + "[" * 5000 + "]" * 5000 + "}")
    result = sandflow_check(tmp_path, job_config(tmp_path, "recipe.json"))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "sandflow: error: sandbox.yaml: execution_job_configs[0].dj_configs: "
        "recipe.json: not valid JSON: nested more than 100 levels deep\n"
    )
    assert not (tmp_path / "work").exists()
