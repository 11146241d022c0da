"""`sandflow show`: where an artifact came from -- its job, that job's configs and inputs, recursively.

A target is a job (``<pipeline>.<meta_name>`` or a bare meta_name: every iteration and trial of it)
or a path: a job directory or a file in one, a readable link under ``<work_dir>/pipelines/`` or
``<work_dir>/hpo/trial_<N>/``, or a published path (an export_path, with DJ-Sandbox's ``iter_<N>``).
Each job is printed with its hook, key and state, the recipe files its sections were read from, the
external files it reads with their sha256 (as they enter its key), and the jobs whose outputs it
reads, each of those printed the same way below it. A job printed before is referred to, not repeated.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from sandflow.config.model import SECTIONS
from sandflow.config.tree import leaves
from sandflow.core.paths import normalize
from sandflow.plan.keys import key_view
from sandflow.plan.model import Job, Plan, Ref


class NotFound(LookupError):
    """Nothing in the plan matches the target; the message says what was looked for."""


def find_jobs(plan: Plan, target: str) -> list[Job]:
    if os.path.exists(target) or os.sep in target:
        return [job_for_path(plan, target)]
    parts = target.split(".")
    matches = [
        job
        for job in plan.jobs
        if (len(parts) == 2 and (job.cfg.pipeline, job.cfg.display_name) == tuple(parts))
        or job.cfg.display_name == target
    ]
    if not matches:
        raise NotFound(f"no job named {target!r} in this config (use <pipeline>.<meta_name>, a meta_name or a path)")
    return list({job.key: job for job in reversed(matches)}.values())[::-1]  # one per key: trials share jobs


def job_for_path(plan: Plan, target: str) -> Job:
    path = os.path.realpath(target)  # a readable link resolves to its job directory
    by_dir = {os.path.realpath(job.job_dir): job for job in plan.unique_jobs()}
    probe = path
    while True:
        if probe in by_dir:
            return by_dir[probe]
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    wanted = normalize(target)
    writers = [
        job
        for job in plan.jobs
        for write in job.writes
        if wanted == normalize(write.published(job.iteration))
        or wanted.startswith(normalize(write.publish_root(job.iteration)) + os.sep)
    ]
    if not writers:
        raise NotFound(f"{target} is not in a job directory and no job of this config publishes it")
    return writers[-1]  # the last writer in DJ-Sandbox's order is what the published path holds


def external_files(plan: Plan, job: Job) -> Iterator[str]:
    """The recipe files of the job's sections, and every file it reads that no job writes, with sha256."""
    for section in SECTIONS:
        source = getattr(job.cfg, section)
        if isinstance(source, str) and section not in job.section_sources:
            yield f"{section} from {source}"
    view = key_view(job, plan.hashes)
    for path, value in leaves(view):
        if isinstance(value, dict) and "$file" in value:
            yield f"{'.'.join(map(str, path))}: {_at(job.sections, path)}  sha256 {value['$file'][:16]}"
        elif isinstance(value, dict) and "$function" in value:
            spec, digest = value["$function"]
            yield f"{'.'.join(map(str, path))}: function {spec}  sha256 {digest[:16]}"


def _at(tree: Any, path: tuple) -> Any:
    for part in path:
        tree = tree[part]
    return tree


def upstream(job: Job) -> Iterator[tuple[str, Job]]:
    """(what the job reads, the job it comes from), in the order a reader of the config expects."""
    for source in job.sources():
        place = ".".join(map(str, source.target))
        if isinstance(source, Ref):
            yield f"{place} <- {source.text} (output {source.index})", source.job
        else:
            for upstream_job in source.jobs:
                yield f"{place} <- {source.text}", upstream_job
    for role, linked in job.linked.items():
        yield f"{role} <- the analysis of the same meta_name", linked
    if job.after is not None:
        yield "runs after the job before it (sequential)", job.after


def describe(job: Job) -> str:
    state = "done" if os.path.exists(job.context_path) else "not run yet"
    where = f"iteration {job.iteration}" + (f", trial {job.trial}" if job.trial else "")
    component = f" {job.component}" if job.component else ""
    return f"{job.cfg.pipeline}.{job.cfg.display_name} ({where}): {job.hook.name}{component}, key {job.key}, {state}, {job.job_dir}"


def lineage(plan: Plan, job: Job, indent: str = "", seen: set[str] | None = None) -> list[str]:
    seen = set() if seen is None else seen
    if job.key in seen:
        return [f"{indent}{job.cfg.pipeline}.{job.cfg.display_name}, key {job.key} (shown above)"]
    seen.add(job.key)
    lines = [indent + describe(job)]
    lines.extend(f"{indent}    {line}" for line in external_files(plan, job))
    for reading, producer in upstream(job):
        lines.append(f"{indent}    {reading}:")
        lines.extend(lineage(plan, producer, indent + "        ", seen))
    return lines


def show(plan: Plan, target: str) -> str:
    seen: set[str] = set()
    return "\n".join(line for job in find_jobs(plan, target) for line in lineage(plan, job, "", seen))
