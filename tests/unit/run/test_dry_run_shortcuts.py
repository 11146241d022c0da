"""Dry runs through run/dry_run_shortcuts.py:

* ``python -m snakemake -n`` ends once its exit handlers have run and its output is flushed, with Snakemake's status,
  without Python's teardown of its objects; anything else ends as Python ends it;
* Snakemake executes a dry run with the garbage collector off, a real run with it on, and leaves it on.

Each process below loads a ``sitecustomize`` that marks, in a directory, an exit handler having run and an object
of its module having been freed (which only Python's teardown does).
"""

from __future__ import annotations

import gc
import logging
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml

from helpers.env import snakemake_env
from helpers.hpo_grid import grid_config
from helpers.paths import SNAKEFILE
from helpers.snakemake_api import parsed_workflow

MARKING = """
import atexit

MARKS = {marks!r}


class FreedInTeardown:
    def __del__(self, open=open):
        open(MARKS + "/teardown", "w").close()


kept = FreedInTeardown()
atexit.register(lambda: open(MARKS + "/exit_handler", "w").close())
"""


def marked_run(tmp_path: Path, name: str, command: list[str]) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """``command`` run in tmp_path with the marking sitecustomize: its result and the marks it left."""
    marks, site = tmp_path / f"marks_{name}", tmp_path / f"site_{name}"
    marks.mkdir()
    site.mkdir()
    (site / "sitecustomize.py").write_text(MARKING.format(marks=str(marks)))
    env = snakemake_env()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    return result, {path.name for path in marks.iterdir()}


@pytest.mark.slow  # runs snakemake three times
def test_a_dry_run_ends_after_its_exit_handlers_and_output_without_teardown(tmp_path: Path):
    for name in ("a", "b"):
        (tmp_path / f"{name}.jsonl").write_text('{"grade": 1, "truth": 1}\n')
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(grid_config(2), sort_keys=False))
    snakemake = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--configfile", "grid.yaml"]

    python_alone, marks = marked_run(tmp_path, "python", [sys.executable, "-c", "pass"])
    assert python_alone.returncode == 0 and marks == {"exit_handler", "teardown"}  # the marks work

    listed, marks = marked_run(tmp_path, "listed", [*snakemake, "--cores", "1", "-n"])
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert listed.stdout.rstrip().endswith("The order of jobs does not reflect the order of execution.")
    assert "rule hpo_summary:" in listed.stdout
    assert marks == {"exit_handler"}

    refused, marks = marked_run(tmp_path, "refused", [*snakemake, "--cores", "1", "-n", "no/such/file"])
    assert refused.returncode == 1 and "No rule to produce no/such/file" in refused.stdout + refused.stderr
    assert marks == {"exit_handler"}


def test_other_exits_are_pythons():
    from sandflow.run.dag_shortcuts import INSTALLED
    from sandflow.run.dry_run_shortcuts import dry_runs_exit_without_teardown

    dry_runs_exit_without_teardown()
    assert getattr(sys.exit, INSTALLED, False)  # Snakemake's process has it too, and other exits go on as before
    with pytest.raises(SystemExit) as exited:
        sys.exit(3)
    assert exited.value.code == 3
    with pytest.raises(SystemExit) as exited:
        sys.exit("message")
    assert exited.value.code == "message"


class Plugin:
    """What Workflow.execute reads of its executor plugin to know a dry run (Snakemake's ExecutorPlugin has it)."""

    def __init__(self, dry: bool) -> None:
        self.common_settings = types.SimpleNamespace(dryrun_exec=dry)


def test_a_dry_run_executes_with_the_garbage_collector_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from snakemake.logging import logger
    from snakemake.workflow import Workflow

    from sandflow.run.dry_run_shortcuts import no_collector_while_dry_running

    no_collector_while_dry_running()
    (tmp_path / "Snakefile").write_text('rule a:\n    output: "a.txt"\n    shell: "touch {output}"\n')
    monkeypatch.chdir(tmp_path)
    collecting: list[bool] = []  # whether the collector was on when Snakemake logged its start

    class Recorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            collecting.append(gc.isenabled())

    recorder = Recorder()
    with parsed_workflow(tmp_path) as workflow:
        logger.addHandler(recorder)  # after Snakemake has set up its handlers
        try:
            for dry in (True, False):
                with pytest.raises(AssertionError):  # its settings for a run are not given here: it stops there
                    Workflow.execute(workflow, Plugin(dry), None, None, None, None)
                assert gc.isenabled()
        finally:
            logger.removeHandler(recorder)
    assert collecting == [False, True]
