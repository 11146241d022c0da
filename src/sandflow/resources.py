"""What each job asks of the scheduler, and the conda environment it runs in on a cluster.

A job's hook and component type (``extra_configs.type``) select its tool family;
the family gives default resources and an environment file in envs/. A job's own
``resources:`` mapping in the config (next to ``hook`` and ``meta_name``) overrides
any default, e.g. ``resources: {gpu: 4, gpu_model: a100, runtime: 2880}``. Profiles
override both per rule (``set-resources``), as Snakemake does.

Upstream DJ-Sandbox runs every job in one process and builds third-party
environments itself (EnvManager, ``env_name: easyanimate`` etc.); here the
scheduler places jobs and ``snakemake --sdm conda`` builds envs/<family>.yaml.
Without ``--sdm conda`` every job runs in the project's own venv. None of this
is part of a job key: where a job runs and with how much does not change its result.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from sandflow.plan import Job

# Env files as a rule's conda: directive names them (relative to rules/, like its script:).
ENVS_FROM_RULES = "../envs"


@dataclass(frozen=True)
class JobResources:
    """One job's request; names are Snakemake's standard resources, which the SLURM executor maps to sbatch."""

    threads: int = 1  # --cpus-per-task on a CPU job
    mem_mb: int = 4096  # --mem
    runtime: int = 60  # minutes, -t
    gpu: int = 0  # --gpus
    gpu_model: str | None = None  # --gpus=<model>:<gpu>
    cpus_per_gpu: int | None = None  # --cpus-per-gpu on a GPU job (instead of --cpus-per-task)


# Defaults per family: what one job of the family's usual size needs on a GPU cluster.
FAMILY_RESOURCES: dict[str, JobResources] = {
    "data-juicer": JobResources(threads=1, mem_mb=4096, runtime=60),
    "training": JobResources(threads=8, mem_mb=65536, runtime=1440, gpu=1, cpus_per_gpu=8),
    "vllm": JobResources(threads=8, mem_mb=65536, runtime=720, gpu=1, cpus_per_gpu=8),
    "easyanimate": JobResources(threads=8, mem_mb=131072, runtime=2880, gpu=1, cpus_per_gpu=8),
    "internvl": JobResources(threads=8, mem_mb=131072, runtime=1440, gpu=1, cpus_per_gpu=8),
    "vbench": JobResources(threads=8, mem_mb=65536, runtime=720, gpu=1, cpus_per_gpu=8),
    # Trinity-RFT runs its explorer (vLLM) and trainer on separate GPUs.
    "trinity": JobResources(threads=16, mem_mb=131072, runtime=1440, gpu=2, cpus_per_gpu=8),
}

# The family of each hook; COMPONENT_FAMILIES refines it by extra_configs.type.
HOOK_FAMILIES: dict[str, str] = {
    "ProbeViaAnalyzerHook": "data-juicer",
    "ProbeViaModelInferHook": "training",
    "GeneralProbeHook": "data-juicer",
    "RefineRecipeViaKSigmaHook": "data-juicer",
    "RefineRecipeViaModelFeedbackHook": "data-juicer",
    "ProcessDataHook": "data-juicer",
    "DataPoolManipulationHook": "data-juicer",
    "GeneralDataExecutorHook": "data-juicer",
    "TrainModelHook": "training",
    "InferModelHook": "training",
    "EvaluateDataHook": "data-juicer",
    "EvaluateModelHook": "internvl",
}

COMPONENT_FAMILIES: dict[tuple[str, str], str] = {
    ("ProbeViaModelInferHook", "vllm"): "vllm",
    ("InferModelHook", "vllm"): "vllm",
    ("InferModelHook", "easyanimate"): "easyanimate",
    ("TrainModelHook", "easyanimate"): "easyanimate",
    ("TrainModelHook", "trinity-rft"): "trinity",
    ("TrainModelHook", "internvl_coco_caption"): "internvl",
    ("EvaluateDataHook", "vbench_video_evaluator"): "vbench",
    # Upstream's FVD/IS scripts (thirdparty/mm_eval/inception_metrics) need the same video stack as VBench.
    ("EvaluateDataHook", "video_inception_evaluator"): "vbench",
}


def family_of(hook: str, component: str | None) -> str:
    """The tool family of a job: its component's when that differs, else its hook's."""
    if component is not None and (hook, component) in COMPONENT_FAMILIES:
        return COMPONENT_FAMILIES[(hook, component)]
    return HOOK_FAMILIES[hook]


def conda_env_file(hook: str, component: str | None) -> str:
    """The job's conda environment file, relative to rules/ as a conda: directive expects it."""
    return f"{ENVS_FROM_RULES}/{family_of(hook, component)}.yaml"


def job_resources(hook: str, component: str | None, requested: Mapping[str, Any]) -> JobResources:
    """The family's defaults with the job's own ``resources:`` values on top (the schema has checked them)."""
    return dataclasses.replace(FAMILY_RESOURCES[family_of(hook, component)], **requested)


class RuleResources:
    """The threads/resources/conda callables of the hook rules, for the jobs of one plan.

    Rules pass the methods (``threads: JOB_RESOURCES.get_threads``); Snakemake
    calls them with the job's wildcards, whose ``key`` names the planned job.
    """

    def __init__(self, jobs: Mapping[str, Job]):
        self._jobs = jobs

    def _request(self, wildcards: Any) -> JobResources:
        job = self._jobs[wildcards.key]
        return job_resources(job.hook.name, job.component, job.cfg.resources)

    def get_conda_env(self, wildcards: Any) -> str:
        job = self._jobs[wildcards.key]
        return conda_env_file(job.hook.name, job.component)

    def get_threads(self, wildcards: Any) -> int:
        return self._request(wildcards).threads

    def get_mem_mb(self, wildcards: Any) -> int:
        return self._request(wildcards).mem_mb

    def get_runtime(self, wildcards: Any) -> int:
        return self._request(wildcards).runtime

    def get_gpu(self, wildcards: Any) -> int:
        return self._request(wildcards).gpu

    # On a CPU job (gpu 0) these two are left out: the SLURM executor would otherwise
    # request --gpus=<model>:1 for a bare gpu_model.
    def get_gpu_model(self, wildcards: Any) -> str | None:
        request = self._request(wildcards)
        return request.gpu_model if request.gpu else None

    def get_cpus_per_gpu(self, wildcards: Any) -> int | None:
        request = self._request(wildcards)
        return request.cpus_per_gpu if request.gpu else None
