"""executor_type: ray runs Data-Juicer's RayExecutor / RayAnalyzer for real, on a private Ray or a given cluster.

The demo data (a slice of configs/data/demo/demo-dataset.jsonl with some of
its planted noise) goes through the demo recipes once with the default
executor and once with Ray; the processed rows must be the same bytes, in the
same order, and the job's files the same names.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandflow.core.jsonl import read_objects
from sandflow.hooks.base import JobRun
from sandflow.hooks.dj_requirements import missing_requirements

from helpers.env import OFFLINE_ENV, environ
from helpers.job_runs import file_logger, job_run
from helpers.paths import REPO

DEMO_DATA = REPO / "configs/data/demo/demo-dataset.jsonl"
SLICE_ROWS = 900  # rows 0-899 hold 9 of the 45 planted noisy samples


def demo_recipe() -> dict[str, Any]:
    return yaml.safe_load((REPO / "configs/demo/process.yaml").read_text())


def fixed_thresholds_recipe() -> dict[str, Any]:
    """configs/demo/process.yaml with the ops of multi_pipeline.yaml's fixed_thresholds pipeline (drops rows)."""
    multi = yaml.safe_load((REPO / "configs/demo/multi_pipeline.yaml").read_text())
    job = multi["pipelines"]["fixed_thresholds"]["execution_job_configs"][0]
    return {**demo_recipe(), "process": job["local"]["dj_configs.process"]}


def ray_temp_dirs() -> set[str]:
    import tempfile

    return {name for name in os.listdir(tempfile.gettempdir()) if name.startswith("sandflow-ray-")}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Offline, and HOME in a temp dir so that anything written there is seen."""
    home = tmp_path_factory.mktemp("home")
    with environ({**OFFLINE_ENV, "HOME": str(home)}, unset=["RAY_ADDRESS"]):
        yield home


@pytest.fixture(scope="module")
def demo_slice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "demo-slice.jsonl"
    with open(DEMO_DATA, encoding="utf-8") as source:
        path.write_text("".join(line for _, line in zip(range(SLICE_ROWS), source)), encoding="utf-8")
    return path


def run_job(root: Path, name: str, recipe: dict[str, Any], hook: Callable[[JobRun], str]) -> tuple[JobRun, str, float]:
    job_dir = root / name
    job_dir.mkdir(parents=True)
    recipe = {**recipe, "export_path": str(job_dir / "export" / "processed.jsonl")}
    job = job_run(name, job_dir, dj_configs=recipe, key=name, log=file_logger(f"test_ray.{name}", root / f"{name}.log"))
    started = time.monotonic()
    result = hook(job)
    return job, result, time.monotonic() - started


def assert_stats_close(default_rows: list[dict], ray_rows: list[dict]) -> None:
    """Same rows, same stats; the default executor's stats pass through Hugging Face's JSON encoding,
    which rounds floats to 10 decimals, Ray's keep every digit."""
    assert len(ray_rows) == len(default_rows)
    for default, ray in zip(default_rows, ray_rows):
        assert default.keys() == ray.keys()
        for name, value in default["__dj__stats__"].items():
            assert math.isclose(ray["__dj__stats__"][name], value, rel_tol=0, abs_tol=1e-9), name


@pytest.fixture(scope="module")
def processed(env: Path, demo_slice: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from sandflow.hooks.data_juicer import process_data

    root = tmp_path_factory.mktemp("jobs")
    recipe = {**fixed_thresholds_recipe(), "dataset_path": str(demo_slice)}
    temp_before = ray_temp_dirs()
    default = run_job(root, "default", recipe, process_data)
    ray = run_job(root, "ray", {**recipe, "executor_type": "ray", "ray_address": "local"}, process_data)
    return {"default": default, "ray": ray, "root": root, "temp_before": temp_before}


def test_ray_processes_the_demo_rows_exactly_as_the_default_executor(processed: dict[str, Any]) -> None:
    (_default_job, default_out, _), (ray_job, ray_out, _) = processed["default"], processed["ray"]
    default_path, ray_path = Path(default_out), Path(ray_out)
    assert ray_path == Path(ray_job.job_dir) / "export" / "processed.jsonl"
    rows = read_objects(default_path)
    kept_planted = [row for row in rows if row["meta"]["planted"]]
    assert 0 < len(rows) < SLICE_ROWS and len(kept_planted) < 9, "the recipe drops some of the noise"
    assert ray_path.read_bytes() == default_path.read_bytes(), "same rows, same order, same bytes"
    # The same files in the export directory: one .jsonl and its stats file, no directory of shards.
    assert sorted(p.name for p in ray_path.parent.iterdir()) == ["processed.jsonl", "processed_stats.jsonl"]
    assert sorted(p.name for p in default_path.parent.iterdir()) == ["processed.jsonl", "processed_stats.jsonl"]
    assert_stats_close(
        read_objects(default_path.with_name("processed_stats.jsonl")),
        read_objects(ray_path.with_name("processed_stats.jsonl")),
    )
    log = (processed["root"] / "ray.log").read_text()
    assert "starting a private Ray with 1 CPU(s)" in log and "on Ray" in log


def test_ray_session_leaves_nothing_behind(processed: dict[str, Any], env: Path) -> None:
    import ray

    assert not ray.is_initialized(), "the job shut its Ray down"
    assert ray_temp_dirs() == processed["temp_before"], "Ray's temp dir and logs are removed after a good run"
    assert not (env / ".ray").exists(), "no auth token written to ~/.ray"
    for name in ("RAY_JOB", "RAY_AUTH_TOKEN", "RAY_AUTH_MODE"):
        assert name not in os.environ, name
    ray_pids = subprocess.run(["pgrep", "-f", "-P", str(os.getpid()), "raylet|gcs_server"], capture_output=True)
    assert ray_pids.stdout == b"", "no Ray process of ours still runs"


@pytest.mark.slow
def test_ray_analysis_matches_the_default_analyzer(env: Path, demo_slice: Path, tmp_path: Path) -> None:
    from sandflow.hooks.data_juicer import probe_via_analyzer

    recipe = {**demo_recipe(), "dataset_path": str(demo_slice)}
    default_job, default_out, _ = run_job(tmp_path, "default", recipe, probe_via_analyzer)
    ray_job, ray_out, _ = run_job(tmp_path, "ray", {**recipe, "executor_type": "ray"}, probe_via_analyzer)
    assert Path(ray_out).name == Path(default_out).name == "processed_stats.jsonl"
    assert sorted(os.listdir(Path(ray_out).parent)) == sorted(os.listdir(Path(default_out).parent))
    default_rows, ray_rows = read_objects(Path(default_out)), read_objects(Path(ray_out))
    assert len(default_rows) == SLICE_ROWS and len(default_rows[0]["__dj__stats__"]) == 5
    assert_stats_close(default_rows, ray_rows)
    default_summary = json.loads((Path(default_job.job_dir) / "stats_summary.json").read_text())
    ray_summary = json.loads((Path(ray_job.job_dir) / "stats_summary.json").read_text())
    assert ray_summary.keys() == default_summary.keys()
    for stat, numbers in default_summary.items():
        for name, value in numbers.items():
            assert math.isclose(ray_summary[stat][name], value, rel_tol=1e-8), (stat, name)
    assert (Path(ray_job.job_dir) / "dj_work" / "analysis" / "overall.csv").is_file()
    # The original dataset with its stats, when asked for, is one file too.
    ray_job2, ray_out2, _ = run_job(
        tmp_path,
        "ray_original",
        {**recipe, "executor_type": "ray", "export_original_dataset": True},
        probe_via_analyzer,
    )
    rows = read_objects(Path(ray_out2))
    assert Path(ray_out2).name == "processed.jsonl" and len(rows) == SLICE_ROWS and "__dj__stats__" in rows[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def ray_cluster(tmp_path_factory: pytest.TempPathFactory, env: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A one-node Ray cluster started with `ray start --head` as a user would (1 CPU, token auth), stopped after."""
    import tempfile

    port = free_port()
    temp_dir = tempfile.mkdtemp(prefix="sandflow-test-ray-")
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": os.urandom(16).hex()}
    ray_cli = str(Path(sys.executable).with_name("ray"))
    head = subprocess.Popen(
        [
            ray_cli,
            "start",
            "--head",
            "--block",
            f"--port={port}",
            "--num-cpus=1",
            "--node-ip-address=127.0.0.1",
            "--include-dashboard=false",
            f"--temp-dir={temp_dir}",
        ],
        env={**os.environ, **auth, "RAY_USAGE_STATS_ENABLED": "0"},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not list(Path(temp_dir).glob("session_*/logs/raylet.out")):
            assert head.poll() is None and time.monotonic() < deadline, "ray start --head did not come up"
            time.sleep(0.5)
        time.sleep(2)
        yield f"127.0.0.1:{port}", auth
    finally:
        # Its own session: the head and the processes it started. Ray takes ~30 s to stop on SIGTERM alone.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)
        head.wait()
        subprocess.run(["rm", "-rf", temp_dir], check=False)


@pytest.mark.slow
def test_ray_job_runs_on_a_given_cluster_and_leaves_it_running(
    ray_cluster: tuple[str, dict[str, str]], demo_slice: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sandflow.hooks.data_juicer import process_data

    address, auth = ray_cluster
    for name, value in auth.items():  # the cluster's token reaches the job through the environment, as on SLURM
        monkeypatch.setenv(name, value)
    recipe = {**fixed_thresholds_recipe(), "dataset_path": str(demo_slice)}
    _, default_out, _ = run_job(tmp_path, "default", recipe, process_data)
    _, by_address, _ = run_job(
        tmp_path, "address", {**recipe, "executor_type": "ray", "ray_address": address}, process_data
    )
    monkeypatch.setenv("RAY_ADDRESS", address)
    _, by_env, _ = run_job(tmp_path, "auto", {**recipe, "executor_type": "ray"}, process_data)  # ray_address: auto
    expected = Path(default_out).read_bytes()
    for out in (by_address, by_env):
        assert Path(out).read_bytes() == expected, out
    for name in ("address", "auto"):
        log = (tmp_path / f"{name}.log").read_text()
        assert f"connecting to the Ray cluster at {address}" in log and "private Ray" not in log
    status = subprocess.run(
        [str(Path(sys.executable).with_name("ray")), "status", f"--address={address}"],
        capture_output=True,
        text=True,
        env={**os.environ, **auth},
    )
    assert status.returncode == 0, "the job disconnected without stopping the cluster"


@pytest.mark.parametrize(
    "dj_configs, expected",
    [
        (
            {"executor_type": "ray_partitioned"},
            "dj_configs.executor_type: 'ray_partitioned' is not supported by sandflow",
        ),
        (
            {"executor_type": "ray", "export_path": "out/data.parquet"},
            "dj_configs.export_path: executor_type ray writes a .jsonl file here, got 'data.parquet'",
        ),
        (
            {"executor_type": "ray", "process": [{"text_length_filter": {"runtime_env": {"pip": ["ftfy"]}}}]},
            "dj_configs.process[0].text_length_filter.runtime_env: 'pip' would install packages when Ray starts a worker",
        ),
        ({"executor_type": "ray", "ray_address": ""}, "dj_configs.ray_address: expected 'local', 'auto' or a cluster"),
        (
            {"executor_type": "ray", "ray_address": "ray://head:10001"},
            "dj_configs.ray_address: Ray Client addresses (ray://) do not work with Data-Juicer's Ray Data pipeline",
        ),
    ],
)
def test_settings_ray_cannot_run_stop_before_any_job(dj_configs: dict, expected: str, tmp_path: Path) -> None:
    missing = missing_requirements({"export_path": "out/data.jsonl", **dj_configs})
    assert len(missing) == 1 and missing[0].startswith(expected), missing
    job = job_run(
        "ProcessDataHook",
        tmp_path,
        dj_configs={"export_path": str(tmp_path / "out/data.jsonl"), "dataset_path": "x.jsonl", **dj_configs},
    )
    from sandflow.hooks.data_juicer import dj_recipe

    with pytest.raises(ValueError, match=re.escape(expected)):
        dj_recipe(job)
    assert not (tmp_path / "out").exists(), "nothing written"


def test_default_and_ray_recipes_need_nothing_else() -> None:
    assert missing_requirements({**demo_recipe(), "executor_type": "ray"}) == []
    assert missing_requirements(demo_recipe()) == []


def test_executor_is_in_the_job_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray's stats keep digits the default executor rounds away, so a Ray job is not the default job's cache hit."""
    from sandflow.config.load import load_config
    from sandflow.plan.planner import plan_config

    monkeypatch.chdir(tmp_path)
    Path("in.jsonl").write_text('{"text": "hello world"}\n')

    def key(**settings: Any) -> str:
        recipe = {
            "dataset_path": "in.jsonl",
            "export_path": "out/processed.jsonl",
            "process": [{"text_length_filter": {"min_len": 1}}],
            **settings,
        }
        config = {
            "work_dir": "work",
            "execution_job_configs": [{"hook": "ProcessDataHook", "meta_name": "process", "dj_configs": recipe}],
        }
        return plan_config(load_config(config, source="test.yaml")).jobs[0].key

    assert key(executor_type="ray") not in (key(), key(executor_type="default"))
