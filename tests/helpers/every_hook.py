"""A config with a job of every hook, for tests of what Snakemake plans for each (resources, envs, images)."""

from __future__ import annotations

# One job of every hook (with a component of another family where it has some), and a second TrainModelHook
# job that asks for no GPU: jobs of one hook that ask differently get their values per job.
EVERY_HOOK = {
    "project_name": "every-hook",
    "work_dir": "./outputs/every-hook",
    "probe_job_configs": [
        {"hook": "ProbeViaAnalyzerHook", "meta_name": "analysis", "dj_configs": {"dataset_path": "./data.jsonl"}},
        {"hook": "ProbeViaModelInferHook", "meta_name": "probe_infer", "extra_configs": {"type": "vllm"}},
        {"hook": "GeneralProbeHook", "meta_name": "rank", "extra_configs": {"type": "data_pool_ranking"}},
    ],
    "refine_recipe_job_configs": [
        {
            "hook": "RefineRecipeViaKSigmaHook",
            "meta_name": "analysis",
            "dj_configs": {"dataset_path": "./data.jsonl"},
            "extra_configs": {"path_k_sigma_recipe": "./outputs/k_sigma.yaml"},
        },
        {
            "hook": "RefineRecipeViaModelFeedbackHook",
            "meta_name": "feedback",
            "extra_configs": {"path_model_feedback_recipe": "./outputs/feedback.yaml", "dataset_path": "./data.jsonl"},
        },
    ],
    "execution_job_configs": [
        {"hook": "ProcessDataHook", "meta_name": "process", "dj_configs": {"dataset_path": "./data.jsonl"}},
        {"hook": "DataPoolManipulationHook", "meta_name": "pools", "extra_configs": {"type": "data_pool_construction"}},
        {
            "hook": "GeneralDataExecutorHook",
            "meta_name": "convert",
            "extra_configs": {"type": "coco_caption_meta_generation"},
        },
        {"hook": "TrainModelHook", "meta_name": "train_rft", "extra_configs": {"type": "trinity-rft"}},
        {
            "hook": "TrainModelHook",
            "meta_name": "train_cpu",
            "extra_configs": {"type": "huggingface"},
            "resources": {"gpu": 0, "gpu_model": "h100", "threads": 2},
        },
        {"hook": "InferModelHook", "meta_name": "infer", "extra_configs": {"type": "easyanimate"}},
    ],
    "evaluation_job_configs": [
        {"hook": "EvaluateDataHook", "meta_name": "eval_data", "extra_configs": {"type": "accuracy"}},
        {"hook": "EvaluateModelHook", "meta_name": "eval_model", "extra_configs": {"type": "internvl_coco_caption"}},
    ],
}
