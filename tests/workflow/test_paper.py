"""The flagship recipe search, reduced (less data, fewer steps), end to end with real snakemake, Data-Juicer and torch.

The reduction changes sizes only (samples, pool size, training steps, duplication
factors); the config's shape, hooks and refs are configs/paper/recipe_search.yaml's.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sandflow.core.jsonl import read_objects
from sandflow.report.recipe_search import as_list, rows_for

from helpers.paths import REPO
from helpers.snakemake import job_counts, snakemake

# The cold run allows 2400 s on a slow machine (see cold below): above pyproject's per-test timeout.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2700)]

CONFIG = "configs/paper/recipe_search.yaml"
WORK = Path("outputs/paper")
POOL_SIZE = 40
STATS = ("alnum_ratio", "char_rep_ratio", "num_words", "special_char_ratio", "text_len")


def jobs_of(data: dict, pipeline: str) -> list[dict]:
    (body,) = [item[pipeline] for item in data["pipelines"] if pipeline in item]
    return [job for stage in body.values() for job in stage]


def job_named(data: dict, pipeline: str, meta_name: str) -> dict:
    (job,) = [job for job in jobs_of(data, pipeline) if job["meta_name"] == meta_name]
    return job


def write_reduced(run_dir: Path, name: str, duplicating_times: list[int]) -> str:
    data = yaml.safe_load((REPO / CONFIG).read_text())
    job_named(data, "single_op", "equalise")["extra_configs"]["target_num_samples"] = POOL_SIZE
    job_named(data, "baseline", "random_pool")["extra_configs"]["target_num_samples"] = POOL_SIZE
    for pipeline in ("single_op", "multi_op", "baseline"):
        job_named(data, pipeline, "train")["extra_configs"]["max_steps"] = 3
    job_named(data, "duplicate", "duplicate")["extra_configs"]["duplicating_times"] = duplicating_times
    path = run_dir / "configs" / "paper" / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path.relative_to(run_dir))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("paper")
    (directory / "configs").mkdir()
    shutil.copytree(REPO / "configs" / "paper", directory / "configs" / "paper")
    shutil.copytree(REPO / "configs" / "data", directory / "configs" / "data", ignore=shutil.ignore_patterns("*.jsonl"))
    subprocess.run(
        [sys.executable, "configs/data/make_paper_dataset.py", "--num-train", "240", "--num-heldout", "30"],
        cwd=directory,
        check=True,
        capture_output=True,
    )
    return directory


@pytest.fixture(scope="module")
def cold(run_dir: Path) -> dict:
    config = write_reduced(run_dir, "reduced.yaml", [1, 2])
    # Every job that imports torch pays its start-up (30-70 s on a slow machine): allow for that.
    return {"config": config, "counts": job_counts(snakemake(run_dir, config, timeout=2400))}


def infos(run_dir: Path) -> dict[tuple[str, str], dict]:
    data = json.loads((run_dir / WORK / "context_infos.json").read_text())
    return {(p["pipeline_name"], j["meta_name"]): j for p in data[0]["pipeline_infos"] for j in p["job_infos"]}


def test_cold_run_runs_every_stage(run_dir: Path, cold: dict):
    assert cold["counts"] == {
        "probe_via_analyzer": 1,
        "data_pool_manipulation": 5,
        "train_model": 5,
        "evaluate_model": 4,
        "general_probe": 2,
        "refine_recipe_via_model_feedback": 1,
        "publication_record": 1,
        "context_infos": 1,
        "all": 1,
    }


def test_one_model_per_pool_and_the_rankings_follow_perplexity(run_dir: Path, cold: dict):
    jobs = infos(run_dir)
    pools = jobs[("single_op", "equalise")]["equal_pools"]
    # Low / middle / high thirds of each stat, each downsampled to the same size.
    assert sorted(Path(p).name for p in pools) == sorted(
        f"train_{s}_{i}_{POOL_SIZE}.jsonl" for s in STATS for i in range(3)
    )
    assert all(len((run_dir / p).read_text().splitlines()) == POOL_SIZE for p in pools)
    metrics = jobs[("single_op", "evaluate")]["metrics"]
    assert len(metrics) == len(pools) == 15
    by_perplexity = [pool for _, pool in sorted(zip([m["perplexity"] for m in metrics], pools))]
    assert jobs[("multi_op", "rank")]["top_pools"] == by_perplexity[:3]
    combined = jobs[("multi_op", "combine")]["combined_pools"]
    combo_metrics = jobs[("multi_op", "evaluate")]["metrics"]
    best = min(zip([m["perplexity"] for m in combo_metrics], combined))[1]
    assert jobs[("duplicate", "rank")]["best_pool"] == best
    duplicated = jobs[("duplicate", "duplicate")]["duplicated_pools"]
    assert [Path(p).name for p in duplicated] == [f"{Path(best).stem}_x{t}.jsonl" for t in (1, 2)]
    assert all(m["perplexity"] > 1 and 0 <= m["token_accuracy"] <= 1 for m in metrics + combo_metrics)


def stage(run_dir: Path, jobs: dict, pipeline: str, meta_name: str, output: str) -> dict[str, dict]:
    """Pool name -> its size, clean share (the generated data's truth) and perplexity, for one stage."""
    rows = rows_for(
        as_list(jobs[(pipeline, meta_name)][output]), as_list(jobs[(pipeline, "evaluate")]["metrics"]), run_dir
    )
    return {row["pool"]: row for row in rows}


def test_the_findings_the_flagship_guide_reports_for_the_reduced_run(run_dir: Path, cold: dict):
    """docs/guides/flagship.md: what this run (fixed data seed, training seed 42, one thread per model) finds."""
    jobs = infos(run_dir)
    single = stage(run_dir, jobs, "single_op", "equalise", "equal_pools")
    (random_pool,) = stage(run_dir, jobs, "baseline", "random_pool", "random_pool").values()
    ranked = sorted(single.values(), key=lambda row: row["perplexity"])
    # The two cleanest pools are the middle thirds of alnum_ratio and special_char_ratio; they rank first and second.
    cleanest = sorted(single.values(), key=lambda row: -row["clean"])[:2]
    names = {f"train_alnum_ratio_1_{POOL_SIZE}", f"train_special_char_ratio_1_{POOL_SIZE}"}
    assert {row["pool"] for row in cleanest} == {row["pool"] for row in ranked[:2]} == names
    assert min(row["clean"] for row in cleanest) > max(row["clean"] for row in ranked[2:])
    # Both beat the random pool; the worst pool is worse than it.
    assert ranked[1]["perplexity"] < random_pool["perplexity"] < ranked[-1]["perplexity"]
    # The intersection of the top two is the cleanest pool of stage 2, yet does not beat the best pool alone.
    multi = stage(run_dir, jobs, "multi_op", "combine", "combined_pools")
    (intersection,) = [row for row in multi.values() if row["pool"].startswith("train__top_0_1_")]
    best_multi = min(multi.values(), key=lambda row: row["perplexity"])
    assert intersection["clean"] == 1.0 > max(row["clean"] for row in ranked[:2])
    assert best_multi["pool"] == f"train__top_0_num_{POOL_SIZE}" and best_multi["perplexity"] == ranked[0]["perplexity"]
    assert ranked[0]["perplexity"] < intersection["perplexity"] < ranked[1]["perplexity"]
    # Duplicating the best combination helps (one pass over x2 the data trains twice as long).
    x1, x2 = stage(run_dir, jobs, "duplicate", "duplicate", "duplicated_pools").values()
    assert x2["perplexity"] < x1["perplexity"]


def test_the_final_recipe_holds_the_best_pools_stat_ranges(run_dir: Path, cold: dict):
    jobs = infos(run_dir)
    recipe = yaml.safe_load((run_dir / jobs[("duplicate", "final_recipe")]["final_recipe"]).read_text())
    best = read_objects(run_dir / jobs[("duplicate", "rank")]["best_pool"])
    ratios = [sample["__dj__stats__"]["alnum_ratio"] for sample in best]
    (alnum,) = [op["alphanumeric_filter"] for op in recipe["process"] if "alphanumeric_filter" in op]
    assert (alnum["min_ratio"], alnum["max_ratio"]) == (min(ratios), max(ratios))


def test_the_report_has_tables_plots_and_the_recipe(run_dir: Path, cold: dict):
    result = subprocess.run(
        [sys.executable, "-m", "sandflow.report.recipe_search", str(WORK)],
        cwd=run_dir,
        capture_output=True,
        text=True,
        check=True,
    )
    report = run_dir / WORK / "report"
    summary = (report / "summary.md").read_text()
    assert result.stdout.strip() == summary.strip()
    assert summary.count("| pool | samples | clean share | perplexity |") == 4
    assert "alphanumeric_filter" in summary
    for plot in ("single_op_perplexity.png", "perplexity_vs_duplication.png"):
        assert (report / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_changing_only_the_duplication_factors_reruns_only_stage_3(run_dir: Path, cold: dict):
    config = write_reduced(run_dir, "reduced_x3.yaml", [1, 3])
    counts = job_counts(snakemake(run_dir, config))
    assert counts == {
        "data_pool_manipulation": 1,
        "train_model": 1,
        "evaluate_model": 1,
        "publication_record": 1,
        "context_infos": 1,
        "all": 1,
    }
    assert job_counts(snakemake(run_dir, config)) == {}
