"""docs/configs.md: every example config in the guide is accepted by `sandflow check`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from sandflow.cli import main

from helpers.config_guide import examples


def is_config(text: str) -> bool:
    data = yaml.safe_load(text)
    return "pipelines" in data or any(key.endswith("_job_configs") for key in data)


CONFIGS = [name for name, text in examples().items() if is_config(text)]


def test_the_guide_covers_pools_models_iterations_and_hpo():
    texts = "".join(examples().values())
    for needle in (
        "DataPoolManipulationHook",
        "TrainModelHook",
        "iter_targets",
        "hpo_config",
        "RefineRecipeViaKSigmaHook",
    ):
        assert needle in texts, needle
    assert len(CONFIGS) >= 6


@pytest.mark.parametrize("name", CONFIGS)
def test_every_example_config_checks(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    monkeypatch.chdir(tmp_path)
    for file_name, text in examples().items():
        Path(file_name).write_text(text)
    rows = [
        {"text": f"sample number {i} says something of length {i % 7}.", "grade": i % 3, "truth": 1} for i in range(40)
    ]
    for data in ("data.jsonl", "heldout.jsonl"):
        Path(data).write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert main(["check", name]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.startswith(f"{name}: valid.")
