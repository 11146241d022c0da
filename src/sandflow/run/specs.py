"""What the workflow hands a rule's script: plain JSON-able specs (a job, the assembly), typed.

Specs travel as Snakemake params (and through the job server's socket), so they hold paths and values,
never planner objects; the job process never plans the config again.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, TypedDict

from sandflow.plan.model import Job, PathRead, Plan, Ref


class CandidateSpec(TypedDict):
    job_dir: str
    slot: str
    rel: str


class RefSpec(TypedDict):
    """Output ``index`` of the job whose record is ``context`` goes to ``target``."""

    target: list[str | int]
    context: str
    index: int


class PathReadSpec(TypedDict):
    """The newest existing <job_dir>/<slot>/<rel> of the candidates goes to ``target``."""

    target: list[str | int]
    candidates: list[CandidateSpec]
    text: str


class JobSpec(TypedDict):
    key: str
    hook: str
    job_dir: str
    where: str
    pipeline: str
    meta_name: str
    iteration: int
    sections: dict[str, Any]
    # A whole section known only at run time: a RefSpec (has "context") or a PathReadSpec.
    section_sources: dict[str, RefSpec | PathReadSpec]
    deferred_local: dict[str, Any]
    refs: list[RefSpec]
    path_reads: list[PathReadSpec]
    writes: list[str]
    linked: dict[str, str]
    n_outputs: int | None
    output_names: list[str] | None


class RunJobSpec(JobSpec):
    """A job spec as the rule gets it: with whether Snakemake forces this job to recompute."""

    recompute: bool


def _candidates(read: PathRead) -> list[CandidateSpec]:
    return [{"job_dir": c.job.job_dir, "slot": c.slot, "rel": c.rel} for c in read.candidates]


def _ref(ref: Ref) -> RefSpec:
    return {"target": list(ref.target), "context": ref.job.context_path, "index": ref.index}


def _path_read(read: PathRead) -> PathReadSpec:
    return {"target": list(read.target), "candidates": _candidates(read), "text": read.text}


def job_spec(job: Job) -> JobSpec:
    """Everything the rule needs to run the job, as plain JSON-able data."""
    return {
        "key": job.key,
        "hook": job.hook.name,
        "job_dir": job.job_dir,
        "where": job.where,
        "pipeline": job.cfg.pipeline,
        "meta_name": job.cfg.display_name,
        "iteration": job.iteration,
        "sections": job.sections,
        "section_sources": {
            section: _ref(source) if isinstance(source, Ref) else _path_read(source)
            for section, source in job.section_sources.items()
        },
        "deferred_local": job.deferred_local,
        "refs": [_ref(ref) for ref in job.refs],
        "path_reads": [_path_read(read) for read in job.path_reads],
        "writes": list(job.hook.writes),
        "linked": {role: linked.job_dir for role, linked in job.linked.items()},
        "n_outputs": len(job.cfg.outputs) if job.cfg.outputs is not None else job.n_outputs,
        "output_names": list(job.cfg.outputs) if job.cfg.outputs is not None else None,
    }


def readable_names(plan: Plan) -> dict[int, str]:
    """<meta_name> where unique in its pipeline, else <meta_name>-<position>; <position> without meta_name."""
    pipelines: dict[tuple[int | None, int, str], list[Job]] = {}
    for job in plan.jobs:
        pipelines.setdefault((job.trial, job.iteration, job.cfg.pipeline), []).append(job)
    names: dict[int, str] = {}
    for siblings in pipelines.values():
        uses = Counter(sibling.cfg.meta_name for sibling in siblings)
        for position, job in enumerate(siblings):
            meta = job.cfg.meta_name
            if meta is None:
                names[id(job)] = str(position)
            elif uses[meta] == 1:
                names[id(job)] = meta
            else:
                names[id(job)] = f"{meta}-{position}"
    return names


def assembly_spec(plan: Plan) -> dict[str, Any]:
    names = readable_names(plan)
    return {
        "work_dir": plan.work_dir,
        "context_infos": plan.context_infos_path,
        "jobs": [
            {
                "iteration": job.iteration,
                "trial": job.trial,
                "hook": job.hook.name,
                "pipeline": job.cfg.pipeline,
                "meta_name": job.cfg.display_name,
                "readable_name": names[id(job)],
                "key": job.key,
                "job_dir": job.job_dir,
                "output_names": list(job.cfg.outputs) if job.cfg.outputs is not None else None,
                # Publish locations known now; a job whose sections arrive at run time records its own.
                # A search's trials publish nothing: they would overwrite each other.
                "writes": []
                if job.trial is not None
                else None
                if job.section_sources
                else [{"slot": w.slot, "value": w.value, "kind": w.kind, "iterized": w.iterized} for w in job.writes],
            }
            for job in plan.jobs
        ],
    }
