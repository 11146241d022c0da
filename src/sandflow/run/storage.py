"""The job store in an object store, through Snakemake's own storage plugins.

With ``--default-storage-provider`` (e.g. ``s3`` and ``--default-storage-prefix s3://bucket/prefix``)
every path a rule declares lives in the store, and Snakemake stages each job's declared inputs and
outputs in a local directory (``.snakemake/storage/...``), uploading the outputs when the job is done.
sandflow then declares whole job directories instead of their ``context.json`` (so the plugin moves
every artifact, the manifest and the record), and the scripts that read job directories read the
staged copies. The plan, the job keys and what a record says are the same as without a store: records
name job directories by their planned paths (``<work_dir>/jobs/<hook>/<key>/...``); only a running
script maps those to where the plugin staged them (``Staging``).

Local-only state stays in ``<work_dir>/.sandflow`` on the machine that runs snakemake: the run lock
and the file-hash cache. docs/design.md ("Jobs in an object store") says what is skipped and why.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, TypeVar

from sandflow.core.jobio import replace_prefix
from sandflow.plan.model import Plan

# In a rule's spec when a storage plugin stages the job store: the planned <work_dir>/jobs. Absent
# without a storage provider, so the specs of local runs are unchanged.
STAGED = "staged_jobs_dir"

Spec = TypeVar("Spec", bound=dict[str, Any])


def unsupported(plan: Plan) -> str | None:
    """What this plan uses that sandflow does not yet run with a storage provider (None when nothing).

    Checkpoint decisions are read at parse time from local files, and the search summary and wandb
    tracking read job directories through specs not mapped to staged copies yet."""
    config = plan.config
    if config.iter_targets:
        return (
            "iter_targets cannot be used with a default storage provider yet "
            "(iteration decisions are read from local files while planning)"
        )
    if plan.search is not None:
        return "hpo_config cannot be used with a default storage provider yet"
    if config.wandb is not None:
        return "wandb cannot be used with a default storage provider yet"
    return None


@dataclass(frozen=True)
class Staging:
    """Where a storage plugin staged the job store on this machine.

    ``jobs`` is the planned ``<work_dir>/jobs`` as the plan writes it, ``staged_jobs`` its local copy.
    Without a store both are the same and mapping changes nothing."""

    jobs: str
    staged_jobs: str

    @classmethod
    def of(cls, spec: dict[str, Any]) -> Staging:
        staging = spec.get("staging")
        return cls(**staging) if staging else cls("", "")

    @property
    def active(self) -> bool:
        return self.jobs != self.staged_jobs

    def local(self, value: Any) -> Any:
        """Planned job-directory paths (in a spec, or in an upstream record) -> their staged copies."""
        return replace_prefix(value, self.jobs, self.staged_jobs) if self.active else value

    def stored(self, value: Any) -> Any:
        """Staged paths -> planned ones, for what a job records (a record must not name one machine's copy)."""
        return replace_prefix(value, self.staged_jobs, self.jobs) if self.active else value


def staging_root(declared: str, local: str) -> str:
    """The directory the plugin staged ``declared`` under, given its local copy ``local``.

    Plugins stage a declared path P at ``<local storage prefix>/<provider>/<...>/P`` (an absolute P
    without its leading slash), so the root is what precedes P's normalized form."""
    suffix = os.path.normpath(declared).lstrip(os.sep)
    local = os.path.abspath(local)
    if not local.endswith(os.sep + suffix):
        raise ValueError(f"{local} is not a staged copy of {declared}")
    return local[: -len(suffix)]


def stage_spec(spec: Spec, declared: str, local: str) -> Spec:
    """A rule's spec with every job directory mapped to its staged copy, and the mapping in ``staging``.

    ``declared`` is one of the rule's outputs as the plan names it, ``local`` the path Snakemake gave
    the script for it. A spec not marked ``STAGED`` (no storage provider) is returned unchanged."""
    jobs = spec.get(STAGED)
    if not jobs:
        return spec
    staging = Staging(jobs, os.path.join(staging_root(declared, local), jobs.lstrip(os.sep)))
    return {**staging.local(spec), "staging": {"jobs": staging.jobs, "staged_jobs": staging.staged_jobs}}


def declared_directory(path: str) -> Any:
    """A rule output that is a whole directory, which the storage plugin uploads file by file."""
    from snakemake.io import directory  # only where Snakemake runs the workflow

    return directory(path)
