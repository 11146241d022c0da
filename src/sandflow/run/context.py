"""Assemble context_infos.json from per-job records, publish artifacts, link readable names.

context_infos.json is DJ-Sandbox's format, a product of the graph (never the
state that drives it):
``[{"iter": 1, "pipeline_infos": [{"pipeline_name": ..., "job_infos": [{"meta_name": ..., "<output>": value}]}]}]``.
Paths in it are the published ones (export_path with iter_<N>, path_k_sigma_recipe),
where DJ-Sandbox users expect them; publishing copies each job's artifacts
there, the last writer in sequential order winning, as upstream.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sandflow.core import layout
from sandflow.core.atomic import remove_leftover_temps, write_text_atomic
from sandflow.core.jobio import load_context, replace_prefix
from sandflow.core.layout import CONTEXT_FILE
from sandflow.core.private_fs import UnsafePath, copy_replacing, ensure_within, resolves_within
from sandflow.plan.model import Write
from sandflow.run.storage import Staging

JOB_INFOS = "job_infos"


def publish_tree(source: Path, destination: Path, work_dir: Path) -> None:
    """Copy every file under source (a job's slot) into destination (overlaying what is there), each by temp +
    rename. A symlink out of the job's directory is refused (it would publish what the job never wrote); so is a
    symlinked directory on the way to a target, below destination and, for a destination in work_dir, below it.
    In work_dir, the temp files a killed assembly left beside the names published are removed first."""
    inside = os.path.commonpath([os.path.abspath(destination), os.path.abspath(work_dir)]) == os.path.abspath(work_dir)
    targets: dict[Path, Path] = {}
    for path in sorted(source.rglob("*")):
        if not path.is_file():
            continue
        if not resolves_within(path, source.parent):
            raise UnsafePath(f"{path} is a symlink out of its job's directory; it is not published")
        target = destination / path.relative_to(source)
        ensure_within(target, destination, "published file")  # a symlinked directory planted on the way
        if inside:
            ensure_within(target, work_dir, "published file")
        targets[target] = path
    if inside:  # under the run's lock a temp of a published name is a killed assembly's (outside, another run's may be)
        names: dict[Path, set[str]] = {}
        for target in targets:
            names.setdefault(target.parent, set()).add(target.name)
        for directory, published in names.items():
            remove_leftover_temps(directory, suffix="", names=published)
    for target, path in targets.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        copy_replacing(path, target)


def link(target: Path, link_path: Path) -> None:
    """Point link_path at target with a relative symlink, replacing an older one atomically."""
    link_path.parent.mkdir(parents=True, exist_ok=True)
    temp = link_path.with_name(f".{link_path.name}.linking")
    if temp.is_symlink() or temp.exists():
        temp.unlink()
    temp.symlink_to(os.path.relpath(target, link_path.parent))
    os.replace(temp, link_path)


def assemble(spec: dict[str, Any]) -> list[dict[str, Any]]:
    contexts: dict[str, dict[str, Any]] = {}
    work_dir = Path(spec["work_dir"])
    staging = Staging.of(spec)  # with a storage plugin: job directories are staged copies (run/storage.py)
    # Publish every artifact first: a job's values may hold paths into an earlier job's directory (a ranking
    # passes on the pools it ranked), and each must read as the published path, wherever it came from.
    published: dict[str, str] = {}
    own: list[dict[str, str]] = []  # per job: its own slots' roots (a cached job may publish in several iterations)
    for job in spec["jobs"]:
        own.append({})
        context = contexts.get(job["key"])
        if context is None:
            context = contexts[job["key"]] = staging.local(load_context(os.path.join(job["job_dir"], CONTEXT_FILE)))
        for raw in job["writes"] if job["writes"] is not None else context["writes"]:
            write = Write(tuple(raw["slot"].split(".")), raw["value"], raw["kind"], raw["iterized"])
            slot_dir = os.path.join(job["job_dir"], raw["slot"])
            root = write.publish_root(job["iteration"])
            publish_tree(Path(slot_dir), Path(root), work_dir)
            own[-1][os.path.normpath(slot_dir)] = published[os.path.normpath(slot_dir)] = os.path.normpath(root)
    entries: list[tuple[dict[str, Any], str, dict[str, Any]]] = []
    for job, own_roots in zip(spec["jobs"], own):
        values = contexts[job["key"]]["values"]
        for slot_dir, root in [*own_roots.items(), *published.items()]:
            values = replace_prefix(values, slot_dir, root)
        entries.append((job, JOB_INFOS, job_info(job, staging.stored(values))))
        trial = job.get("trial")
        readable = Path(layout.hpo_dir(str(work_dir)), f"trial_{trial}") if trial else work_dir
        if not staging.active:  # no links to staged copies, which the plugin removes after the run
            link_path = (
                Path(layout.pipelines_dir(str(readable)))
                / job["pipeline"]
                / f"iter_{job['iteration']}"
                / job["readable_name"]
            )
            ensure_within(link_path, work_dir, "readable link")
            link(Path(job["job_dir"]), link_path)
    return context_infos_list(entries)


def job_info(job: dict[str, Any], values: list[Any]) -> dict[str, Any]:
    """A job's entry in DJ-Sandbox's job_infos: its meta_name and each output by name (``0..n-1`` unnamed)."""
    names = job["output_names"] or [str(i) for i in range(len(values))]
    return {"meta_name": job["meta_name"], **dict(zip(names, values))}


def context_infos_list(entries: Iterable[tuple[dict[str, Any], str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """DJ-Sandbox's list from (a job of the assembly spec, the pipeline's list it goes in, its entry), in order:
    one entry per iteration (and per trial of an hpo_config search, for which upstream defines none)."""
    iterations: dict[tuple[int, int], dict[str, dict[str, list[dict[str, Any]]]]] = {}  # (trial or 0, iteration)
    for job, listed_in, entry in entries:
        pipelines = iterations.setdefault((job.get("trial") or 0, job["iteration"]), {})
        pipelines.setdefault(job["pipeline"], {JOB_INFOS: []}).setdefault(listed_in, []).append(entry)
    return [
        {
            "iter": iteration,
            **({"trial": trial} if trial else {}),
            "pipeline_infos": [{"pipeline_name": name, **lists} for name, lists in pipelines.items()],
        }
        for (trial, iteration), pipelines in sorted(iterations.items())
    ]


def assemble_context_infos(spec: dict[str, Any], output: str) -> None:
    """Write context_infos.json (upstream's layout: indent 4, keys in output order) by temp + rename."""
    write_text_atomic(output, json.dumps(assemble(spec), indent=4, ensure_ascii=False) + "\n")
