"""Where a reference points: '<pipeline>.<meta_name>.<output>' or '-1.<output>' -> (producer job, output index).

Shared by the planner (``input`` refs), the iteration schedule (iter_updater, iter_targets) and the HPO
trials (the metric); it needs only the config and the jobs planned so far.
"""

from __future__ import annotations

from sandflow.config.errors import ConfigError, suggest
from sandflow.config.model import SandboxConfig
from sandflow.plan.model import Job


def resolve_ref(config: SandboxConfig, text: str, job: Job, current: list[Job], where: str) -> tuple[Job, int]:
    """'<pipeline>.<meta_name>.<key>' or '-1.<key>' -> (producer job, output index)."""
    if not isinstance(text, str):
        raise ConfigError(where, f"a reference must be a string, got {type(text).__name__}")
    if text.startswith("-1."):
        if not current:
            raise ConfigError(where, f"{text!r}: there is no job before this one")
        producer = current[-1]
        return producer, producer.output_index(text[3:], where)
    parts = text.split(".", 2)
    if len(parts) != 3 or not all(parts):
        raise ConfigError(where, f"{text!r} is not a reference: use <pipeline>.<meta_name>.<output> or -1.<output>")
    pipeline, meta_name, name = parts
    names = [name for name, _ in config.pipelines]
    if pipeline not in names:
        raise ConfigError(where, f"{text!r}: no pipeline {pipeline!r}{suggest(pipeline, names)}")
    earlier = [j for j in current if j.cfg.pipeline == pipeline and j.cfg.display_name == meta_name]
    if not earlier:
        later = [j for j in config.jobs() if j.pipeline == pipeline and j.display_name == meta_name]
        if later and later[0] is job.cfg:
            raise ConfigError(
                where, f"{text!r} refers to this job's own output; a reference must point to an earlier job"
            )
        if later:
            own = f"{job.cfg.pipeline}.{job.cfg.display_name}."
            cycle = any(isinstance(ref, str) and ref.startswith(own) for ref in later[0].inputs.values())
            raise ConfigError(
                where,
                f"{text!r}: job {pipeline}.{meta_name} runs after this one ({later[0].where})"
                f"{' and reads its output in turn, a cycle' if cycle else ''}; a reference must point to an earlier job",
            )
        metas = {j.display_name for j in config.jobs() if j.pipeline == pipeline}
        raise ConfigError(
            where,
            f"{text!r}: pipeline {pipeline!r} has no job with meta_name {meta_name!r}{suggest(meta_name, metas)}",
        )
    if len(earlier) == 1:
        return earlier[0], earlier[0].output_index(name, where)
    # Several jobs share the meta_name (the k-sigma habit): take the one that has this output.
    having = []
    for candidate in earlier:
        try:
            having.append((candidate, candidate.output_index(name, where)))
        except ConfigError:
            continue
    if len(having) == 1:
        return having[0]
    if not having:
        raise ConfigError(
            where, f"{text!r}: none of the {len(earlier)} jobs named {pipeline}.{meta_name} has an output {name!r}"
        )
    places = ", ".join(c.where for c, _ in having)
    raise ConfigError(
        where,
        f"{text!r} is ambiguous: {len(having)} jobs named {pipeline}.{meta_name} have an output {name!r} ({places}); give them distinct meta_names",
    )
