"""Load, validate and normalise a DJ-Sandbox config.

Accepts what DJ-Sandbox accepts: the single-pipeline form (job lists at top
level, pipeline ``anonymous``), the multi-pipeline form (``pipelines`` as a
mapping or as a list of one-key mappings) and the older single-file form of
the 000 guide (a Data-Juicer recipe plus sandbox keys), which is converted to
its default pipeline. Shape errors come from a JSON Schema; every error names
its place in the config (``pipelines.p1.execution_job_configs[2].input``).

Stricter than DJ-Sandbox where it would lose work silently: unknown keys in
jobs and pipelines are errors (upstream ignores them, so a misspelt ``inptu``
drops a reference), a YAML mapping may not repeat a key (YAML loaders keep the
last one), a config without jobs is an error, and a recipe's ``np``,
``dataset_path``, ``export_path`` and ``process`` are type-checked before any
job runs (Data-Juicer would fail only then), and the recipe settings sandflow
does not run are refused (config/dj_settings.py). Unknown top-level keys are
errors upstream too (jsonargparse). See docs/config-errors.md.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sandflow.config.dj_settings import refused_setting
from sandflow.config.errors import ConfigError, child_path, config_path, describe_value
from sandflow.config.files import load_job_file, read_config_file
from sandflow.config.iterate_block import expand_iterate
from sandflow.config.job_refs import expand_job_refs
from sandflow.config.legacy import convert_legacy, is_legacy
from sandflow.config.model import (
    ANONYMOUS_PIPELINE,
    DEFAULT_WORK_DIR,
    STAGES,
    JobConfig,
    SandboxConfig,
)
from sandflow.config.schema import schema_error
from sandflow.config.variables import Substitution, substitute_config


def load_config_file(path: str | Path) -> SandboxConfig:
    return load_config(read_config_file(path), source=str(path))


def _with_job_files(data: dict[str, Any], job_files: list[str], variables: Substitution) -> dict[str, Any]:
    """A copy of data where each job given as a file path is replaced by the file's job (a new dict; data is untouched),
    its variables substituted; the paths read are appended to job_files."""

    def job_file(path: str, where: str) -> Any:
        return variables.tree(load_job_file(path, where), where, source=path)

    def jobs_of(body: Any, base: tuple[str | int, ...]) -> Any:
        if not isinstance(body, dict):
            return body
        body = dict(body)
        for stage in STAGES:
            if isinstance(body.get(stage), list):
                job_files.extend(job for job in body[stage] if isinstance(job, str))
                body[stage] = [
                    job_file(job, config_path(*base, stage, index)) if isinstance(job, str) else job
                    for index, job in enumerate(body[stage])
                ]
        return body

    data = jobs_of(data, ())
    pipelines = data.get("pipelines")
    if isinstance(pipelines, dict):
        data["pipelines"] = {name: jobs_of(body, ("pipelines", name)) for name, body in pipelines.items()}
    elif isinstance(pipelines, list):
        data["pipelines"] = [
            {name: jobs_of(body, ("pipelines", position, name)) for name, body in item.items()}
            if isinstance(item, dict) and len(item) == 1
            else item
            for position, item in enumerate(pipelines)
        ]
    return data


def check_string_keys(tree: Any, where: str) -> None:
    """Every mapping key in a section is a string: targets are dotted key paths and the job spec is JSON."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            if not isinstance(key, str):
                raise ConfigError(
                    where,
                    f"keys must be strings, got {describe_value(key)}: write the key in quotes "
                    "(YAML reads unquoted numbers, yes/no, on/off and null as other types)",
                )
            check_string_keys(value, child_path(where, key))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            check_string_keys(value, child_path(where, index))


def check_recipe(recipe: Any, where: str, source: str | None = None) -> None:
    """Type-check the Data-Juicer recipe keys that would otherwise fail only when the job runs, and refuse the
    settings sandflow does not run (config/dj_settings.py).

    ``where`` names the section (``...dj_configs``); ``source`` the recipe file it came from, if any.
    Other recipe keys are Data-Juicer's to check.
    """
    if not isinstance(recipe, dict):
        return
    origin = f" (in {source})" if source else ""

    def fail(key: str, message: str) -> None:
        raise ConfigError(f"{where}.{key}", message + origin)

    np = recipe.get("np")
    if np is not None and (isinstance(np, bool) or not isinstance(np, int) or np < 1):
        fail("np", f"must be a positive whole number of processes, got {describe_value(np)}")
    for key in ("dataset_path", "export_path"):
        if recipe.get(key) is not None and not isinstance(recipe[key], str):
            fail(key, f"must be a path, got {describe_value(recipe[key])}")
    refused = refused_setting(recipe)
    if refused:
        fail(*refused)
    process = recipe.get("process")
    if process is None:
        return
    if not isinstance(process, list):
        fail("process", f"must be a list of ops, each `- <op_name>: {{<arguments>}}`, got {describe_value(process)}")
    for index, entry in enumerate(process):
        if not isinstance(entry, dict) or len(entry) != 1:
            fail(
                f"process[{index}]",
                f"must be one op, `<op_name>: {{<arguments>}}`, got {describe_value(entry)}"
                + (f" with {len(entry)} keys" if isinstance(entry, dict) else ""),
            )
        ((name, arguments),) = entry.items()
        if arguments is not None and not isinstance(arguments, dict):
            fail(
                child_path(f"process[{index}]", name),
                f"an op's arguments must be a mapping, got {describe_value(arguments)}",
            )


# Pipeline names and meta_names become file names, two of them in one: figures/<pipeline>.<meta_name>.<figure>.png.
# Most file systems take 255 bytes per name (NAME_MAX); 100 bytes each leaves room for the rest.
MAX_NAME_BYTES = 100


def check_name_length(name: str, where: str, kind: str) -> None:
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > MAX_NAME_BYTES:
        raise ConfigError(
            where,
            f"the {kind} {name[:20]!r}... is {size} bytes long, more than {MAX_NAME_BYTES}: names become file names "
            f"(figures/<pipeline>.<meta_name>.<figure>.png), and a file name is at most 255 bytes",
        )


def check_work_dir(work_dir: str) -> None:
    """work_dir, or the nearest of its parents that exists, is a directory: making it would fail mid-run."""
    existing = os.path.abspath(work_dir)
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        named = "" if existing == os.path.abspath(work_dir) else f": {existing}"
        raise ConfigError("work_dir", f"{work_dir!r}{named} is a file, not a directory")


def settings_notes(data: dict[str, Any]) -> list[str]:
    """DJ-Sandbox settings that sandflow accepts (its configs carry them) but that change nothing here, said
    before a run instead of silently ignored."""
    notes = []
    if data.get("resume") is False:
        notes.append(
            "resume: false changes nothing: a run always reuses the jobs that finished with the same inputs "
            "(upstream's resume: true); to rerun every job, add --forceall"
        )
    if data.get("debug"):
        notes.append(
            "debug: true changes nothing: every job logs in full to <work_dir>/logs/<hook>/<key>.log; "
            "snakemake --verbose says more of what Snakemake does"
        )
    return notes


def _wandb_settings(value: bool | dict[str, Any] | None) -> dict[str, Any] | None:
    if not value:
        return None
    return {} if value is True else dict(value)


def load_config(data: Any, source: str = "config") -> SandboxConfig:
    """Validate a parsed config and normalise it to pipelines of JobConfigs."""
    if not isinstance(data, dict):
        raise ConfigError(
            "", f"a sandbox config must be a mapping of settings and job lists, not {describe_value(data)}"
        )
    data, variables = substitute_config(data)
    has_pipelines = data.get("pipelines") not in (None, [], {})
    top_level_jobs = [stage for stage in STAGES if data.get(stage)]
    if has_pipelines and top_level_jobs:
        raise ConfigError(
            top_level_jobs[0], "both pipeline forms at once: use either `pipelines` or top-level job lists, not both"
        )
    if is_legacy(data):
        data = convert_legacy(data)
    job_files: list[str] = []
    data = _with_job_files(data, job_files, Substitution(variables))
    error = schema_error(data)
    if error:
        raise error
    data, written_as = expand_iterate(data)

    iter_targets = data.get("iter_targets") or []
    if isinstance(iter_targets, str):
        iter_targets = [iter_targets]
    if data.get("max_iter_num", 1) == 0 and not iter_targets:
        raise ConfigError("max_iter_num", "0 means 'until iter_targets are met', but iter_targets is empty")

    config = SandboxConfig(
        source=source,
        project_name=data.get("project_name") or "sandbox",
        experiment_name=data.get("experiment_name") or "sandbox-run",
        work_dir=data.get("work_dir") or DEFAULT_WORK_DIR,
        max_iter_num=data.get("max_iter_num", 1),
        max_iter_cap=data.get("max_iter_cap", 20),
        iter_targets=list(iter_targets),
        iter_targets_mode=data.get("iter_targets_mode", "all"),
        iter_updater=dict(data.get("iter_updater") or {}),
        hpo_config=data.get("hpo_config"),
        sequential=bool(data.get("sequential", False)),
        wandb=_wandb_settings(data.get("wandb")),
        job_files=job_files,
        variables=variables,
        written_as=written_as,
        notes=settings_notes(data),
    )
    check_work_dir(config.work_dir)
    if has_pipelines:
        raw = data["pipelines"]
        items = list(raw.items()) if isinstance(raw, dict) else [next(iter(p.items())) for p in raw]
        seen: set[str] = set()
        for position, (name, body) in enumerate(items):
            base = ("pipelines", name) if isinstance(raw, dict) else ("pipelines", position, name)
            if name in seen:
                raise ConfigError(config_path(*base), f"duplicate pipeline name {name!r}")
            check_name_length(name, config_path(*base[:-1]), "pipeline name")
            seen.add(name)
            config.pipelines.append((name, _jobs_of(name, body or {}, base)))
    else:
        config.pipelines.append((ANONYMOUS_PIPELINE, _jobs_of(ANONYMOUS_PIPELINE, data, ())))
    if not config.jobs():
        raise ConfigError(
            "pipelines" if has_pipelines else "",
            "no jobs to run: give job lists (probe_job_configs, "
            "refine_recipe_job_configs, execution_job_configs, evaluation_job_configs) at top level or in pipelines",
        )
    expand_job_refs(config)
    return config


def _jobs_of(pipeline: str, body: dict[str, Any], base: tuple[str | int, ...]) -> list[JobConfig]:
    jobs = []
    for stage in STAGES:
        for index, raw in enumerate(body.get(stage) or []):
            if raw.get("meta_name") is not None:
                check_name_length(raw["meta_name"], config_path(*base, stage, index, "meta_name"), "meta_name")
            output = raw.get("output")
            outputs = None if output is None else tuple([output] if isinstance(output, str) else output)
            jobs.append(
                JobConfig(
                    where=config_path(*base, stage, index),
                    pipeline=pipeline,
                    stage=stage,
                    index=index,
                    hook=raw["hook"],
                    meta_name=raw.get("meta_name"),
                    dj_configs=raw.get("dj_configs"),
                    extra_configs=raw.get("extra_configs"),
                    inputs=dict(raw.get("input") or {}),
                    outputs=outputs,
                    local=dict(raw.get("local") or {}),
                    resources=dict(raw.get("resources") or {}),
                )
            )
    return jobs
