"""DJ-Sandbox's own example configs (verbatim, in tests/data/upstream) are accepted and planned, each from a copy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sandflow.config.load import load_config_file
from sandflow.plan.planner import plan_config

from helpers.env import snakemake_env
from helpers.processes import job_servers_in
from helpers.snakemake import job_counts, snakemake

# (pipeline, meta_name, hook[ type], [1-based numbers of the jobs it depends on]) in sequential order.
EXPECTED_GRAPHS = {
    "demo/sandbox.yaml": [
        ("anonymous", "analysis_ori_data", "ProbeViaAnalyzerHook", []),
        ("anonymous", "analysis_ori_data", "RefineRecipeViaKSigmaHook", [1]),
        ("anonymous", "process_data_with_refined_recipe", "ProcessDataHook", [2]),
        ("anonymous", "train_model", "TrainModelHook modelscope", [3]),
        ("anonymous", "analysis_processed_data", "ProbeViaAnalyzerHook", [3]),
        ("anonymous", "eval_data", "EvaluateDataHook dj_text_quality_classifier", [3]),
    ],
    "auto_prompt_optimization/sandbox_auto_prompt_optimization.yaml": [
        ("grader_model_prompt_optimization", "generate_new_prompts", "ProcessDataHook", []),
        (
            "grader_model_prompt_optimization",
            "construct_single_prompt_data_pools",
            "DataPoolManipulationHook data_pool_construction",
            [1],
        ),
        (
            "grader_model_prompt_optimization",
            "join_prompts_and_datasets_to_infer",
            "DataPoolManipulationHook data_pool_cartesian_join",
            [2],
        ),
        ("grader_model_prompt_optimization", "grader_model_inference", "InferModelHook api", [3]),
        ("grader_model_prompt_optimization", "grades_evaluation", "EvaluateDataHook mse", [4]),
        ("select_and_merge_data_pools", "rank_single_prompt_data_pools", "GeneralProbeHook data_pool_ranking", [2, 5]),
        (
            "select_and_merge_data_pools",
            "merge_single_prompt_data_pools",
            "DataPoolManipulationHook data_pool_merging",
            [6],
        ),
    ],
    "easyanimate_text_to_video/1_single_op_pipeline.yaml": [
        ("anonymous", "analysis_ori_data", "ProbeViaAnalyzerHook", []),
        ("anonymous", "anonymous_meta_name", "ProcessDataHook", [1]),  # reads ./outputs/demo-bench/iter_1/... literally
        ("anonymous", "anonymous_meta_name", "ProcessDataHook", [2]),
        ("anonymous", "convert_to_ea_fmt", "GeneralDataExecutorHook dj_to_easyanimate_video_dataset_conversion", [3]),
        (
            "anonymous",
            "anonymous_meta_name",
            "TrainModelHook easyanimate",
            [4],
        ),  # third-party paths: follows the previous job
        ("anonymous", "anonymous_meta_name", "InferModelHook easyanimate", [5]),
        ("anonymous", "vbench_eval", "EvaluateDataHook vbench_video_evaluator", [6]),
    ],
    "easyanimate_text_to_video/2_multi_op_pipeline.yaml": [
        ("anonymous", "anonymous_meta_name", "ProcessDataHook", []),
        ("anonymous", "anonymous_meta_name", "ProcessDataHook", [1]),
        ("anonymous", "convert_to_ea_fmt", "GeneralDataExecutorHook dj_to_easyanimate_video_dataset_conversion", [2]),
        ("anonymous", "anonymous_meta_name", "TrainModelHook easyanimate", [3]),
        ("anonymous", "anonymous_meta_name", "InferModelHook easyanimate", [4]),
        ("anonymous", "vbench_eval", "EvaluateDataHook vbench_video_evaluator", [5]),
    ],
    "easyanimate_text_to_video/3_duplicate_pipeline.yaml": [
        ("anonymous", "convert_to_ea_fmt", "GeneralDataExecutorHook dj_to_easyanimate_video_dataset_conversion", []),
        ("anonymous", "anonymous_meta_name", "TrainModelHook easyanimate", [1]),
        ("anonymous", "anonymous_meta_name", "InferModelHook easyanimate", [2]),
        ("anonymous", "vbench_eval", "EvaluateDataHook vbench_video_evaluator", [3]),
    ],
    "internvl_coco_caption/sandbox_internvl_coco_caption.yaml": [
        (
            "baseline_preparation",
            "convert_to_coco_caption",
            "GeneralDataExecutorHook coco_caption_to_dj_conversion",
            [],
        ),
        (
            "baseline_preparation",
            "generate_meta_file_dj_fmt",
            "GeneralDataExecutorHook coco_caption_meta_generation",
            [1],
        ),
        ("single_op_exps", "analysis_all_stats", "ProbeViaAnalyzerHook", [1]),
        ("single_op_exps", "construct_single_op_data_pools", "DataPoolManipulationHook data_pool_construction", [3]),
        ("single_op_exps", "anonymous_meta_name", "GeneralDataExecutorHook coco_caption_meta_generation", [4]),
        ("single_op_exps", "single_op_exps_train", "TrainModelHook internvl_coco_caption", [5]),
        ("single_op_exps", "single_op_exps_eval", "EvaluateModelHook internvl_coco_caption", [6]),
        ("multiple_op_exps", "rank_single_op_data_pools", "GeneralProbeHook data_pool_ranking", [4, 7]),
        ("multiple_op_exps", "anonymous_meta_name", "DataPoolManipulationHook data_pool_combination", [8]),
        ("multiple_op_exps", "align_data_pool_size", "DataPoolManipulationHook data_pool_downsampling", [9]),
        ("multiple_op_exps", "anonymous_meta_name", "GeneralDataExecutorHook coco_caption_meta_generation", [10]),
        ("multiple_op_exps", "multiple_op_exps_train", "TrainModelHook internvl_coco_caption", [11]),
        ("multiple_op_exps", "multiple_op_exps_eval", "EvaluateModelHook internvl_coco_caption", [12]),
        ("scaling_exps", "rank_multiple_op_data_pools", "GeneralProbeHook data_pool_ranking", [10, 13]),
        (
            "scaling_exps",
            "generate_meta_files_for_scaling_exps",
            "GeneralDataExecutorHook coco_caption_meta_generation",
            [14],
        ),
        ("scaling_exps", "scaling_op_exps_train_2B", "TrainModelHook internvl_coco_caption", [15]),
        ("scaling_exps", "scaling_op_exps_train_4B", "TrainModelHook internvl_coco_caption", [15, 16]),
        ("scaling_exps", "scaling_op_exps_train_26B", "TrainModelHook internvl_coco_caption", [15, 17]),
        ("scaling_exps", "scaling_op_exps_eval_2B", "EvaluateModelHook internvl_coco_caption", [16, 18]),
        ("scaling_exps", "scaling_op_exps_eval_4B", "EvaluateModelHook internvl_coco_caption", [17, 19]),
        ("scaling_exps", "scaling_op_exps_eval_26B", "EvaluateModelHook internvl_coco_caption", [18, 20]),
    ],
}


def graph_of(config_file: str) -> list[tuple[str, str, str, list[int]]]:
    plan = plan_config(load_config_file(config_file))
    number = {id(job): position + 1 for position, job in enumerate(plan.jobs)}
    return [
        (
            job.cfg.pipeline,
            job.cfg.display_name,
            f"{job.hook.name}{' ' + job.component if job.component else ''}",
            sorted(number[id(dep)] for dep in job.deps),
        )
        for job in plan.jobs
    ]


@pytest.mark.parametrize("config", sorted(EXPECTED_GRAPHS))
def test_upstream_config_plans_to_the_expected_graph(config: str, upstream_dir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(upstream_dir)
    assert graph_of(f"configs/{config}") == EXPECTED_GRAPHS[config]


@pytest.mark.slow
@pytest.mark.parametrize("config", sorted(EXPECTED_GRAPHS))
def test_snakemake_dry_run_lists_every_job_and_writes_nothing(config: str, upstream_dir: Path):
    result = snakemake(upstream_dir, f"configs/{config}", "-n")
    counts = job_counts(result)
    jobs = EXPECTED_GRAPHS[config]
    # + publication_record, context_infos, all; an iterative config adds iteration 1's decision and the outcome.
    iterative = "iter_targets" in (upstream_dir / "configs" / config).read_text()
    assert sum(counts.values()) == len(jobs) + 3 + 2 * iterative
    assert counts["context_infos"] == 1 and counts.get("iteration_decision", 0) == iterative
    assert sorted(upstream_dir.iterdir()) == [upstream_dir / ".snakemake", upstream_dir / "configs"]


@pytest.mark.slow
def test_a_real_run_that_needs_what_is_not_here_stops_before_any_job(upstream_dir: Path):
    result = snakemake(upstream_dir, "configs/demo/sandbox.yaml", check=False)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("sandflow: error: cannot run here: "), last
    assert not (upstream_dir / "outputs").exists()


@pytest.mark.slow
def test_sandflow_run_refused_at_onstart_leaves_no_job_server(upstream_dir: Path, tmp_path: Path):
    """`sandflow run` starts the job server before Snakemake; a run refused at onstart stops it before it exits.
    (It went on importing the jobs' libraries, torch among them, and held the command's output open meanwhile:
    the output goes to a file here, so that the command's end is its own.)"""
    argv = [sys.executable, "-m", "sandflow.cli", "run", "configs/demo/sandbox.yaml", "--cores", "1"]
    with open(tmp_path / "stderr.txt", "w") as stderr:
        run = subprocess.Popen(argv, cwd=upstream_dir, env=snakemake_env(), stdout=subprocess.DEVNULL, stderr=stderr)
        assert run.wait(timeout=600) == 2
    assert job_servers_in(upstream_dir) == []
    last = (tmp_path / "stderr.txt").read_text().strip().splitlines()[-1]
    assert last.startswith("sandflow: error: cannot run here: "), last
