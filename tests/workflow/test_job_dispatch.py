"""A job for the job server goes there from Snakemake's own process (run/dispatch_shortcuts.py): no script process
per job (nor for the assembly of context_infos.json), the job's benchmark measures the child that runs it, and Ctrl-C
stops the jobs under way at once."""

from __future__ import annotations

import csv
import json
import os
import signal
import time
from pathlib import Path

import pytest

from sandflow.core import layout

from helpers.dj_jobs import write_process_config
from helpers.kill_windows import partials, start
from helpers.processes import left_behind
from helpers.snakemake import snakemake

pytestmark = pytest.mark.slow

HOOK = "ProcessDataHook"


def kept_scripts(root: Path) -> list[str]:
    """The scripts Snakemake wrote for its script processes (kept by --skip-script-cleanup), by script name."""
    return sorted(path.name.split(".", 1)[1] for path in (root / ".snakemake" / "scripts").glob("tmp*"))


def benchmark_of(root: Path) -> dict[str, str]:
    (job,) = (root / "work" / "jobs" / HOOK).iterdir()
    with open(layout.job_benchmark(str(root / "work"), HOOK, job.name)) as handle:
        (row,) = list(csv.DictReader(handle, delimiter="\t"))
    return row


@pytest.mark.parametrize("job_server", ["on", "0"], ids=["served", "own-process"])
def test_a_served_job_runs_without_a_script_process_and_its_benchmark_measures_its_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, job_server: str
):
    if job_server == "0":
        monkeypatch.setenv("SANDFLOW_JOB_SERVER", "0")
    else:
        monkeypatch.delenv("SANDFLOW_JOB_SERVER", raising=False)
    config = write_process_config(tmp_path).name
    snakemake(tmp_path, config, "--skip-script-cleanup")
    scripts = kept_scripts(tmp_path)
    # The publication record is written in Snakemake's process; with the server, the job and the assembly of
    # context_infos.json run in its children.
    assert scripts == ([] if job_server == "on" else ["assemble_context.py", "run_job.py"]), scripts
    assert json.loads((tmp_path / "work" / "context_infos.json").read_text())[0]["pipeline_infos"]
    # The job's own process, or the server's child that ran it: Data-Juicer's libraries are in its memory. A process
    # waiting for the child (a script process before this) held about 30 MB.
    assert float(benchmark_of(tmp_path)["max_rss"]) > 100, benchmark_of(tmp_path)


def test_ctrl_c_during_a_served_job_stops_it_at_once(tmp_path: Path):
    """Snakemake waits for the jobs under way when it is cancelled; a served job's child ends when its connection
    closes, which the cancel does first. Without that the run waits for the rest of the job (15 s here)."""
    config = write_process_config(tmp_path, 400_000).name
    env = {k: v for k, v in os.environ.items() if k != "SANDFLOW_JOB_SERVER"}
    run = start(tmp_path, config, **env)
    log_dir = tmp_path / "work" / "logs" / HOOK
    deadline = time.monotonic() + 300
    # The job's child is at work once Data-Juicer logged its first op.
    while time.monotonic() < deadline and run.poll() is None:
        logs = list(log_dir.glob("*.log")) if log_dir.is_dir() else []
        if logs and "text_length_filter" in logs[0].read_text(errors="replace"):
            break
        time.sleep(0.1)
    assert run.poll() is None and partials(tmp_path, "work"), "the run ended before its job got under way"
    os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C at its terminal does
    stopped = time.monotonic()
    run.wait(timeout=120)
    waited = time.monotonic() - stopped
    assert waited < 5, f"the run took {waited:.1f} s to stop"  # 0.1-0.2 s here
    assert not list((tmp_path / "work" / "jobs" / HOOK).glob("*/context.json"))  # stopped, not finished
    assert left_behind(tmp_path) == []
    log = next(log_dir.glob("*.log")).read_text(errors="replace")
    assert "done in" not in log, log[-2000:]
