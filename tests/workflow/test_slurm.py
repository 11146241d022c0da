"""A real SLURM run: tests/data/slurm/sandbox.yaml through profiles/slurm-ci on a one-machine cluster.

scripts/setup_single_node_slurm.sh installs (Debian's slurm-wlm and munge) and starts
the cluster when it is missing or down; it needs root, and apt-get when SLURM is not
installed yet, else the run is skipped. The DataPoolManipulationHook job is a SLURM job
that runs `python -m snakemake` from the project's venv on the node.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest
import snakemake

from sandflow.core.jsonl import read_objects

from helpers.env import snakemake_env
from helpers.paths import REPO
from helpers.slurm import SLURM_SETUP, set_up_slurm
from helpers.snakemake import interruptible, job_counts, snakemake_command

PROFILE = REPO / "profiles" / "slurm-ci"
CONFIG = "tests/data/slurm/sandbox.yaml"
WORK = Path("outputs/slurm-ci")
RUN_TIMEOUT_S = 1500
# Installing SLURM (the cluster fixture, 1200 s allowed) then the run: above pyproject's per-test timeout.
pytestmark = pytest.mark.timeout(1200 + RUN_TIMEOUT_S + 300)
# "Job 2 has been submitted with SLURM jobid 3 (log: <dir>/.snakemake/slurm_logs/rule_data_pool_manipulation/<key>/3.log)."
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+) \(log: (\S+/slurm_logs/rule_(\w+)/\S+\.log)\)")


def run_until_done(command: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    """Run to the end; past the timeout stop it with SIGINT, which cancels its SLURM jobs (SIGTERM hangs)."""
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=snakemake_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)
        try:
            stdout, stderr = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        pytest.fail(f"snakemake did not finish in {timeout:.0f} s (stopped with SIGINT):\n{stderr[-4000:]}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


@pytest.fixture(scope="module")
def cluster() -> str:
    """The setup script's output, after it has left the node idle (it only checks when all is running)."""
    if os.geteuid() != 0:
        pytest.skip("the one-machine SLURM cluster needs root to install and start its daemons")
    if shutil.which("sinfo") is None and shutil.which("apt-get") is None:
        pytest.skip("SLURM is not installed and there is no apt-get to install it")
    result = set_up_slurm()
    assert result.returncode == 0, f"{SLURM_SETUP.name} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def slurm_run(cluster: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    run_dir = tmp_path_factory.mktemp("slurm")
    shutil.copytree(REPO / "tests" / "data" / "slurm", run_dir / "tests" / "data" / "slurm")
    result = run_until_done(snakemake_command(CONFIG, "--profile", str(PROFILE)), run_dir, RUN_TIMEOUT_S)
    assert result.returncode == 0, f"snakemake failed ({result.returncode}):\n{result.stderr[-4000:]}"
    return {"dir": run_dir, "result": result}


def test_setup_script_refuses_to_run_without_root():
    if os.geteuid() != 0:
        result = subprocess.run(["bash", str(SLURM_SETUP)], capture_output=True, text=True, timeout=60)
    else:
        # A copy the user `nobody` can read: the checkout may sit under a directory only root can enter (mktemp -d).
        with tempfile.TemporaryDirectory() as readable:
            os.chmod(readable, 0o755)
            script = shutil.copy(SLURM_SETUP, readable)
            os.chmod(script, 0o644)
            result = subprocess.run(
                ["runuser", "-u", "nobody", "--", "bash", script],
                capture_output=True,
                text=True,
                timeout=60,
                cwd=readable,
            )
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == "setup_single_node_slurm: error: needs root (installs packages and starts daemons); run it with sudo"
    )


@pytest.mark.slow
def test_setup_leaves_one_idle_node_with_the_machines_cpus(cluster: str):
    assert re.search(r"node \S+ is (idle|mixed|allocated)", cluster), cluster
    node = subprocess.run(
        ["sinfo", "-h", "-N", "-o", "%N %c %T"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert node[0] == os.uname().nodename.split(".")[0]
    assert int(node[1]) == os.cpu_count()
    # Run again: every step finds its work done.
    again = subprocess.run(["bash", str(SLURM_SETUP)], capture_output=True, text=True, timeout=120, check=True).stdout
    assert "already installed" in again and "already running" in again and "up to date" in again, again


@pytest.mark.slow
def test_the_workflow_runs_its_jobs_as_slurm_jobs(slurm_run: dict):
    result = slurm_run["result"]
    assert job_counts(result) == {"data_pool_manipulation": 1, "publication_record": 1, "context_infos": 1, "all": 1}
    submitted = {rule: jobid for jobid, _, rule in SUBMITTED.findall(result.stdout + result.stderr)}
    assert set(submitted) == {"data_pool_manipulation"}, result.stderr[-3000:]  # bookkeeping rules are local
    # Finished jobs have left the queue.
    queue = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, check=True).stdout.split()
    assert not set(submitted.values()) & set(queue)


POOLS = [f"texts_ignore_stats_{i}.jsonl" for i in range(3)]


@pytest.mark.slow
def test_slurm_job_built_the_pools_in_the_projects_venv(slurm_run: dict):
    run_dir = slurm_run["dir"]
    samples = read_objects(run_dir / "tests/data/slurm/texts.jsonl")
    pools = [read_objects(run_dir / WORK / "pools" / "iter_1" / name) for name in POOLS]
    assert pools == [samples[:8], samples[8:16], samples[16:]]
    (context,) = [
        json.loads(p.read_text()) for p in (run_dir / WORK / "jobs" / "DataPoolManipulationHook").glob("*/context.json")
    ]
    # The job's own SLURM log: the node ran this venv's Snakemake on this job.
    text = slurm_run["result"].stdout + slurm_run["result"].stderr
    (log,) = [Path(log) for _, log, rule in SUBMITTED.findall(text) if rule == "data_pool_manipulation"]
    job_log = log.read_text()
    assert f"Command: {Path(snakemake.__file__).parent / '__main__.py'} " in job_log, job_log[:3000]
    assert f"--target-jobs data_pool_manipulation:key={context['key']} " in job_log


@pytest.mark.slow
def test_context_infos_lists_the_job_with_its_published_output(slurm_run: dict):
    run_dir = slurm_run["dir"]
    infos = json.loads((run_dir / WORK / "context_infos.json").read_text())
    assert infos == [
        {
            "iter": 1,
            "pipeline_infos": [
                {
                    "pipeline_name": "anonymous",
                    "job_infos": [
                        {
                            "meta_name": "split_into_pools",
                            "pool_paths": [f"outputs/slurm-ci/pools/iter_1/{name}" for name in POOLS],
                        }
                    ],
                }
            ],
        }
    ]
