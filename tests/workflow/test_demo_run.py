"""The demo end to end with real snakemake and real py-data-juicer: results, resume and partial reruns.

The tests share one run directory and run in order: cold run (the stats cache on, its default; against a run
with it off), no-op rerun, last-job change, first-job change across two kills, revert.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
import yaml

from sandflow.core.jsonl import read_objects
from sandflow.core.layout import stats_cache_dir
from sandflow.hooks.dj_stats_cache import OFF_VARIABLE
from sandflow.hooks.dj_stats_store import cache_size

from helpers.dj_jobs import HIT_LINE
from helpers.env import environ
from helpers.kill_windows import start
from helpers.paths import REPO
from helpers.snakemake import edited_config, job_counts, snakemake

pytestmark = pytest.mark.slow

CONFIG = "configs/demo/sandbox.yaml"
WORK = Path("outputs/demo-sandbox")
PUBLISHED = ["outputs/demo-process/iter_1/demo-processed.jsonl", "outputs/demo-process/k_sigma_new_recipe.yaml"]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def verify_manifests(work: Path) -> int:
    """Every finished job's artifacts match its manifest; returns how many jobs were checked."""
    checked = 0
    for manifest in work.glob("jobs/*/*/manifest.json"):
        for name, entry in json.loads(manifest.read_text()).items():
            assert digest(manifest.parent / name) == entry["sha256"], f"{manifest.parent / name} does not match"
        checked += 1
    return checked


def variant(run_dir: Path, name: str, edit) -> str:
    """A copy of the demo config with one edit, written next to it."""
    return edited_config(run_dir, CONFIG, f"{name}.yaml", edit)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("demo")
    (directory / "configs").mkdir()
    for part in ("demo", "data"):
        shutil.copytree(REPO / "configs" / part, directory / "configs" / part)
    return directory


@pytest.fixture(scope="module")
def cold(run_dir: Path) -> dict:
    started = time.time()
    with environ({}, unset=(OFF_VARIABLE,)):
        result = snakemake(run_dir, CONFIG)
    return {
        "counts": job_counts(result),
        "seconds": time.time() - started,
        "context_infos": (run_dir / WORK / "context_infos.json").read_bytes(),
        "published": {p: digest(run_dir / p) for p in PUBLISHED},
    }


def test_cold_run_runs_every_job_and_the_refined_recipe_drops_exactly_the_planted_samples(run_dir: Path, cold: dict):
    assert cold["counts"] == {
        "probe_via_analyzer": 2,
        "refine_recipe_via_k_sigma": 1,
        "process_data": 1,
        "publication_record": 1,
        "context_infos": 1,
        "all": 1,
    }
    original = yaml.safe_load((run_dir / "configs/demo/process.yaml").read_text())
    refined = yaml.safe_load((run_dir / "outputs/demo-process/k_sigma_new_recipe.yaml").read_text())
    assert refined["process"] != original["process"]
    samples = read_objects(run_dir / "configs/data/demo/demo-dataset.jsonl")
    kept = read_objects(run_dir / "outputs/demo-process/iter_1/demo-processed.jsonl")
    clean_ids = {s["meta"]["id"] for s in samples if not s["meta"]["planted"]}
    assert {s["meta"]["id"] for s in kept} == clean_ids
    assert len(clean_ids) < len(samples)


def test_context_infos_has_dj_sandbox_format_with_published_paths(run_dir: Path, cold: dict):
    infos = json.loads(cold["context_infos"])
    assert [i["iter"] for i in infos] == [1]
    (pipeline,) = infos[0]["pipeline_infos"]
    assert pipeline["pipeline_name"] == "anonymous"
    jobs = pipeline["job_infos"]
    assert [j["meta_name"] for j in jobs] == [
        "analysis_ori_data",
        "analysis_ori_data",
        "process_data_with_refined_recipe",
        "analysis_processed_data",
    ]
    assert jobs[1]["refined_recipe_path"] == "outputs/demo-process/k_sigma_new_recipe.yaml"
    assert jobs[2]["processed_dataset_path"] == "outputs/demo-process/iter_1/demo-processed.jsonl"
    for job in jobs:
        for key, value in job.items():
            if key != "meta_name":
                assert (run_dir / value).exists(), f"{key}: {value} was not published"
    assert verify_manifests(run_dir / WORK) == 4
    links = sorted(p.name for p in (run_dir / WORK / "pipelines/anonymous/iter_1").iterdir())
    assert links == [
        "analysis_ori_data-0",
        "analysis_ori_data-1",
        "analysis_processed_data",
        "process_data_with_refined_recipe",
    ]
    assert not list((run_dir / WORK / "jobs").glob("*/*.partial-*"))


def job_manifests(work: Path) -> dict[str, dict]:
    """Every job's manifest, less Data-Juicer's event log (named and filled with the time of the run)."""
    return {
        str(path.parent.relative_to(work)): {
            name: digest
            for name, digest in json.loads(path.read_text()).items()
            if not name.startswith("dj_work/events_")
        }
        for path in work.glob("jobs/*/*/manifest.json")
    }


def test_demo_outputs_are_the_same_bytes_with_the_cache_on_and_off(run_dir: Path, cold: dict, tmp_path: Path):
    """The stats cache (hooks/dj_stats_cache.py): the cold run had it on; a run with it off leaves the same bytes."""
    off = tmp_path / "off"
    (off / "configs").mkdir(parents=True)
    for part in ("demo", "data/demo"):
        shutil.copytree(REPO / "configs" / part, off / "configs" / part)
    with environ({OFF_VARIABLE: "off"}):
        snakemake(off, CONFIG)
    work_on, work_off = run_dir / WORK, off / WORK
    manifests = job_manifests(work_on)
    assert len(manifests) == 4 and manifests == job_manifests(work_off)
    for published in PUBLISHED:
        assert digest(run_dir / published) == digest(off / published)

    # the process job and the analysis of the processed rows computed nothing: the probe had
    def computed(hook: str) -> list[int]:
        logs = sorted(work_on.glob(f"logs/{hook}/*.log"))
        return sorted(sum(int(m[3]) for m in HIT_LINE.finditer(log.read_text())) for log in logs)

    rows = len(read_objects(run_dir / "configs/data/demo/demo-dataset.jsonl"))
    assert computed("ProcessDataHook") == [0] and computed("ProbeViaAnalyzerHook") == [0, 5 * rows]
    assert cache_size(stats_cache_dir(str(work_on))).ops == 5
    assert not (work_off / "stats-cache").exists()


def test_finished_run_reruns_nothing(run_dir: Path, cold: dict):
    assert job_counts(snakemake(run_dir, CONFIG)) == {}


def test_changing_the_last_job_reruns_only_it_and_the_assembly(run_dir: Path, cold: dict):
    def stricter_analysis(data):
        data["evaluation_job_configs"][0]["local"] = {
            "dj_configs.process": [{"words_num_filter": {"lang": "en", "tokenization": False, "min_num": 3}}]
        }

    name = variant(run_dir, "last_changed", stricter_analysis)
    counts = job_counts(snakemake(run_dir, name))
    assert counts == {"probe_via_analyzer": 1, "publication_record": 1, "context_infos": 1, "all": 1}


def test_np_and_export_directory_are_not_part_of_the_work(run_dir: Path, cold: dict):
    def faster_and_elsewhere(data):
        # The file name stays: it names the artifacts, so it is part of the work.
        data["probe_job_configs"][0]["local"] = {
            "dj_configs.np": 2,
            "dj_configs.export_path": "./outputs/elsewhere/demo-processed.jsonl",
        }

    name = variant(run_dir, "np_changed", faster_and_elsewhere)
    counts = job_counts(snakemake(run_dir, name))
    assert counts == {"publication_record": 1, "context_infos": 1, "all": 1}
    assert (run_dir / "outputs/elsewhere/iter_1/demo-processed_stats.jsonl").exists()


def kill_when(run_dir: Path, config: str, moment) -> None:
    """Start snakemake on config and SIGKILL its whole process group once moment() is true."""
    process = start(run_dir, config)
    deadline = time.time() + 1200
    while time.time() < deadline and process.poll() is None and not moment():
        time.sleep(0.2)
    assert process.poll() is None, "the run ended before the moment to kill it"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def test_changing_the_first_job_reruns_everything_downstream_even_across_two_kills(run_dir: Path, cold: dict):
    """Kill the run (SIGKILL, whole process group) at two moments, restarting after each: while the
    process job runs, then while the analysis of its output runs.

    Snakemake starts a job only after it has recorded the jobs before it as finished; a job killed
    before Snakemake recorded it is (safely) run again, so each kill waits for the next job to start.
    """

    def other_percentiles(data):
        data["probe_job_configs"][0]["local"] = {"dj_configs.percentiles": [0.1, 0.9]}
        # the analysis of the processed rows too: otherwise it would copy the cold run's files (the same rows,
        # hooks/dj_probe_reuse.py) in too little time to be killed while it runs
        data["evaluation_job_configs"][0]["local"] = {"dj_configs.percentiles": [0.1, 0.9]}

    name = variant(run_dir, "first_changed", other_percentiles)
    work = run_dir / WORK
    before = {p.parent for p in work.glob("jobs/*/*/context.json")}

    def finished() -> list[str]:
        return sorted(p.parent.name for p in {p.parent for p in work.glob("jobs/*/*/context.json")} - before)

    kill_when(run_dir, name, lambda: bool(list(work.glob("jobs/ProcessDataHook/*.partial-*"))))
    assert finished() == ["ProbeViaAnalyzerHook", "RefineRecipeViaKSigmaHook"]
    kill_when(
        run_dir,
        name,
        lambda: "ProcessDataHook" in finished() and bool(list(work.glob("jobs/ProbeViaAnalyzerHook/*.partial-*"))),
    )
    assert finished() == ["ProbeViaAnalyzerHook", "ProcessDataHook", "RefineRecipeViaKSigmaHook"]

    counts = job_counts(snakemake(run_dir, name))
    rerun = {k: v for k, v in counts.items() if k not in ("publication_record", "context_infos", "all")}
    assert rerun == {"probe_via_analyzer": 1}, counts  # nothing finished before a kill runs again
    assert finished() == [
        "ProbeViaAnalyzerHook",
        "ProbeViaAnalyzerHook",
        "ProcessDataHook",
        "RefineRecipeViaKSigmaHook",
    ]
    assert verify_manifests(work) == 8 + 1  # cold 4 + last-job change 1 + these 4
    assert not list(work.glob("jobs/*/*.partial-*"))
    infos = json.loads((work / "context_infos.json").read_text())
    assert len(infos[0]["pipeline_infos"][0]["job_infos"]) == 4


def test_putting_the_old_value_back_reruns_no_hook_and_restores_outputs_byte_identical(run_dir: Path, cold: dict):
    counts = job_counts(snakemake(run_dir, CONFIG))
    assert counts == {"context_infos": 1, "all": 1}
    assert (run_dir / WORK / "context_infos.json").read_bytes() == cold["context_infos"]
    assert {p: digest(run_dir / p) for p in PUBLISHED} == cold["published"]


def test_dry_run_executes_nothing_and_writes_no_job_output(run_dir: Path, cold: dict):
    def new_threshold(data):
        data["evaluation_job_configs"][0]["local"] = {"dj_configs.process": [{"text_length_filter": {"min_len": 20}}]}

    name = variant(run_dir, "dry", new_threshold)
    before = sorted(str(p) for p in (run_dir / WORK).rglob("*"))
    counts = job_counts(snakemake(run_dir, name, "-n"))
    assert counts["probe_via_analyzer"] == 1
    assert sorted(str(p) for p in (run_dir / WORK).rglob("*")) == before
