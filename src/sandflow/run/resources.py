"""What each job asks of the scheduler, and the environment it runs in on a cluster.

A job's hook and component type (``extra_configs.type``) select its family (hooks/registry.py):
what it runs. The family gives default resources and an environment: envs/<env>.yaml with
``--sdm conda``, the container image CONTAINER_IMAGES[<env>] with ``--sdm apptainer``, and the
project's own venv with neither (the default, also on SLURM). docs/resources.md is the table of
it all (``python -m sandflow.devtools.resources_table``). A job's own ``resources:`` mapping in
the config (next to ``hook`` and ``meta_name``) overrides any default, e.g. ``resources: {gpu: 4,
gpu_model: a100, runtime: 2880}``. Profiles override both per rule (``set-resources``), as
Snakemake does.

Upstream DJ-Sandbox runs every job in one process and builds third-party
environments itself (EnvManager, ``env_name: easyanimate`` etc.); here the
scheduler places jobs and Snakemake builds or pulls the environment. None of this
is part of a job key: where a job runs and with how much does not change its result.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sandflow.hooks.registry import hook_named
from sandflow.hooks.user_hooks import USER_HOOK_RULE, is_user_hook_name
from sandflow.plan.model import Job
from sandflow.run.per_job import per_job_function

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
    # Data-Juicer recipes, data pools, format conversions, data metrics (accuracy, mse).
    "data-juicer": JobResources(threads=1, mem_mb=4096, runtime=60),
    # Training a Hugging Face / ModelScope model.
    "training": JobResources(threads=8, mem_mb=65536, runtime=1440, gpu=1, cpus_per_gpu=8),
    # Generating with a local Hugging Face / ModelScope model: one GPU, less memory and time than training.
    "inference": JobResources(threads=8, mem_mb=32768, runtime=240, gpu=1, cpus_per_gpu=8),
    # Generating through a remote model's HTTP API: the job only waits on the network.
    "api": JobResources(threads=1, mem_mb=4096, runtime=240),
    # Perplexity and caption metrics (BLEU, ROUGE, CIDEr): CPU evaluation.
    "evaluation": JobResources(threads=4, mem_mb=16384, runtime=240),
    "vllm": JobResources(threads=8, mem_mb=65536, runtime=720, gpu=1, cpus_per_gpu=8),
    "easyanimate": JobResources(threads=8, mem_mb=131072, runtime=2880, gpu=1, cpus_per_gpu=8),
    "internvl": JobResources(threads=8, mem_mb=131072, runtime=1440, gpu=1, cpus_per_gpu=8),
    "vbench": JobResources(threads=8, mem_mb=65536, runtime=720, gpu=1, cpus_per_gpu=8),
    "inception": JobResources(threads=8, mem_mb=65536, runtime=720, gpu=1, cpus_per_gpu=8),
    # Trinity-RFT runs its explorer (vLLM) and trainer on separate GPUs.
    "trinity": JobResources(threads=16, mem_mb=131072, runtime=1440, gpu=2, cpus_per_gpu=8),
}

# The environment of each family: envs/<env>.yaml and CONTAINER_IMAGES[<env>]. Inference, API calls and
# evaluation import what training imports (torch, transformers, the caption metrics' packages).
FAMILY_ENVS: dict[str, str] = {
    **{family: family for family in FAMILY_RESOURCES},
    "inference": "training",
    "api": "training",
    "evaluation": "training",
}

# The image of each env for ``--sdm apptainer``: envs/<env>.yaml installed on Python 3.11 (the workflow's:
# the script: directive imports sandflow and snakemake from the host venv, bound into the container).
# None is published: build each from containers/Dockerfile and push it where these names point, or
# change the names to yours here (containers/README.md). The assembly rules (rules/context.smk etc.)
# run where Snakemake runs and take none.
CONTAINER_REGISTRY = "docker://ghcr.io/sandflow"
CONTAINER_IMAGES: dict[str, str] = {
    env: f"{CONTAINER_REGISTRY}/{env}:0.1.0"
    for env in ("data-juicer", "training", "vllm", "easyanimate", "internvl", "vbench", "inception", "trinity")
}


def family_of(hook: str, component: str | None) -> str:
    """The family of a job: its component's when that has one, else its hook's (hooks/registry.py)."""
    entry = hook_named(hook)
    assert entry is not None, hook  # jobs are planned with known hooks
    chosen = entry.components.get(component) if entry.components and component is not None else None
    return chosen.family if chosen is not None and chosen.family else entry.family


def conda_env_file(hook: str, component: str | None) -> str:
    """The job's conda environment file, relative to rules/ as a conda: directive expects it."""
    return f"{ENVS_FROM_RULES}/{FAMILY_ENVS[family_of(hook, component)]}.yaml"


def container_image(hook: str, component: str | None) -> str:
    """The job's container image, as a container: directive expects it."""
    return CONTAINER_IMAGES[FAMILY_ENVS[family_of(hook, component)]]


def job_resources(hook: str, component: str | None, requested: Mapping[str, Any]) -> JobResources:
    """The family's defaults with the job's own ``resources:`` values on top (the schema has checked them)."""
    return dataclasses.replace(FAMILY_RESOURCES[family_of(hook, component)], **requested)


def _runs(hook: str, job: Job) -> bool:
    """Whether the rule asking for ``hook`` (a hook's name, or the user_hook rule's) runs the job."""
    return job.hook.name == hook or (hook == USER_HOOK_RULE and is_user_hook_name(job.hook.name))


class RuleResources:
    """The threads, resources, conda env and container image of the hook rules, for the jobs of one plan.

    A rule asks per hook (``threads: JOB_RESOURCES.threads_of("TrainModelHook")``), the rule of all user
    hooks by its rule name (``user_hook``). When every job of
    the hook asks the same, the rule gets plain values; otherwise it gets callables that Snakemake
    calls with each job's wildcards, whose ``key`` names the planned job. Plain values matter for
    large plans: Snakemake inspects and calls a callable once per job and directive (about a third
    of ``snakemake -n``'s time for 1,000 jobs). Iterations that are decided at run time add jobs
    after the rules exist, so such plans always get callables.
    """

    def __init__(self, jobs: Mapping[str, Job], final: bool):
        self._jobs = jobs  # shared with the workflow: later iterations are added to it
        self._final = final
        self._uniform_by_hook: dict[str, dict[str, Any]] = {}
        self._requests: dict[str, dict[str, Any]] = {}  # by key, for Snakemake's calls: one per job and directive
        # Jobs of one hook and component with the same resources: mapping ask alike (a search's trials do).
        self._requests_alike: dict[tuple[str, str | None, tuple[tuple[str, Any], ...]], dict[str, Any]] = {}

    def _requested(self, key: str) -> dict[str, Any]:
        if key not in self._requests:
            self._requests[key] = self._request_of(self._jobs[key])
        return self._requests[key]

    def _request_of(self, job: Job) -> dict[str, Any]:
        alike = (job.hook.name, job.component, tuple(sorted(job.cfg.resources.items())))  # scalars (the schema's)
        if alike not in self._requests_alike:
            self._requests_alike[alike] = self._computed_request(job)
        return self._requests_alike[alike]

    def _computed_request(self, job: Job) -> dict[str, Any]:
        request = job_resources(job.hook.name, job.component, job.cfg.resources)
        # On a CPU job (gpu 0) the GPU details are left out: the SLURM executor would otherwise
        # request --gpus=<model>:1 for a bare gpu_model.
        return {
            "threads": request.threads,
            "mem_mb": request.mem_mb,
            "runtime": request.runtime,
            "gpu": request.gpu,
            "gpu_model": request.gpu_model if request.gpu else None,
            "cpus_per_gpu": request.cpus_per_gpu if request.gpu else None,
            "conda": conda_env_file(job.hook.name, job.component),
            "container": container_image(job.hook.name, job.component),
        }

    def _uniform(self, hook: str) -> dict[str, Any]:
        """What every job of the hook asks alike (nothing while the plan may still grow); one pass over its jobs."""
        if hook not in self._uniform_by_hook:
            jobs = [job for job in self._jobs.values() if _runs(hook, job)] if self._final else []
            requests = list({id(request): request for request in map(self._request_of, jobs)}.values())
            first = requests[0] if requests else {}
            self._uniform_by_hook[hook] = {
                name: value for name, value in first.items() if all(request[name] == value for request in requests)
            }
        return self._uniform_by_hook[hook]

    def _for_rule(self, hook: str, name: str) -> Any:
        """The value every job of the hook asks for, or a callable giving each job's value."""
        uniform = self._uniform(hook)
        if name in uniform:
            return uniform[name]
        return per_job_function(lambda wildcards: self._requested(wildcards.key)[name])

    def threads_of(self, hook: str) -> Any:
        return self._for_rule(hook, "threads")

    def conda_env_of(self, hook: str) -> Any:
        return self._for_rule(hook, "conda")

    def container_of(self, hook: str) -> Any:
        return self._for_rule(hook, "container")

    def resources_of(self, hook: str) -> dict[str, Any]:
        """Keyword arguments of the rule's resources: directive (a value every job leaves out is not given)."""
        given = {name: self._for_rule(hook, name) for name in ("mem_mb", "runtime", "gpu", "gpu_model", "cpus_per_gpu")}
        return {name: value for name, value in given.items() if value is not None}
