"""`sandflow show`: the lineage of an artifact, from the plan (no run needed: states say 'not run yet').

Each test plans a private copy of the demo (conftest's demo_dir): the checkout's outputs/ may hold a `make demo` run."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from sandflow.cli import main
from sandflow.config.load import load_config_file
from sandflow.plan.planner import plan_config

DEMO = "configs/demo/sandbox.yaml"


@pytest.fixture
def demo(demo_dir: Path):
    return {
        job.cfg.display_name + ("" if job.hook.name != "RefineRecipeViaKSigmaHook" else "/refine"): job
        for job in plan_config(load_config_file(DEMO)).jobs
    }


def show(capsys: pytest.CaptureFixture, target: str) -> tuple[int, list[str], str]:
    code = main(["show", DEMO, target])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


def test_a_job_is_shown_with_its_recipe_files_data_and_the_jobs_it_reads_recursively(demo: dict, capsys):
    code, lines, _ = show(capsys, "anonymous.analysis_processed_data")
    probe, process, refine, first = (
        demo["analysis_processed_data"],
        demo["process_data_with_refined_recipe"],
        demo["analysis_ori_data/refine"],
        demo["analysis_ori_data"],
    )
    data = demo["analysis_ori_data"].sections["dj_configs"]["dataset_path"]
    digest = hashlib.sha256(Path(data).read_bytes()).hexdigest()[:16]
    assert code == 0
    assert [line.strip() for line in lines] == [
        f"anonymous.analysis_processed_data (iteration 1): ProbeViaAnalyzerHook, key {probe.key}, not run yet, {probe.job_dir}",
        "dj_configs from configs/demo/process.yaml",
        "dj_configs.dataset_path <- anonymous.process_data_with_refined_recipe.processed_dataset_path (output 0):",
        f"anonymous.process_data_with_refined_recipe (iteration 1): ProcessDataHook, key {process.key}, not run yet, {process.job_dir}",
        "dj_configs <- -1.refined_recipe_path (output 0):",
        f"anonymous.analysis_ori_data (iteration 1): RefineRecipeViaKSigmaHook, key {refine.key}, not run yet, {refine.job_dir}",
        "dj_configs from configs/demo/process.yaml",
        f"dj_configs.dataset_path: {data}  sha256 {digest}",
        "analysis <- the analysis of the same meta_name:",
        f"anonymous.analysis_ori_data (iteration 1): ProbeViaAnalyzerHook, key {first.key}, not run yet, {first.job_dir}",
        "dj_configs from configs/demo/process.yaml",
        f"dj_configs.dataset_path: {data}  sha256 {digest}",
    ]
    # Indentation is depth: each job read is four spaces deeper than the line naming what reads it.
    assert [len(line) - len(line.lstrip()) for line in lines] == [0, 4, 4, 8, 12, 16, 20, 20, 20, 24, 28, 28]


def test_a_path_names_its_job_a_published_path_its_last_writer(demo: dict, capsys):
    process = demo["process_data_with_refined_recipe"]
    code, lines, _ = show(capsys, f"{process.job_dir}/dj_configs.export_path/out.jsonl")
    assert code == 0 and lines[0].startswith(
        f"anonymous.process_data_with_refined_recipe (iteration 1): ProcessDataHook, key {process.key}"
    )
    # Both analyses export to the same file upstream; the later one is what the published path holds.
    code, lines, _ = show(capsys, "./outputs/demo-process/iter_1/demo-processed.jsonl")
    assert code == 0 and lines[0].startswith("anonymous.analysis_processed_data (iteration 1)")


@pytest.mark.parametrize(
    "target, message",
    [
        ("analysis", "no job named 'analysis' in this config (use <pipeline>.<meta_name>, a meta_name or a path)"),
        (
            "outputs/elsewhere/x.jsonl",
            "outputs/elsewhere/x.jsonl is not in a job directory and no job of this config publishes it",
        ),
    ],
)
def test_an_unknown_target_is_one_line_and_exit_2(demo: dict, capsys, target: str, message: str):
    code, lines, err = show(capsys, target)
    assert (code, lines, err) == (2, [], f"sandflow: error: {DEMO}: {message}\n")
