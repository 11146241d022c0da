"""The 000 guide's single-file form (a recipe plus sandbox keys), converted to its default pipeline.

Upstream's ``SandBoxExecutor.register_default_jobs`` runs, in this order and each only when its key is
set: probe (analyser on the original data, model inference on a probe sample) -> refine (k-sigma, then
model feedback, both rewriting the one recipe in place) -> execution (process, then training on the
processed data) -> evaluation (analyser on the processed data, model inference on it, data and model
evaluation). Upstream chains them through one mutable config; here every hand-over is an explicit ref,
so each job reads exactly what the job before it in that chain wrote. docs/legacy-config.md has the table.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sandflow.config.errors import ConfigError
from sandflow.config.files import read_yaml_or_json
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

# Where each component takes its dataset / model (upstream's legacy hooks passed them positionally).
TRAIN_DATASET_KEY = {"modelscope": "train_dataset"}  # others: dataset_path
EVAL_DATASET_KEY = {"accuracy": "predicted_dataset_path", "mse": "predicted_dataset_path"}  # others: dataset_path
INFER_TYPES_WITH_LOCAL_MODEL = ("huggingface", "vllm")  # extra_configs.model may be the trained checkpoint
EVAL_TYPES_WITH_CHECKPOINTS = ("perplexity",)  # extra_configs.ckpt_paths may be the trained checkpoint

ANALYSED = "anonymous.analysis_ori_data.analysed_dataset_path"
ANSWERED = "anonymous.analysis_ori_model.inference_result_path"
PROCESSED = "anonymous.process_data.processed_dataset_path"
CHECKPOINT = "anonymous.train_model.checkpoint_path"


def is_legacy(data: dict[str, Any]) -> bool:
    return (
        "pipelines" not in data
        and not any(stage in data for stage in STAGES)
        and ("process" in data or any(key in data for key in LEGACY_SANDBOX_KEYS))
    )


def component_type(value: Any) -> str | None:
    """The ``type`` of a component config given inline or as a .yaml/.json file (None when unknown:
    a missing or bad file is reported by the planner, at the job that names it)."""
    if isinstance(value, str) and os.path.isfile(value):
        try:
            value = read_yaml_or_json(value)
        except ConfigError:
            return None
    kind = value.get("type") if isinstance(value, dict) else None
    return kind if isinstance(kind, str) else None


def convert_legacy(data: dict[str, Any]) -> dict[str, Any]:
    """The 000 guide's single-file form -> its default pipeline."""
    recipe = {k: v for k, v in data.items() if k not in LEGACY_SANDBOX_KEYS and k not in GLOBAL_KEYS}
    recipe["project_name"] = data.get("project_name", "sandbox")
    converted: dict[str, Any] = {k: data[k] for k in GLOBAL_KEYS if k in data}
    converted.setdefault("work_dir", str(Path(recipe.get("export_path", DEFAULT_WORK_DIR + "/x")).parent))
    infer, train = data.get("model_infer_config"), data.get("model_train_config")
    feedback = data.get("path_model_feedback_recipe")

    # Model feedback reads samples that carry their stats: the model's answers on analysed samples, or,
    # without a model, the analysed samples themselves (no model signal then: the thresholds become the
    # data's observed ranges; docs/legacy-config.md).
    analyser_recipe = analysed_export(recipe) if infer or feedback else recipe
    probe: list[dict[str, Any]] = [
        {
            "hook": "ProbeViaAnalyzerHook",
            "meta_name": "analysis_ori_data",
            "output": "analysed_dataset_path",
            "dj_configs": analyser_recipe,
        }
    ]
    if infer:
        probe.append(model_infer_job("analysis_ori_model", recipe, infer, ANALYSED))

    refine: list[dict[str, Any]] = []
    refined: str | None = None  # the ref of the newest refined recipe
    if data.get("path_k_sigma_recipe"):
        refine.append(
            {
                "hook": "RefineRecipeViaKSigmaHook",
                "meta_name": "analysis_ori_data",  # reads the analysis of the probe of that name
                "output": "refined_recipe_path",
                "dj_configs": recipe,
                "extra_configs": {"path_k_sigma_recipe": data["path_k_sigma_recipe"]},
            }
        )
        refined = "anonymous.analysis_ori_data.refined_recipe_path"
    if feedback:
        # Refines k-sigma's recipe when there is one, as upstream's hooks rewrote one recipe in turn.
        refine.append(
            with_inputs(
                {
                    "hook": "RefineRecipeViaModelFeedbackHook",
                    "meta_name": "refine_via_model_feedback",
                    "output": "refined_recipe_path",
                    "dj_configs": recipe,
                    "extra_configs": {"path_model_feedback_recipe": feedback},
                },
                {
                    "dj_configs": refined,
                    "extra_configs.dataset_path": ANSWERED if infer else ANALYSED,
                },
            )
        )
        refined = "anonymous.refine_via_model_feedback.refined_recipe_path"

    execution = [
        with_inputs(
            {
                "hook": "ProcessDataHook",
                "meta_name": "process_data",
                "output": "processed_dataset_path",
                "dj_configs": recipe,
            },
            {"dj_configs": refined},
        )
    ]
    if train:
        dataset_key = TRAIN_DATASET_KEY.get(component_type(train) or "", "dataset_path")
        execution.append(
            {
                "hook": "TrainModelHook",
                "meta_name": "train_model",
                "output": "checkpoint_path",
                "input": {f"extra_configs.{dataset_key}": PROCESSED},
                "extra_configs": train,
            }
        )

    evaluation = [
        {
            "hook": "ProbeViaAnalyzerHook",
            "meta_name": "analysis_processed_data",
            "input": {"dj_configs.dataset_path": PROCESSED},
            "dj_configs": recipe,
        }
    ]
    if infer:
        job = model_infer_job("analysis_trained_model", recipe, infer, PROCESSED)
        if train and component_type(infer) in INFER_TYPES_WITH_LOCAL_MODEL:
            job["input"]["extra_configs.model"] = CHECKPOINT
        evaluation.append(job)
    if data.get("data_eval_config"):
        dataset_key = EVAL_DATASET_KEY.get(component_type(data["data_eval_config"]) or "", "dataset_path")
        evaluation.append(
            {
                "hook": "EvaluateDataHook",
                "meta_name": "eval_data",
                "input": {f"extra_configs.{dataset_key}": PROCESSED},
                "extra_configs": data["data_eval_config"],
            }
        )
    if data.get("model_eval_config"):
        checkpoints = train and component_type(data["model_eval_config"]) in EVAL_TYPES_WITH_CHECKPOINTS
        evaluation.append(
            with_inputs(
                {"hook": "EvaluateModelHook", "meta_name": "eval_model", "extra_configs": data["model_eval_config"]},
                {"extra_configs.ckpt_paths": CHECKPOINT if checkpoints else None},
            )
        )
    converted.update(
        probe_job_configs=probe,
        refine_recipe_job_configs=refine,
        execution_job_configs=execution,
        evaluation_job_configs=evaluation,
    )
    return converted


def analysed_export(recipe: dict[str, Any]) -> dict[str, Any]:
    """The recipe for an analyser that exports the original data with its stats, to ``<stem>_analysed<ext>``
    beside the recipe's export_path: process_data exports to export_path itself, and would overwrite it."""
    exporting = dict(recipe, export_original_dataset=True)
    export_path = recipe.get("export_path")
    if isinstance(export_path, str) and export_path:
        base, ext = os.path.splitext(export_path)
        exporting["export_path"] = f"{base}_analysed{ext}"
    return exporting


def model_infer_job(meta_name: str, recipe: dict[str, Any], infer: Any, dataset_ref: str) -> dict[str, Any]:
    """ProbeViaModelInferHook on Data-Juicer's probe sample (the recipe's data_probe_ratio) of ``dataset_ref``."""
    return {
        "hook": "ProbeViaModelInferHook",
        "meta_name": meta_name,
        "output": "inference_result_path",
        "input": {"dj_configs.dataset_path": dataset_ref},
        "dj_configs": recipe,
        "extra_configs": infer,
    }


def with_inputs(job: dict[str, Any], inputs: dict[str, str | None]) -> dict[str, Any]:
    """The job with those ``input`` refs that are set (a None ref: that input keeps the job's own value)."""
    refs = {target: ref for target, ref in inputs.items() if ref}
    return {**job, "input": refs} if refs else job
