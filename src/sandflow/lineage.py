"""`sandflow show`: where an artifact came from -- its job, that job's configs and inputs, recursively.

A target is a job (``<pipeline>.<meta_name>`` or a bare meta_name: every iteration and trial of it; or a job
key) or a path: a job directory or a file in one, a readable link under ``<work_dir>/pipelines/`` or
``<work_dir>/hpo/trial_<N>/``, or a published path (an export_path, with DJ-Sandbox's ``iter_<N>``).
Each job is printed with its hook, key and state, the recipe files its sections were read from, the
external files it reads with their sha256 (as they enter its key), and the jobs whose outputs it
reads, each of those printed the same way below it. A job printed before is referred to, not repeated.

A job directory (or key) that the config does not plan, made by an older config, is shown from its own record
(job_records.py). A published path that exists is credited to a job only if it holds that job's artifact.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

from sandflow.config.model import SECTIONS
from sandflow.config.tree import leaves
from sandflow.core.keys import KEY_PATTERN
from sandflow.core.paths import normalize
from sandflow.job_records import (
    JobRecord,
    enclosing_job_dir,
    holds_artifact,
    job_dirs_with_key,
    load_record,
    recorded_writers,
)
from sandflow.plan.keys import hook_digest, key_view
from sandflow.plan.model import Job, Plan, Ref


class NotFound(LookupError):
    """Nothing in the plan matches the target; the message says what was looked for."""


def find_jobs(plan: Plan, target: str) -> list[Job | JobRecord]:
    if os.path.exists(target) or os.sep in target:
        return [job_for_path(plan, target)]
    parts = target.split(".")
    matches = [
        job
        for job in plan.jobs
        if (len(parts) == 2 and (job.cfg.pipeline, job.cfg.display_name) == tuple(parts))
        or job.cfg.display_name == target
    ]
    if not matches and re.fullmatch(KEY_PATTERN, target):
        return [job_with_key(plan, target)]
    if not matches:
        raise NotFound(
            f"no job named {target!r} in this config (use <pipeline>.<meta_name>, a meta_name, a job key or a path)"
        )
    return list({job.key: job for job in reversed(matches)}.values())[::-1]  # one per key: trials share jobs


def job_with_key(plan: Plan, key: str) -> Job | JobRecord:
    """The plan's job with this key, else a job directory under the work_dir with it (made by another config)."""
    if key in plan.by_key:
        return plan.by_key[key]
    records = [record for record in map(load_record, job_dirs_with_key(plan.work_dir, key)) if record]
    if not records:
        raise NotFound(f"no job of this config has key {key}, nor a finished job directory under {plan.work_dir}")
    return records[0]


def job_for_path(plan: Plan, target: str) -> Job | JobRecord:
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
    job_dir = enclosing_job_dir(target)  # a job directory that another config made
    record = load_record(job_dir) if job_dir else None
    if record is not None:
        return record
    return publisher(plan, target)


def publisher(plan: Plan, target: str) -> Job | JobRecord:
    """The job whose artifact a published path holds. The plan says who writes there, the last writer in
    DJ-Sandbox's order winning; on disk, the path is credited to a writer only if it holds that writer's
    artifact (its manifest's sha256), or else to an earlier job of a writer's hook that published the same
    write and whose artifact it holds (made by another config). Not on disk yet: the plan's last writer."""
    wanted = normalize(target)
    writers = [
        (job, write, os.path.relpath(wanted, normalize(write.publish_root(job.iteration))))
        for job in plan.jobs
        for write in job.writes
        if wanted == normalize(write.published(job.iteration))
        or wanted.startswith(normalize(write.publish_root(job.iteration)) + os.sep)
    ]
    if not writers:
        raise NotFound(f"{target} is not in a job directory and no job of this config publishes it")
    if not os.path.exists(target):
        return writers[-1][0]
    for job, write, rel in reversed(writers):
        if holds_artifact(target, job.job_dir, artifact_name(write.slot, rel)):
            return job
    for job, write, rel in reversed(writers):
        earlier = [
            record
            for record in recorded_writers(plan.work_dir, job.hook.name, write.slot, write.value)
            if holds_artifact(target, record.job_dir, artifact_name(write.slot, rel))
        ]
        if earlier:
            return max(earlier, key=lambda record: str(record.record.get("started_at")))
    last = writers[-1][0]
    raise NotFound(
        f"{target} is where {last.cfg.pipeline}.{last.cfg.display_name} publishes, but it holds no artifact of that "
        "job (nor of an earlier job of its hook): it was changed after publishing, or written by something else"
    )


def artifact_name(slot: str, rel: str) -> str:
    """The manifest's name of what a write's slot holds at ``rel`` below the published root (``.``: all of it)."""
    return slot if rel == os.curdir else os.path.join(slot, rel)


def external_files(plan: Plan, job: Job) -> Iterator[str]:
    """The recipe files of the job's sections, a user hook's module, and every file it reads that no job writes,
    with sha256."""
    if job.hook.source_file is not None:
        yield f"hook code: {os.path.relpath(job.hook.source_file)}  sha256 {hook_digest(job, plan.hashes)[:16]}"
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


def lineage(plan: Plan, job: Job | JobRecord, indent: str = "", seen: set[str] | None = None) -> list[str]:
    seen = set() if seen is None else seen
    if isinstance(job, JobRecord):
        return recorded_lineage(plan, job, indent, seen)
    if job.key in seen:
        return [f"{indent}{job.cfg.pipeline}.{job.cfg.display_name}, key {job.key} (shown above)"]
    seen.add(job.key)
    lines = [indent + describe(job)]
    lines.extend(f"{indent}    {line}" for line in external_files(plan, job))
    for reading, producer in upstream(job):
        lines.append(f"{indent}    {reading}:")
        lines.extend(lineage(plan, producer, indent + "        ", seen))
    return lines


def recorded_lineage(plan: Plan, record: JobRecord, indent: str, seen: set[str]) -> list[str]:
    """A job directory no job of the plan has, from its own record; the jobs it read, from the plan or theirs."""
    if record.key in seen:
        return [f"{indent}job {record.key} (shown above)"]
    seen.add(record.key)
    lines = [indent + record.describe()]
    lines.extend(f"{indent}    {line}" for line in record.external_files())
    by_dir = {os.path.realpath(job.job_dir): job for job in plan.unique_jobs()}
    for reading, job_dir in record.upstream():
        lines.append(f"{indent}    {reading}:")
        producer = by_dir.get(os.path.realpath(job_dir)) or load_record(job_dir)
        if producer is None:
            lines.append(f"{indent}        {job_dir}: no record there (removed, or never finished)")
        else:
            lines.extend(lineage(plan, producer, indent + "        ", seen))
    return lines


def show(plan: Plan, target: str) -> str:
    seen: set[str] = set()
    return "\n".join(line for job in find_jobs(plan, target) for line in lineage(plan, job, "", seen))
