"""A sandbox config after loading: pipelines of jobs in DJ-Sandbox's sequential order."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STAGES = ("probe_job_configs", "refine_recipe_job_configs", "execution_job_configs", "evaluation_job_configs")
SECTIONS = ("dj_configs", "extra_configs")
ANONYMOUS_PIPELINE = "anonymous"
ANONYMOUS_META_NAME = "anonymous_meta_name"
DEFAULT_WORK_DIR = "./outputs/hello_world"
RECIPE_SUFFIXES = (".yaml", ".yml", ".json")
GLOBAL_KEYS = ("project_name", "experiment_name", "work_dir", "resume", "debug", "hpo_config")


@dataclass(frozen=True)
class JobConfig:
    """One job as written in the config, before planning."""

    where: str
    pipeline: str
    stage: str
    index: int
    hook: str
    meta_name: str | None
    dj_configs: Any
    extra_configs: Any
    inputs: dict[str, str]
    outputs: tuple[str, ...] | None
    local: dict[str, Any]
    # What the job asks of the scheduler (threads, mem_mb, gpu, ...); not part of its key.
    resources: dict[str, Any] = field(default_factory=dict)

    @property
    def display_name(self) -> str:
        return self.meta_name or ANONYMOUS_META_NAME


@dataclass
class SandboxConfig:
    source: str
    project_name: str
    experiment_name: str
    work_dir: str
    max_iter_num: int
    max_iter_cap: int
    iter_targets: list[str]
    iter_targets_mode: str
    iter_updater: dict[str, str]
    hpo_config: Any
    sequential: bool
    wandb: dict[str, Any] | None  # wandb tracking settings; None: not tracked
    pipelines: list[tuple[str, list[JobConfig]]] = field(default_factory=list)
    job_files: list[str] = field(default_factory=list)  # jobs given as file paths (DVC declares them as deps)
    # The `variables:` values and each `env:NAME` read, for `sandflow check` (config/variables.py).
    variables: dict[str, Any] = field(default_factory=dict)
    # Place of a converted setting -> where the config wrote it (config/iterate_block.py).
    written_as: dict[str, str] = field(default_factory=dict)
    # What the config asks that sandflow does not do, said before a run (`sandflow check`, the Snakemake start).
    notes: list[str] = field(default_factory=list)

    def jobs(self) -> list[JobConfig]:
        """All jobs in DJ-Sandbox's sequential order."""
        return [job for _, jobs in self.pipelines for job in jobs]
