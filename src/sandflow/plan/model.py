"""The planned job graph: jobs, what each reads and writes, and the plan they make up."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from sandflow.config.errors import ConfigError, did_you_mean
from sandflow.config.hpo_spec import HpoConfig
from sandflow.config.model import JobConfig, SandboxConfig
from sandflow.config.tree import KeyPath
from sandflow.core import layout
from sandflow.core.filehash import FileHashCache
from sandflow.core.paths import iterize
from sandflow.hooks.base import Hook


@dataclass(frozen=True)
class Write:
    """A path a job writes; at run time it is redirected to <job_dir>/<slot>/."""

    target: KeyPath
    value: str
    kind: str  # "file" | "dir"
    iterized: bool

    @property
    def slot(self) -> str:
        return ".".join(map(str, self.target))

    @property
    def basename(self) -> str:
        return os.path.basename(self.value.rstrip("/")) if self.kind == "file" else ""

    def published(self, iteration: int) -> str:
        return iterize(self.value, iteration) if self.iterized else self.value

    def publish_root(self, iteration: int) -> str:
        """The directory whose files this write's slot mirrors."""
        path = self.published(iteration)
        return os.path.dirname(path) if self.kind == "file" else path


@dataclass(frozen=True, eq=False)
class Candidate:
    """An earlier job's artifact that a path may name: <its job_dir>/<slot>/<rel>."""

    job: Job
    slot: str
    rel: str


@dataclass(frozen=True, eq=False)
class Ref:
    """An ``input`` ref (or an iter_updater): the value at ``target`` is output ``index`` of ``job``."""

    target: KeyPath
    job: Job
    index: int
    text: str

    @property
    def jobs(self) -> list[Job]:
        return [self.job]


@dataclass(frozen=True, eq=False)
class PathRead:
    """A value at ``target`` naming a path earlier jobs write: the newest candidate that exists is read."""

    target: KeyPath
    candidates: list[Candidate]
    text: str

    @property
    def jobs(self) -> list[Job]:
        return [candidate.job for candidate in self.candidates]


# Where a whole section comes from when it is known only at run time: a ref or an upstream file.
SectionSource = Ref | PathRead


@dataclass
class Job:
    cfg: JobConfig
    hook: Hook
    iteration: int
    order: int
    work_dir: str
    component: str | None = None
    key: str = ""
    sections: dict[str, Any] = field(default_factory=dict)  # static view (None: known at run time)
    section_sources: dict[str, SectionSource] = field(default_factory=dict)
    deferred_local: dict[str, Any] = field(default_factory=dict)
    refs: list[Ref] = field(default_factory=list)
    path_reads: list[PathRead] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    deps: list[Job] = field(default_factory=list)
    linked: dict[str, Job] = field(default_factory=dict)
    after: Job | None = None  # the previous job, when this one must follow it
    trial: int | None = None  # the hpo_config trial it belongs to (not in its key: trials share jobs)
    n_outputs: int | None = None
    missing: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return self.cfg.where

    @property
    def job_dir(self) -> str:
        return layout.job_dir(self.work_dir, self.hook.name, self.key)

    @property
    def context_path(self) -> str:
        return os.path.join(self.job_dir, layout.CONTEXT_FILE)

    @property
    def log_path(self) -> str:
        return layout.job_log(self.work_dir, self.hook.name, self.key)

    def sources(self) -> list[SectionSource]:
        """Everything the job reads from earlier jobs' outputs: input refs, whole sections, paths."""
        return [*self.refs, *self.section_sources.values(), *self.path_reads]

    def output_names(self) -> list[str] | None:
        if self.cfg.outputs is not None:
            return list(self.cfg.outputs)
        return None if self.n_outputs is None else [str(i) for i in range(self.n_outputs)]

    def output_index(self, name: str, where: str) -> int:
        if self.cfg.outputs is not None:
            if name in self.cfg.outputs:
                return self.cfg.outputs.index(name)
            raise ConfigError(
                where,
                f"{self.describe()} has no output {name!r} (its outputs: {', '.join(self.cfg.outputs)})"
                + did_you_mean(name, self.cfg.outputs),
            )
        match = re.fullmatch(r"(?:res_(\d+)|(\d+))", name)
        if not match:
            raise ConfigError(
                where, f"{self.describe()} names no outputs, so refer to them as 0..n-1 or res_1..res_n, not {name!r}"
            )
        index = int(match.group(1)) - 1 if match.group(1) else int(match.group(2))
        if index < 0 or (self.n_outputs is not None and index >= self.n_outputs):
            raise ConfigError(where, f"{self.describe()} has {self.n_outputs} output(s); {name!r} is out of range")
        return index

    def describe(self) -> str:
        return f"job {self.cfg.pipeline}.{self.cfg.display_name} ({self.where}, {self.hook.name})"


@dataclass
class Trial:
    number: int
    values: dict[str, Any]  # parameter name -> value
    metric_job: Job
    metric_index: int


@dataclass
class Search:
    hpo: HpoConfig
    trials: list[Trial] = field(default_factory=list)


@dataclass
class Plan:
    config: SandboxConfig
    work_dir: str
    jobs: list[Job]
    hashes: FileHashCache
    iteration_note: str = ""  # iterations not planned yet (plan/schedule.py)
    search: Search | None = None  # hpo_config's trials

    @property
    def pending_note(self) -> str:
        """What a user is told before a run (`sandflow check`, the Snakemake start): the config's settings that
        change nothing here (the config's and its search's), and the iterations not planned yet."""
        search_notes = self.search.hpo.notes if self.search else ()
        return "; ".join([*self.config.notes, *search_notes, *([self.iteration_note] if self.iteration_note else [])])

    @property
    def by_key(self) -> dict[str, Job]:
        first: dict[str, Job] = {}
        for job in self.jobs:
            first.setdefault(job.key, job)
        return first

    @property
    def context_infos_path(self) -> str:
        return layout.context_infos(self.work_dir)

    def unique_jobs(self) -> list[Job]:
        return list(self.by_key.values())
