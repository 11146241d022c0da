"""What a hook sees when it runs, and what the registry knows about it before it runs.

A hook is a module with a ``run(job: JobRun)`` function. The registry
(``sandflow.hooks.registry``) describes each hook with a ``Hook`` record that the
planner reads at parse time, so hook modules must import heavy libraries
(data_juicer, torch) inside ``run`` only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class JobRun:
    """One job at run time: its configs are resolved and its write paths point into ``job_dir``."""

    hook: str
    key: str
    pipeline: str
    meta_name: str
    iteration: int
    job_dir: Path
    dj_configs: dict[str, Any] | None
    extra_configs: dict[str, Any] | None
    # Job directories of jobs this one reads besides its input refs, by role
    # (e.g. {"analysis": <dir of the probe job sharing this job's meta_name>}).
    linked_jobs: dict[str, Path] = field(default_factory=dict)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("sandflow.job"))
    # CPU threads Snakemake granted the job (its rule's `threads`).
    threads: int = 1


# A requirement check: given a job's static dj_configs / extra_configs, return one
# line per missing thing ("language_id_score_filter needs lid.176.bin in ...").
RequirementCheck = Callable[[Mapping[str, Any] | None, Mapping[str, Any] | None], list[str]]


def no_requirements(dj_configs: Mapping[str, Any] | None, extra_configs: Mapping[str, Any] | None) -> list[str]:
    return []


@dataclass(frozen=True)
class Component:
    """One ``extra_configs.type`` of a hook with a component factory (e.g. ``data_pool_merging``)."""

    run: Callable[[JobRun], Any]
    # How many values it returns (None: not known before it runs).
    n_outputs: int | None = 1
    requires: RequirementCheck = no_requirements
    # Reads files through paths we cannot see (third-party configs relative to their own
    # directories): it runs after the job before it in DJ-Sandbox's order, as upstream.
    follows_previous: bool = False
    # Its tool family when it differs from its hook's (e.g. vllm inference needs a GPU env).
    family: str | None = None


@dataclass(frozen=True)
class Hook:
    name: str
    run: Callable[[JobRun], Any] | None
    # Distributions whose version shapes the result (part of every job key).
    libraries: tuple[str, ...] = ()
    # Dotted config keys this hook writes; everything else is read.
    writes: tuple[str, ...] = ("dj_configs.export_path", "extra_configs.export_path")
    # Dotted config keys that must name an existing file or an upstream job's output (one it writes: must be set).
    required_paths: tuple[str, ...] = ()
    # extra_configs.type -> component; None when the hook takes no type.
    components: Mapping[str, Component] | None = None
    n_outputs: int | None = 1
    requires: RequirementCheck = no_requirements
    # Reads the analysis of the earlier job sharing its meta_name (k-sigma).
    reads_same_meta_name_analysis: bool = False
    # Tool family: default resources and conda env (run/resources.py, envs/<family>.yaml).
    family: str = "data-juicer"
