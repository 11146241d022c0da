"""What a run shows on the terminal: a job's output (Data-Juicer's progress bars, prints, C code) goes to the
job's log, ``--logger sandflow`` prints one line per finished job with its job directory, a failed job's one
line stays on the terminal, and the run ends with what ran, what was cached and what to try next."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sandflow.config.load import load_config_file
from sandflow.plan.planner import plan_config

from helpers.dj_jobs import write_process_config
from helpers.env import snakemake_env
from helpers.snakemake import snakemake

# What progress bars leave in text: tqdm's bar and rate, Hugging Face datasets' rate.
PROGRESS = re.compile(r"\d+%\|.*\||examples/s|it/s\]")
# Snakemake's default block per job.
RULE_BLOCK = re.compile(r"^\s+(output|log|wildcards|resources|reason|jobid): ", re.M)
LOGGER = "--logger=sandflow"


# A job's process: its stdout and stderr are the terminal's (here: pipes the test reads).
JOB_PROCESS = r"""
import os, subprocess, sys
from tqdm import tqdm
from sandflow.core.jobio import job_logging, output_to_log, terminal_note

log = sys.argv[1]
with job_logging(log) as logger, output_to_log(log):
    logger.info("before")
    for _ in tqdm(range(3), desc="bar"):
        pass
    print("python stdout", flush=True)
    os.write(2, b"fd 2 directly\n")
    subprocess.run([sys.executable, "-c", "import sys; print('a subprocess', file=sys.stderr)"], check=True)
    terminal_note("sandflow: warning: for the user")
    logger.info("after")
print("sandflow: job failed: on the terminal again", file=sys.stderr)
"""


def test_a_jobs_output_goes_to_its_log_and_a_note_to_the_terminal(tmp_path: Path):
    log = tmp_path / "job.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run([sys.executable, "-c", JOB_PROCESS, str(log)], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr == "sandflow: warning: for the user\nsandflow: job failed: on the terminal again\n"
    text = log.read_text()
    # in the order written: the log's own lines do not overwrite what arrived through the descriptors
    order = ["before", "bar: 100%|", "python stdout", "fd 2 directly", "a subprocess", "after"]
    positions = [text.find(marker) for marker in order]
    assert -1 not in positions and positions == sorted(positions), text
    assert "for the user" not in text


def planned(root: Path, config: Path) -> list:
    cwd = os.getcwd()
    os.chdir(root)  # the config's paths are relative to where it runs
    try:
        return plan_config(load_config_file(str(config))).unique_jobs()
    finally:
        os.chdir(cwd)


@pytest.mark.slow
@pytest.mark.parametrize("job_server", ["on", "0"], ids=["job-server-child", "script-process"])
def test_a_data_juicer_run_shows_a_line_per_job_and_a_summary_and_logs_the_progress_bars(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, job_server: str
):
    if job_server == "0":
        monkeypatch.setenv("SANDFLOW_JOB_SERVER", "0")  # every job in the process Snakemake starts for it
    else:
        monkeypatch.delenv("SANDFLOW_JOB_SERVER", raising=False)  # Data-Juicer jobs go to the warm job server
    config = write_process_config(tmp_path)
    (job,) = planned(tmp_path, config)
    result = snakemake(tmp_path, "config.yaml", LOGGER)
    terminal = result.stdout + result.stderr
    assert not PROGRESS.search(terminal), terminal
    assert not RULE_BLOCK.search(terminal), terminal
    job_dir = os.path.relpath(tmp_path / job.job_dir, tmp_path)  # job_dir: relative when work_dir is
    (line,) = [line for line in terminal.splitlines() if " process_data, " in line]
    assert re.fullmatch(rf"\[\d+/\d+\] process_data, \d+\.\d s: {re.escape(job_dir)}", line), line
    assert re.search(r"^\[\d+/\d+\] context_infos, \d+\.\d s: work/context_infos\.json", terminal, re.M), terminal
    assert terminal.splitlines()[-6:-2] == [
        "sandflow: 1 job(s) ran, 0 cached: job directories under work/jobs/, their logs under work/logs/",
        "sandflow: context_infos.json: work/context_infos.json",
        "sandflow: next: sandflow show config.yaml clean   (how a result was made, down to its sources)",
        "sandflow:       snakemake --configfile config.yaml --report report.html   (the run's figures and metrics)",
    ], terminal
    log = (tmp_path / "work" / "logs" / "ProcessDataHook" / f"{job.key}.log").read_text()
    assert PROGRESS.search(log) and "[data_juicer]" in log and f"job {job.key} done" in log


def write_pool_config(root: Path, datasets: list[str]) -> str:
    """A duplication job per dataset (no Data-Juicer: quick); the config's name."""
    jobs = [
        {
            "hook": "DataPoolManipulationHook",
            "meta_name": f"twice_{Path(name).stem}",
            "extra_configs": {
                "type": "data_pool_duplication",
                "dataset_path": name,
                "duplicating_times": [2],
                "export_path": f"./pools/{Path(name).stem}/",
            },
        }
        for name in datasets
    ]
    name = f"pools{len(datasets)}.yaml"
    (root / name).write_text(yaml.safe_dump({"work_dir": "./work", "execution_job_configs": jobs}))
    return name


@pytest.mark.slow
def test_cached_jobs_are_counted_and_a_failed_job_keeps_its_one_line_on_the_terminal(tmp_path: Path):
    for name in ("a", "b"):  # different content: different jobs
        (tmp_path / f"{name}.jsonl").write_text(f'{{"text": "one {name}"}}\n{{"text": "two"}}\n')
    (tmp_path / "bad.jsonl").write_text('{"text": "one"}\n\n{not json}\n')
    snakemake(tmp_path, write_pool_config(tmp_path, ["a.jsonl"]), LOGGER)

    second = snakemake(tmp_path, write_pool_config(tmp_path, ["a.jsonl", "b.jsonl"]), LOGGER)
    assert "sandflow: 1 job(s) ran, 1 cached: job directories under work/jobs/" in second.stderr, second.stderr
    assert len(re.findall(r"^\[\d+/\d+\] data_pool_manipulation, ", second.stderr, re.M)) == 1, second.stderr

    config = write_pool_config(tmp_path, ["a.jsonl", "b.jsonl", "bad.jsonl"])
    failed = snakemake(tmp_path, config, LOGGER, check=False)
    assert failed.returncode != 0
    bad_job = next(job for job in planned(tmp_path, tmp_path / config) if job.cfg.meta_name == "twice_bad")
    lines = failed.stderr.splitlines()
    assert any(line.startswith("sandflow: job failed: bad.jsonl:3: not JSON") for line in lines), failed.stderr
    log = os.path.relpath(tmp_path / "work" / "logs" / "DataPoolManipulationHook" / f"{bad_job.key}.log", tmp_path)
    assert any(
        re.fullmatch(rf"error: data_pool_manipulation failed \(jobid \d+\); log: {re.escape(log)}", line)
        for line in lines
    ), failed.stderr
    assert "Traceback" not in failed.stderr and not RULE_BLOCK.search(failed.stderr)
    assert not any(line.startswith("sandflow: next:") for line in lines)  # nothing was built to look at


@pytest.mark.slow
def test_sandflow_run_uses_the_terminal_logger_a_dry_run_lists_a_line_per_job(tmp_path: Path):
    (tmp_path / "a.jsonl").write_text('{"text": "one"}\n')
    config = write_pool_config(tmp_path, ["a.jsonl"])
    (job,) = planned(tmp_path, tmp_path / config)
    env = {**snakemake_env(), "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-m", "sandflow.cli", "run", config, "-n"]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    err = result.stdout + result.stderr  # a dry run lists to stdout, as Snakemake's own terminal does
    assert "Job stats:" not in err and not RULE_BLOCK.search(err), err
    assert "job(s) would run: data_pool_manipulation 1, " in err, err
    assert f"data_pool_manipulation: {job.job_dir} (Missing output files: {job.context_path})" in err.splitlines()
