"""Run one planned job inside its rule: resolve run-time values, call the hook, commit the job directory.

The job holds its key's lock for its whole life and writes everything under a partial directory of its own,
renamed to the job directory at the end, ``context.json`` included, so a job killed half-way leaves nothing
that looks finished, and a job still running (an orphan of a killed run) is waited for, never overwritten
(src/sandflow/run/commit.py).

A run killed after that rename but before Snakemake recorded the job as done
leaves Snakemake's incomplete marker: the next run deletes ``context.json`` and
runs the job again. The job directory keeps a second name for the record
(``COMMIT_FILE``), so that run restores the record, after checking the manifest,
instead of recomputing finished work (unless the user forced reruns).
"""

from __future__ import annotations

import copy
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from sandflow.config.files import read_yaml_or_json
from sandflow.config.tree import set_path
from sandflow.core.jobio import (
    IN_THE_LOG,
    JobFailed,
    error_line,
    job_logging,
    load_context,
    output_to_log,
    replace_prefix,
    write_json,
)
from sandflow.core.keys import library_version
from sandflow.core.layout import COMMIT_FILE, CONTEXT_FILE, MANIFEST_FILE
from sandflow.core.paths import guess_kind
from sandflow.core.private_fs import UnsafePath
from sandflow.hooks.base import Hook, JobRun
from sandflow.hooks.registry import component_of, hook_named, missing_requirements
from sandflow.run import job_server
from sandflow.run.commit import (
    Partial,
    accept_commit,
    commit,
    key_lock,
    link_or_copy,
    new_partial,
    remove_tree,
    sweep_partials,
)
from sandflow.run.integrity import manifest_of
from sandflow.run.job_child import JOB
from sandflow.run.specs import JobSpec, PathReadSpec, RefSpec, RunJobSpec
from sandflow.run.storage import Staging, stage_spec


def upstream_value(ref: RefSpec) -> Any:
    values = load_context(ref["context"])["values"]
    if ref["index"] >= len(values):
        raise JobFailed(f"{ref['context']} has {len(values)} output(s); output {ref['index']} was asked for")
    return values[ref["index"]]


def artifact_path(read: PathReadSpec) -> str:
    """The newest earlier job's artifact that exists for a path it publishes."""
    for candidate in read["candidates"]:
        path = os.path.normpath(os.path.join(candidate["job_dir"], candidate["slot"], candidate["rel"]))
        if os.path.exists(path):
            return path
    writers = ", ".join(c["job_dir"] for c in read["candidates"])
    raise JobFailed(f"{read['text']} should have been written by an earlier job ({writers}), but none of them wrote it")


def resolve_sections(spec: JobSpec) -> dict[str, Any]:
    """The job's dj_configs / extra_configs with every run-time value filled in."""
    sections = copy.deepcopy(spec["sections"])
    staged = Staging.of(spec).local  # upstream records name job directories as planned
    for section, source in spec["section_sources"].items():
        value = staged(upstream_value(source)) if "context" in source else artifact_path(source)  # RefSpec: context
        sections[section] = read_yaml_or_json(value) if isinstance(value, str) else value
    for target, value in spec["deferred_local"].items():
        set_path(sections, tuple(target.split(".")), copy.deepcopy(value), spec["where"])
    for ref in spec["refs"]:
        if sections.get(ref["target"][0]) is None:
            sections[ref["target"][0]] = {}
        set_path(sections, tuple(ref["target"]), staged(upstream_value(ref)), spec["where"])
    for read in spec["path_reads"]:
        set_path(sections, tuple(read["target"]), artifact_path(read), spec["where"])
    return sections


def redirect_writes(sections: dict[str, Any], writes: list[str], job_dir: Path) -> list[dict[str, Any]]:
    """Point every path the hook writes into <job_dir>/<slot>/ and record what it stood for."""
    recorded = []
    for dotted in writes:
        target = tuple(dotted.split("."))
        node: Any = sections
        for part in target:
            node = node.get(part) if isinstance(node, dict) else None
        values = node if isinstance(node, list) else [node]
        for position, value in enumerate(values):
            if not isinstance(value, str):
                continue
            sub = target + (position,) if isinstance(node, list) else target
            slot = ".".join(map(str, sub))
            kind = guess_kind(value)
            slot_dir = job_dir / slot
            slot_dir.mkdir(exist_ok=True)  # not parents: a partial removed meanwhile is not made again here
            redirected = slot_dir / os.path.basename(value.rstrip("/")) if kind == "file" else slot_dir
            set_path(sections, sub, str(redirected), dotted)
            recorded.append(
                {
                    "target": list(sub),
                    "slot": slot,
                    "value": value,
                    "kind": kind,
                    "iterized": target[-1] == "export_path",
                }
            )
    return recorded


def name_outputs(result: Any) -> list[Any]:
    """DJ-Sandbox's rule: a tuple is several outputs; a one-element list is unpacked; None is none."""
    if result is None:
        return []
    if isinstance(result, tuple):
        return list(result)
    if isinstance(result, list) and len(result) == 1:
        return [result[0]]
    return [result]


def relocate(value: Any, partial: Path, final_dir: Path) -> Any:
    """Paths the hook saw inside the partial directory (relative or absolute) -> the job directory."""
    value = replace_prefix(value, os.path.abspath(partial), str(final_dir))
    return replace_prefix(value, str(partial), str(final_dir))


def run_job(spec: RunJobSpec, log_path: str, threads: int = 1) -> None:
    final_dir = Path(spec["job_dir"])
    with key_lock(final_dir) as waited_for:
        # Under the key's lock every partial's owner is gone: a run killed after its rename left the directory
        # it replaced (<partial>-replaced), whether this job then recomputes or accepts the commit.
        sweep_partials(final_dir)
        if not spec.get("recompute") and accept_commit(final_dir):
            with job_logging(log_path, mode="a") as log:  # after the log of the run that did the work
                if waited_for:
                    log.info(
                        "job %s: committed by %s while this run waited; nothing recomputed", spec["key"], waited_for
                    )
                else:
                    log.info(
                        "job %s: finished before the last run stopped; its record is restored, nothing recomputed",
                        spec["key"],
                    )
            return
        with new_partial(final_dir) as partial:
            compute(spec, partial, log_path, threads, waited_for)


def compute(spec: RunJobSpec, partial: Partial, log_path: str, threads: int, waited_for: str | None) -> None:
    final_dir = Path(spec["job_dir"])
    started = time.time()
    hook = hook_named(spec["hook"])
    if hook is None:
        raise JobFailed(f"unknown hook {spec['hook']!r}")
    with job_logging(log_path) as log:
        if waited_for:
            log.info("job %s: waited for %s, which held its key", spec["key"], waited_for)
        log.info(
            "job %s: %s %s.%s (iteration %s)",
            spec["key"],
            spec["hook"],
            spec["pipeline"],
            spec["meta_name"],
            spec["iteration"],
        )
        try:
            with output_to_log(log_path):  # progress bars and prints of the libraries: the log, not the terminal
                record = run_hook(spec, hook, partial.path, log, threads, started)
            write_json(partial.path / MANIFEST_FILE, manifest_of(partial.path))
            write_json(partial.path / CONTEXT_FILE, record)
            link_or_copy(partial.path / CONTEXT_FILE, partial.path / COMMIT_FILE)
        except BaseException as exc:
            log.exception("job %s failed", spec["key"])
            if partial.is_intact():
                remove_tree(partial.path)
            if isinstance(exc, Exception) and not isinstance(exc, (JobFailed, UnsafePath)):
                # A library's own error: its traceback is for the log, the terminal gets one line.
                raise JobFailed(f"{error_line(exc)} {IN_THE_LOG}") from exc
            raise
        try:
            commit(partial, final_dir)
        except BaseException:
            log.exception("job %s failed", spec["key"])
            raise
        log.info("job %s done in %.1f s", spec["key"], time.time() - started)


def run_hook(
    spec: RunJobSpec, hook: Hook, partial: Path, log: logging.Logger, threads: int, started: float
) -> dict[str, Any]:
    """Call the hook on the resolved sections, its writes redirected into the partial directory; the record."""
    final_dir = Path(spec["job_dir"])
    sections = resolve_sections(spec)
    writes = redirect_writes(sections, spec["writes"], partial)
    kind, component = component_of(hook, sections.get("extra_configs"))
    # Sections that arrived at run time (a refined recipe) are checked now, before any work.
    missing = missing_requirements(hook, sections.get("dj_configs"), sections.get("extra_configs"))
    if missing:
        raise JobFailed(f"cannot run here: {missing[0]}")
    run = component.run if component is not None else hook.run
    if run is None:
        raise JobFailed(f"{hook.name}{' type ' + repr(kind) if kind else ''} cannot run in this version of sandflow")
    job = JobRun(
        hook=hook.name,
        key=spec["key"],
        pipeline=spec["pipeline"],
        meta_name=spec["meta_name"],
        iteration=spec["iteration"],
        job_dir=partial,
        dj_configs=sections.get("dj_configs"),
        extra_configs=sections.get("extra_configs"),
        linked_jobs={role: Path(path) for role, path in spec["linked"].items()},
        log=log,
        threads=threads,
        output_names=spec.get("output_names"),
    )
    values = name_outputs(run(job))
    expected = spec["n_outputs"]
    if expected is not None and len(values) != expected:
        raise JobFailed(
            f"{hook.name} returned {len(values)} output(s) but {expected} are named in {spec['where']}.output"
        )
    record = {
        "key": spec["key"],
        "hook": hook.name,
        "component": kind,
        "values": relocate(values, partial, final_dir),
        "writes": writes,
        "config": relocate(sections, partial, final_dir),
        "libraries": {name: library_version(name) for name in hook.libraries},
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "duration_s": round(time.time() - started, 3),
    }
    return Staging.of(spec).stored(record)  # a store's staged paths back to the planned ones


# Jobs never reach a model hub or tracking server unless the user says so in the environment.
OFFLINE_DEFAULTS = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "WANDB_MODE": "offline",
}


def execute(spec: RunJobSpec, log_path: str, threads: int) -> int:
    """Run one job in this process; its exit code (a job failure is one line on stderr, not a traceback)."""
    for name, value in OFFLINE_DEFAULTS.items():
        os.environ.setdefault(name, value)
    try:
        run_job(spec, log_path, threads)
    except (JobFailed, UnsafePath) as exc:
        print(f"sandflow: job failed: {exc}", file=sys.stderr)
        return 1
    return 0


def server_request(snakemake: Any) -> tuple[RunJobSpec, dict[str, Any] | None]:
    """The job's spec (staged, with a storage plugin) from a script job's ``snakemake`` object (or anything with its
    params, output, log and threads), and its request to the job server (None: its hook imports nothing worth
    warming, a user hook: it runs in its own process)."""
    spec = snakemake.params.spec
    spec = stage_spec(spec, declared=spec["job_dir"], local=snakemake.output[0])
    hook = hook_named(spec["hook"])
    preload = job_server.warm_imports(hook.libraries) if hook is not None else []
    if not preload:
        return spec, None
    return spec, script_request(JOB, spec, snakemake, preload)


def script_request(entry: str, spec: dict[str, Any], snakemake: Any, preload: list[str]) -> dict[str, Any]:
    """A request to the job server (run/job_child.py: ENTRIES) for a script job's work, from its ``snakemake``
    object: what the child's ScriptArguments give the script back (named files; no sandflow script reads a named
    list of files)."""
    names = {name: start for name, (start, end) in snakemake.output._names.items() if end is None}
    return {
        "entry": entry,
        "spec": spec,
        "output": list(snakemake.output),
        "output_names": names,
        "log": list(snakemake.log),
        "threads": snakemake.threads,
        "preload": preload,
    }


def main_from_snakemake(snakemake: Any) -> None:
    spec, request = server_request(snakemake)
    address = job_server.published_address()
    code = job_server.submit(address, request) if address and request else None
    if code is None:
        code = execute(spec, snakemake.log[0], snakemake.threads)
    if code:
        sys.exit(code)
