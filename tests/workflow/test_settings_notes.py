"""DJ-Sandbox's `resume: false` and `debug: true` change nothing here: sandflow says so before a run, in
`sandflow check` and when Snakemake starts, instead of accepting them silently."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sandflow.cli import main

from helpers.paths import copy_from_repo
from helpers.snakemake import snakemake

RESUME = (
    "resume: false changes nothing: a run always reuses the jobs that finished with the same inputs "
    "(upstream's resume: true); to rerun every job, add --forceall"
)
DEBUG = (
    "debug: true changes nothing: every job logs in full to <work_dir>/logs/<hook>/<key>.log; "
    "snakemake --verbose says more of what Snakemake does"
)


def config_with(tmp_path: Path, **settings) -> str:
    """configs/hpo/sandbox.yaml's pipeline without its search, with the given top-level settings."""
    copy_from_repo(tmp_path, "configs/hpo", "configs/data/hpo")
    raw = yaml.safe_load((tmp_path / "configs/hpo/sandbox.yaml").read_text())
    raw.pop("hpo_config")
    (tmp_path / "settings.yaml").write_text(yaml.safe_dump({**raw, **settings}, sort_keys=False))
    return "settings.yaml"


@pytest.mark.parametrize(
    "settings, note",
    [
        ({"resume": False}, RESUME),
        ({"debug": True}, DEBUG),
        ({"resume": False, "debug": True}, f"{RESUME}; {DEBUG}"),
        ({"resume": True, "debug": False}, None),
        ({}, None),
    ],
)
def test_check_says_which_settings_change_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, settings: dict, note: str | None
):
    config = config_with(tmp_path, **settings)
    monkeypatch.chdir(tmp_path)
    assert main(["check", config]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note: ")]
    assert notes == ([f"note: {note}"] if note else [])


@pytest.mark.slow
def test_snakemake_says_it_when_it_starts(tmp_path: Path):
    config = config_with(tmp_path, resume=False)
    result = snakemake(tmp_path, config, "-n")
    assert f"sandflow: note: {RESUME}" in result.stderr.splitlines()
