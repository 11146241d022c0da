"""The job store in an object store, through Snakemake's own storage plugins.

With ``--default-storage-provider`` (e.g. ``s3`` and ``--default-storage-prefix s3://bucket/prefix``)
every path a rule declares lives in the store, and Snakemake stages each job's declared inputs and
outputs in a local directory (``.snakemake/storage/...``), uploading the outputs when the job is done.
sandflow then declares whole job directories instead of their ``context.json`` (so the plugin moves
every artifact, the manifest and the record), and the scripts that read job directories read the
staged copies. The plan, the job keys and what a record says are the same as without a store: records
name job directories by their planned paths (``<work_dir>/jobs/<hook>/<key>/...``); only a running
script maps those to where the plugin staged them (``Staging``).

A job directory is finished in the store when its marker ``<key>.uploaded`` is there: the plugin
uploads a directory file by file, so a run killed half-way leaves some of its objects, which the
plugin counts as the directory. Snakemake stores a job's outputs one after the other in the order
declared, so the marker (an empty file Snakemake writes after the job) arrives only once the whole
directory has; rule all asks for every marker (``AssemblyRules.targets`` in run/assembly.py). A script also checks
every upstream job directory it staged against its manifest before reading it (``stage_spec``).

Local-only state stays in ``<work_dir>/.sandflow`` on the machine that runs snakemake: the run lock
and the file-hash cache. docs/design.md ("Jobs in an object store") says what is skipped and why.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any, TypeVar

from sandflow.core.jobio import replace_prefix
from sandflow.core.layout import CONTEXT_FILE, MANIFEST_FILE
from sandflow.plan.model import Plan
from sandflow.run.integrity import altered_artifact

# In a rule's spec when a storage plugin stages the job store: the planned <work_dir>/jobs. Absent
# without a storage provider, so the specs of local runs are unchanged.
STAGED = "staged_jobs_dir"

# A job directory's marker in the store, <job_dir><UPLOADED>: uploaded after the whole directory.
UPLOADED = ".uploaded"

# Snakemake's own file in every directory output it makes (and so in the store and in staged copies).
SNAKEMAKE_TIMESTAMP = ".snakemake_timestamp"

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
    the script for it. A spec not marked ``STAGED`` (no storage provider) is returned unchanged.
    Every upstream job directory the spec names must be whole in its staged copy; if one is not, the
    script stops here with one line (exit 1), before reading anything."""
    jobs = spec.get(STAGED)
    if not jobs:
        return spec
    staging = Staging(jobs, os.path.join(staging_root(declared, local), jobs.lstrip(os.sep)))
    for job_dir in read_job_dirs(spec, jobs, own=declared):
        problem = not_whole(job_dir, staging)
        if problem:
            print(f"sandflow: job failed: {problem}", file=sys.stderr)
            sys.exit(1)
    return {**staging.local(spec), "staging": {"jobs": staging.jobs, "staged_jobs": staging.staged_jobs}}


def read_job_dirs(spec: dict[str, Any], jobs: str, own: str) -> list[str]:
    """The job directories a spec names (a job's upstream records and artifacts, or every job of the
    assembly), by their planned paths, without ``own`` (the job's own output)."""
    found: set[str] = set()
    pending: list[Any] = [spec]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, str) and value.startswith(jobs + os.sep):
            parts = value[len(jobs) + 1 :].split(os.sep)
            if len(parts) >= 2:  # <jobs>/<hook>/<key>[/...]
                found.add(os.path.join(jobs, parts[0], parts[1]))
    found.discard(os.path.normpath(own))
    return sorted(found)


def not_whole(job_dir: str, staging: Staging) -> str | None:
    """Why the staged copy of an upstream job directory is not what its job wrote (None when it is):
    its record or manifest missing, or its artifacts not those of the manifest (run/integrity.py)."""
    local = staging.local(job_dir)
    missing = [name for name in (CONTEXT_FILE, MANIFEST_FILE) if not os.path.isfile(os.path.join(local, name))]
    problem = f"no {' and no '.join(missing)}" if missing else altered_artifact(local)
    if problem is None or problem.startswith(f"{os.path.join(local, SNAKEMAKE_TIMESTAMP)} "):
        return None  # Snakemake's file, not in the manifest: reported once every artifact of the manifest checked out
    problem = problem.replace(local, job_dir)  # name the job directory as planned, not this machine's copy
    return (
        f"upstream job directory {job_dir} is not whole in the store ({problem}); delete its objects and "
        f"{uploaded_marker(job_dir)} from the store to run that job again"
    )


def declared_job_outputs(job_dir: str) -> list[Any]:
    """What a hook rule declares with a store: the whole job directory, which the plugin uploads file by
    file, then its marker, which Snakemake creates after the job and stores after the directory."""
    from snakemake.io import directory, touch  # only where Snakemake runs the workflow

    return [directory(job_dir), touch(uploaded_marker(job_dir))]


def uploaded_marker(job_dir: str) -> str:
    return job_dir + UPLOADED
