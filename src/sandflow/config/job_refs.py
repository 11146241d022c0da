"""``jobs.<meta_name>.<key>`` refs: the pipeline left out where the meta_name is in one pipeline only.

Converted to ``<pipeline>.<meta_name>.<key>`` when a config is loaded (input refs, iteration targets,
iter_updater sources and targets), so the plan is the one of the ref written out. When a pipeline is
itself named ``jobs``, ``jobs.`` refs keep their upstream meaning (that pipeline).
"""

from __future__ import annotations

import dataclasses
import re

from sandflow.config.errors import ConfigError, config_path, suggest
from sandflow.config.model import SandboxConfig

PREFIX = "jobs."
TARGET_REF_RE = re.compile(r"^(\s*)(\S+)(.*)$", re.S)


class JobRefs:
    def __init__(self, config: SandboxConfig):
        self.config = config
        self.holders: dict[str, dict[str, str]] = {}  # meta_name -> {pipeline: place of its first job}
        for job in config.jobs():
            self.holders.setdefault(job.display_name, {}).setdefault(job.pipeline, job.where)

    def convert(self, text: str, where: str) -> str:
        """``jobs.<meta_name>.<rest>`` -> ``<pipeline>.<meta_name>.<rest>``; anything else as it is."""
        if not isinstance(text, str) or not text.startswith(PREFIX):
            return text
        place = self.config.written_as.get(where, where)
        parts = text.split(".", 2)
        if len(parts) != 3 or not all(parts):
            raise ConfigError(place, f"{text!r} is not a reference: use jobs.<meta_name>.<output>")
        meta_name = parts[1]
        pipelines = self.holders.get(meta_name)
        if not pipelines:
            raise ConfigError(place, f"{text!r}: no job has meta_name {meta_name!r}{suggest(meta_name, self.holders)}")
        if len(pipelines) > 1:
            candidates = ", ".join(f"{pipeline}.{meta_name} ({job})" for pipeline, job in pipelines.items())
            raise ConfigError(
                place,
                f"{text!r} is ambiguous: meta_name {meta_name!r} is in {len(pipelines)} pipelines: {candidates}; "
                f"write <pipeline>.{meta_name}.{parts[2]}",
            )
        (pipeline,) = pipelines
        return f"{pipeline}.{meta_name}.{parts[2]}"


def expand_job_refs(config: SandboxConfig) -> None:
    """Rewrite every ``jobs.`` ref of a loaded config in place."""
    if any(name == "jobs" for name, _ in config.pipelines):
        return
    refs = JobRefs(config)
    for position, (name, jobs) in enumerate(config.pipelines):
        converted = []
        for job in jobs:
            inputs = {target: refs.convert(ref, f"{job.where}.input[{target!r}]") for target, ref in job.inputs.items()}
            converted.append(dataclasses.replace(job, inputs=inputs) if inputs != job.inputs else job)
        config.pipelines[position] = (name, converted)
    for position, text in enumerate(config.iter_targets):
        match = TARGET_REF_RE.match(text) if isinstance(text, str) else None
        if match:
            ref = refs.convert(match.group(2), config_path("iter_targets", position))
            config.iter_targets[position] = match.group(1) + ref + match.group(3)
    updater = {}
    for source, target in config.iter_updater.items():
        place = config_path("iter_updater", source)
        converted = refs.convert(source, place)
        updater[converted] = refs.convert(target, place)
        if place in config.written_as:  # later errors name the converted source's place
            config.written_as[config_path("iter_updater", converted)] = config.written_as[place]
    config.iter_updater = updater
