"""The ModelScope components: TrainModelHook and ProbeViaModelInferHook with ``type: modelscope``.

Both follow DJ-Sandbox's executors and need the modelscope package, which sandflow does not pin
(it pulls its own torch/transformers set): without it a run stops before any job, saying so.

* TrainModelHook (ModelscopeTrainExecutor): ``build_trainer(trainer_name, model=model_name, work_dir,
  train_dataset, eval_dataset)`` with every job key merged into ModelScope's config
  (``cfg_modify_fn``), datasets loaded with ``MsDataset.load`` and renamed by ``key_remapping``;
  returns work_dir.
* ProbeViaModelInferHook (ModelscopeInferProbeExecutor): ``modelscope.pipelines.pipeline(**config)``
  (the job's extra_configs without ``type`` and our ``export_path`` / ``infer_res_key``), run on
  Data-Juicer's probe sample of ``dj_configs.dataset_path`` (src/sandflow/hooks/probe_sampling.py).
  Upstream hands the result to its watcher only; here each sample is written with its result under
  ``infer_res_key`` (default ``response``) to ``<export_path>/<input name>_inference.jsonl``, as the
  other inference types write theirs, and those files are the job's output.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from typing import Any

from sandflow.core.atomic import write_text_atomic
from sandflow.core.jobio import JobFailed
from sandflow.core.jsonl import read_objects
from sandflow.hooks.base import JobRun
from sandflow.hooks.llm.infer import planned_outputs

PROBE_OWN_KEYS = ("type", "export_path", "infer_res_key")  # ours, not pipeline() arguments


def missing_package_message(hook: str) -> str:
    return f"{hook} type 'modelscope' needs the modelscope package (pip install modelscope)"


def modelscope_available() -> bool:
    return importlib.util.find_spec("modelscope") is not None


def requirements_for(hook: str) -> Any:
    def requirements(dj_configs: Mapping[str, Any] | None, extra_configs: Mapping[str, Any] | None) -> list[str]:
        return [] if modelscope_available() else [missing_package_message(hook)]

    return requirements


def require_modelscope(hook: str) -> None:
    if not modelscope_available():
        raise JobFailed(missing_package_message(hook))


def train_modelscope(job: JobRun) -> str:
    """TrainModelHook type 'modelscope', as DJ-Sandbox's ModelscopeTrainExecutor; returns work_dir."""
    require_modelscope(job.hook)
    from modelscope.msdatasets import MsDataset
    from modelscope.trainers import build_trainer

    cfg = dict(job.extra_configs or {})
    for key in ("model_name", "trainer_name", "work_dir"):
        if not cfg.get(key):
            raise ValueError(f"extra_configs.{key} is required for TrainModelHook type 'modelscope'")
    remapping = cfg.get("key_remapping") or {}

    def load(path: str, split: str) -> Any:
        dataset = MsDataset.load(path, split=split).ds_instance
        for old, new in remapping.items():
            if old in dataset.features:
                dataset = dataset.rename_column(old, new)
        return dataset

    def merge_job_config(ms_config: Any) -> Any:
        ms_config.merge_from_dict(cfg)  # upstream merges the whole job config into ModelScope's
        return ms_config

    default_args = {
        "model": cfg["model_name"],
        "work_dir": cfg["work_dir"],
        "cfg_modify_fn": merge_job_config,
        "train_dataset": load(cfg["train_dataset"], "train") if "train_dataset" in cfg else None,
        "eval_dataset": load(cfg["eval_dataset"], "val") if "eval_dataset" in cfg else None,
    }
    build_trainer(name=cfg["trainer_name"], default_args=default_args).train()
    return cfg["work_dir"]


def probe_modelscope(job: JobRun) -> list[str]:
    """ProbeViaModelInferHook type 'modelscope': a ModelScope pipeline on the probe sample of the data."""
    require_modelscope(job.hook)
    import datasets
    from modelscope.pipelines import pipeline

    from sandflow.hooks.probe_sampling import probe_settings, sampled_inputs

    config = dict(job.extra_configs or {})
    dj_configs = job.dj_configs if isinstance(job.dj_configs, Mapping) else {}
    ratio = probe_settings(dj_configs)
    result_key = config.get("infer_res_key", "response")
    outputs = planned_outputs(dj_configs.get("dataset_path"), config.get("export_path"))
    model = pipeline(**{key: value for key, value in config.items() if key not in PROBE_OWN_KEYS})
    for (_, output), sample in zip(outputs, sampled_inputs([i for i, _ in outputs], ratio, job.job_dir)):
        rows = read_objects(sample)
        results = model(datasets.Dataset.from_list(rows))
        job.log.info("modelscope probe on %s: %d sample(s) -> %s", sample, len(rows), output)
        write_text_atomic(
            output,
            "".join(
                json.dumps({**row, result_key: result}, ensure_ascii=False, default=str) + "\n"
                for row, result in zip(rows, results)
            ),
        )
    return [output for _, output in outputs]
