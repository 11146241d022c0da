"""The 000 guide's single-file form (a recipe plus sandbox keys), converted to its default pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sandflow.config.model import DEFAULT_WORK_DIR, GLOBAL_KEYS, STAGES

# Keys of the single-file form that are sandbox settings, not recipe keys.
LEGACY_SANDBOX_KEYS = (
    "path_k_sigma_recipe",
    "path_model_feedback_recipe",
    "model_infer_config",
    "model_train_config",
    "data_eval_config",
    "model_eval_config",
)


def is_legacy(data: dict[str, Any]) -> bool:
    return (
        "pipelines" not in data
        and not any(stage in data for stage in STAGES)
        and ("process" in data or any(key in data for key in LEGACY_SANDBOX_KEYS))
    )


def convert_legacy(data: dict[str, Any]) -> dict[str, Any]:
    """The 000 guide's single-file form -> its default pipeline.

    probe (analyser; model inference if configured) -> refine (k-sigma / model
    feedback if their paths are set) -> execution (process; training if
    configured) -> evaluation (analyser; data / model evaluation if configured).
    """
    recipe = {k: v for k, v in data.items() if k not in LEGACY_SANDBOX_KEYS and k not in GLOBAL_KEYS}
    recipe["project_name"] = data.get("project_name", "sandbox")
    converted: dict[str, Any] = {k: data[k] for k in GLOBAL_KEYS if k in data}
    converted.setdefault("work_dir", str(Path(recipe.get("export_path", DEFAULT_WORK_DIR + "/x")).parent))

    probe = [{"hook": "ProbeViaAnalyzerHook", "meta_name": "analysis_ori_data", "dj_configs": recipe}]
    if data.get("model_infer_config"):
        probe.append(
            {
                "hook": "ProbeViaModelInferHook",
                "meta_name": "analysis_ori_model",
                "dj_configs": recipe,
                "extra_configs": data["model_infer_config"],
            }
        )
    refine = []
    process: dict[str, Any] = {
        "hook": "ProcessDataHook",
        "meta_name": "process_data",
        "dj_configs": recipe,
        "output": "processed_dataset_path",
    }
    if data.get("path_k_sigma_recipe"):
        refine.append(
            {
                "hook": "RefineRecipeViaKSigmaHook",
                "meta_name": "analysis_ori_data",
                "output": "refined_recipe_path",
                "dj_configs": recipe,
                "extra_configs": {"path_k_sigma_recipe": data["path_k_sigma_recipe"]},
            }
        )
        process["input"] = {"dj_configs": "-1.refined_recipe_path"}
    if data.get("path_model_feedback_recipe"):
        refine.append(
            {
                "hook": "RefineRecipeViaModelFeedbackHook",
                "meta_name": "refine_via_model_feedback",
                "dj_configs": recipe,
                "extra_configs": {"path_model_feedback_recipe": data["path_model_feedback_recipe"]},
            }
        )
    execution = [process]
    if data.get("model_train_config"):
        execution.append(
            {
                "hook": "TrainModelHook",
                "meta_name": "train_model",
                "input": {"extra_configs.train_dataset": "anonymous.process_data.processed_dataset_path"},
                "extra_configs": data["model_train_config"],
            }
        )
    evaluation = [
        {
            "hook": "ProbeViaAnalyzerHook",
            "meta_name": "analysis_processed_data",
            "input": {"dj_configs.dataset_path": "anonymous.process_data.processed_dataset_path"},
            "dj_configs": recipe,
        }
    ]
    if data.get("data_eval_config"):
        evaluation.append(
            {
                "hook": "EvaluateDataHook",
                "meta_name": "eval_data",
                "input": {"extra_configs.dataset_path": "anonymous.process_data.processed_dataset_path"},
                "extra_configs": data["data_eval_config"],
            }
        )
    if data.get("model_eval_config"):
        evaluation.append(
            {"hook": "EvaluateModelHook", "meta_name": "eval_model", "extra_configs": data["model_eval_config"]}
        )
    converted.update(
        probe_job_configs=probe,
        refine_recipe_job_configs=refine,
        execution_job_configs=execution,
        evaluation_job_configs=evaluation,
    )
    return converted
