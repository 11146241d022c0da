"""The work_dir lock (src/sandflow/run/lock.py): one run per work_dir, also across nodes where flock is per node,
and every way of failing to take it gives one line.

A second host is faked without any test-only code path: under Lustre's localflock a run on another node holds its
flock where this node cannot see it, so all this node sees of it is the record that run keeps in the lock file.
The tests write exactly that record (host "other-node") with no process holding the flock here.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from sandflow.config.load import load_config_file
from sandflow.hpo_search import WorkDirBusy, WorkDirTurns
from sandflow.plan.planner import plan_config
from sandflow.run import lock
from sandflow.run.lock import STALE_AFTER_S, LockRefused, hold_lock, lock_path

from helpers.env import snakemake_env
from helpers.paths import REPO, copy_from_repo
from helpers.pool_config import write_pool_config
from helpers.snakemake import hpo_search_command, snakemake

as_root = pytest.mark.skipif(os.getuid() != 0, reason="another user's lock needs root (chown, setuid)")
NOBODY = 65534
HPO_CONFIG = ("configs/hpo/sandbox.yaml", "configs/hpo/bayes_search.yaml")
HPO_WORK = Path("outputs/hpo")


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def plant_record(work_dir: Path, host: str, age_s: float, pid: int = 4242) -> None:
    """The record a run on host keeps in the lock file, last refreshed age_s seconds ago."""
    path = Path(lock_path(str(work_dir)))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{host} {pid} {time.time() - age_s:.0f}")


def record_of(work_dir: Path) -> list[str]:
    return Path(lock_path(str(work_dir))).read_text().split()


# ---- a run on another node, where flock does not reach -------------------------------------------------------


def test_a_live_run_on_another_host_is_refused_though_the_flock_is_free(tmp_path: Path):
    plant_record(tmp_path, "other-node", age_s=30)
    with pytest.raises(LockRefused) as refused:
        hold_lock(str(tmp_path))
    message = str(refused.value)
    assert message.startswith(
        f"another sandflow run (pid 4242 on host other-node, alive 30 s ago) is using work_dir {tmp_path}"
    )
    assert f"lapses {STALE_AFTER_S - 30:.0f} s from now, or remove {lock_path(str(tmp_path))}" in message
    assert record_of(tmp_path)[:2] == ["other-node", "4242"]  # its record is left alone


def test_a_stale_record_of_another_host_and_any_record_of_this_host_are_taken_over(tmp_path: Path):
    for host, age in [("other-node", STALE_AFTER_S + 5), (socket.gethostname(), 0)]:
        plant_record(tmp_path, host, age_s=age)
        held = hold_lock(str(tmp_path))
        host_now, pid, refreshed = record_of(tmp_path)
        assert (host_now, int(pid)) == (socket.gethostname(), os.getpid())
        assert abs(float(refreshed) - time.time()) < 5
        held.release()
        assert Path(lock_path(str(tmp_path))).read_text() == ""  # cleared: another node may start at once
        os.close(held.fd)


def test_the_holder_refreshes_its_record_while_it_holds_the_lock(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(lock, "HEARTBEAT_S", 0.2)
    held = hold_lock(str(tmp_path))
    try:
        first = float(record_of(tmp_path)[2])
        Path(lock_path(str(tmp_path))).write_text(f"{socket.gethostname()} {os.getpid()} {first - 100:.0f}")
        time.sleep(1)
        assert float(record_of(tmp_path)[2]) >= first  # written again by the heartbeat
    finally:
        held.release()
        os.close(held.fd)


def test_a_worker_waits_for_a_live_run_on_another_host_and_gives_up_at_its_bound(tmp_path: Path, capsys):
    plant_record(tmp_path, "other-node", age_s=0)
    turns = WorkDirTurns(str(tmp_path), wait=1.5)
    started = time.monotonic()
    with pytest.raises(WorkDirBusy, match=r"still in use \(pid 4242 on host other-node\) after 1.5 s"):
        with turns.turn():
            pytest.fail("took a turn while another host's run held the work_dir")
    assert time.monotonic() - started >= 1.4
    assert "waiting for work_dir" in capsys.readouterr().err
    plant_record(tmp_path, "other-node", age_s=STALE_AFTER_S + 5)
    with turns.turn():
        assert record_of(tmp_path)[:2] == [socket.gethostname(), str(os.getpid())]
    assert Path(lock_path(str(tmp_path))).read_text() == ""


# ---- the lock file itself ---------------------------------------------------------------------------------------


@as_root
def test_another_users_lock_says_whose_it_is(tmp_path: Path):
    """The lock file is root's (0644) and the run is uid 65534's: opening it for writing fails with EACCES."""
    work = Path(tempfile.mkdtemp(prefix="sf-lock-", dir="/tmp"))
    try:
        work.chmod(0o755)
        Path(lock_path(str(work))).parent.mkdir(mode=0o755)
        Path(lock_path(str(work))).write_text("")
        os.chmod(lock_path(str(work)), 0o644)
        # Only the standard library is needed, from an interpreter that user may run (ours is under /root), and
        # a copy of the package that user may read (a checkout may sit in a directory only its owner can enter).
        interpreter = shutil.which("python3", path="/usr/bin:/bin") or pytest.skip("no system python3 for uid 65534")
        source = work / "src"
        shutil.copytree(REPO / "src" / "sandflow", source / "sandflow", ignore=shutil.ignore_patterns("__pycache__"))
        for directory, _, files in os.walk(source):
            os.chmod(directory, 0o755)
            for name in files:
                os.chmod(os.path.join(directory, name), 0o644)
        code = (
            f"import sys; sys.path.insert(0, {str(source)!r})\n"
            "from sandflow.run.lock import LockRefused, hold_lock\n"
            "try:\n    hold_lock(sys.argv[1])\nexcept LockRefused as exc:\n    sys.exit(str(exc))\n"
        )
        theirs = subprocess.run(
            [interpreter, "-I", "-c", code, str(work)], user=NOBODY, cwd="/", capture_output=True, text=True
        )
        assert theirs.returncode == 1
        assert one_line(theirs.stderr) == (
            f"work_dir {work} is locked by user root (uid 0): its lock file {lock_path(str(work))} is theirs and you "
            "cannot open it; use a work_dir of your own"
        )
    finally:
        shutil.rmtree(work)


def test_a_planted_symlink_at_the_lock_is_refused_by_runs_and_searches(tmp_path: Path):
    copy_from_repo(tmp_path, "configs/hpo", "configs/data/hpo")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    for work in (tmp_path / "w", tmp_path / HPO_WORK):
        Path(lock_path(str(work))).parent.mkdir(parents=True)
        Path(lock_path(str(work))).symlink_to(victim)
    with pytest.raises(LockRefused, match="lock is a symlink; sandflow does not write through it"):
        hold_lock(str(tmp_path / "w"))
    search = subprocess.run(
        hpo_search_command(*HPO_CONFIG), cwd=tmp_path, env=snakemake_env(), capture_output=True, text=True
    )
    assert search.returncode == 2
    assert one_line(search.stderr).startswith("sandflow: error: hpo_search: cannot lock work_dir ./outputs/hpo:")
    assert victim.read_text() == "precious\n"


def test_flock_failing_gives_one_line_for_runs_and_searches(tmp_path: Path):
    """No file system here lacks flock, so the kernel's answer is simulated in the process: flock raises ENOSYS
    (or ENOLCK, as on an NFS mount without a lock manager)."""
    copy_from_repo(tmp_path, "configs/hpo", "configs/data/hpo")
    without_flock = (
        "import errno, fcntl, sys\ndef no_locks(*args): raise OSError(errno.{0}, '{1}')\nfcntl.flock = no_locks\n"
    )
    run = without_flock.format("ENOLCK", "No locks available") + (
        "from sandflow.run.lock import LockRefused, hold_lock\n"
        "from sandflow.run.workflow import exit_with_error\n"
        "try:\n    hold_lock(sys.argv[1])\nexcept LockRefused as exc:\n    exit_with_error(str(exc))\n"
    )
    result = subprocess.run([sys.executable, "-c", run, str(tmp_path / "w")], capture_output=True, text=True)
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert line.startswith("sandflow: error: cannot lock work_dir") and "No locks available" in line
    search = without_flock.format("ENOSYS", "Function not implemented") + (
        "import runpy\nsys.argv[0] = 'hpo_search'\nrunpy.run_module('sandflow.hpo_search', run_name='__main__')\n"
    )
    argv = hpo_search_command(*HPO_CONFIG)[3:]
    result = subprocess.run(
        [sys.executable, "-c", search, *argv], cwd=tmp_path, env=snakemake_env(), capture_output=True, text=True
    )
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert line.startswith("sandflow: error: hpo_search: cannot lock work_dir ./outputs/hpo")
    assert "Function not implemented" in line
    assert not (tmp_path / HPO_WORK / "hpo").exists()  # no study was started


@pytest.mark.parametrize("dry", [["-n"], ["--", "-n"], ["--", "--dry-run"], ["--", "-pn"]])
def test_a_dry_run_of_a_search_is_refused_in_one_line_before_anything_is_written(tmp_path: Path, dry: list[str]):
    copy_from_repo(tmp_path, "configs/hpo", "configs/data/hpo")
    result = subprocess.run(
        hpo_search_command(*HPO_CONFIG, *dry), cwd=tmp_path, env=snakemake_env(), capture_output=True, text=True
    )
    assert result.returncode == 2
    assert one_line(result.stderr).startswith("sandflow: error: hpo_search: a search cannot be dry-run (-n)")
    assert not (tmp_path / "outputs").exists()


def test_a_mistyped_option_of_a_search_is_one_line(tmp_path: Path):
    result = subprocess.run(hpo_search_command(*HPO_CONFIG, "--batch", "0"), capture_output=True, text=True)
    assert result.returncode == 2
    assert one_line(result.stderr) == (
        "sandflow: error: hpo_search: --batch must be at least 1 (--help lists the options)"
    )


# ---- snakemake --no-hooks ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_snakemake_no_hooks_is_refused_in_one_line_whatever_the_target(tmp_path: Path, monkeypatch):
    config = write_pool_config(tmp_path, 10)
    monkeypatch.chdir(tmp_path)  # the config's paths are relative to the run directory
    job_target = plan_config(load_config_file(str(config))).jobs[0].context_path  # <work_dir>/jobs/<hook>/<key>/...
    for targets in ([], [job_target]):
        result = snakemake(tmp_path, config, "--no-hooks", "--cores", "1", *targets, check=False)
        assert result.returncode == 2, result.stderr[-3000:]
        ours = [line for line in result.stderr.splitlines() if line.startswith("sandflow:")]
        assert ours == [
            "sandflow: error: snakemake --no-hooks would skip the work_dir lock that keeps two runs apart; "
            "run without it"
        ]
        assert not (tmp_path / "out" / "jobs").exists()
    assert snakemake(tmp_path, config, "--no-hooks", "-n", job_target).returncode == 0  # a dry run takes no lock
