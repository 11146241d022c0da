"""hpo_config's grid and random trials: each trial is the config's jobs with its values as ``local`` patches.

Trials share every job a parameter does not reach (same key), so ``snakemake -n`` lists them all and a
trial costs only the jobs its values change.

Data-Juicer's own HPO files name recipe op arguments (``text_length_filter.min_len``) and a plain
metric (``quality_score``): an op argument is set in every recipe a job of the config names (file or
inline) that has the op, and a plain metric is the one job output of that name.
"""

from __future__ import annotations

import copy
from typing import Any

from sandflow.config.errors import ConfigError, did_you_mean, suggest
from sandflow.config.hpo_spec import HpoConfig, Parameter, load_hpo
from sandflow.config.model import SandboxConfig
from sandflow.plan.model import Job
from sandflow.plan.refs import resolve_ref


def load_search(config: SandboxConfig) -> HpoConfig:
    """hpo_config, when snakemake can plan its trials (grid and random; bayes runs through hpo_search)."""
    hpo = load_hpo(config.hpo_config)
    if config.iter_targets or config.iter_updater or config.max_iter_num != 1:
        raise ConfigError(
            "hpo_config",
            "a search runs each trial once: it cannot be combined with max_iter_num, iter_targets or iter_updater",
        )
    if hpo.method == "bayes" and hpo.explicit_trials is None:
        raise ConfigError(
            "hpo_config.method",
            "a bayes search chooses each batch of trials from the results of the last, so snakemake cannot plan it: "
            f"run python -m sandflow.hpo_search --configfile {config.source}",
        )
    return hpo


def trial_patches(
    hpo: HpoConfig, assignment: dict[str, Any]
) -> tuple[dict[tuple[str, str], dict[str, Any]], RecipeOpPatch]:
    """A trial's values as (pipeline, meta_name) -> ``local`` patches, and the recipe op arguments it sets."""
    patches: dict[tuple[str, str], dict[str, Any]] = {}
    for parameter in hpo.parameters:
        if parameter.op is None:
            patches.setdefault((parameter.pipeline, parameter.meta_name), {})[parameter.local] = assignment[
                parameter.name
            ]
    return patches, RecipeOpPatch([p for p in hpo.parameters if p.op is not None], assignment)


class RecipeOpPatch:
    """Sets a trial's ``<op>.<arg>`` values in each job's recipe (dj_configs as loaded and patched by
    ``local``), as Data-Juicer's merge_config does for its one recipe; remembers what it found."""

    def __init__(self, parameters: list[Parameter], assignment: dict[str, Any]):
        self.parameters = parameters
        self.assignment = assignment
        self.found: set[str] = set()  # parameter names that reached at least one recipe
        self.ops: set[str] = set()  # every op of the recipes seen, for the error's suggestion

    def __call__(self, job: Job) -> None:
        recipe = job.sections.get("dj_configs")
        process = recipe.get("process") if isinstance(recipe, dict) else None
        if not isinstance(process, list):
            return  # no recipe here, or one an earlier job writes (known only at run time)
        names = [next(iter(entry)) if isinstance(entry, dict) and len(entry) == 1 else None for entry in process]
        self.ops.update(name for name in names if isinstance(name, str))
        for parameter in self.parameters:
            op = parameter.op
            positions = [position for position, name in enumerate(names) if name == op.op]
            if op.occurrence is not None:
                in_range = -len(positions) <= op.occurrence < len(positions)
                positions = [positions[op.occurrence]] if in_range else []
            for position in positions:
                arguments = process[position][op.op]
                if arguments is None:  # `- op_name:` with no arguments
                    arguments = process[position][op.op] = {}
                if not isinstance(arguments, dict):
                    raise ConfigError(
                        f"{job.where}.dj_configs.process[{position}].{op.op}",
                        f"hpo_config.parameters.{parameter.name} sets an argument of it, but it is not a mapping",
                    )
                arguments[op.arg] = copy.deepcopy(self.assignment[parameter.name])
            if positions:
                self.found.add(parameter.name)

    def check_every_op_found(self) -> None:
        for parameter in self.parameters:
            if parameter.name in self.found:
                continue
            op = parameter.op
            which = f"{op.op} (occurrence [{op.occurrence}])" if op.occurrence is not None else op.op
            known = did_you_mean(op.op, self.ops) if self.ops else " (the config names no recipe with a process list)"
            raise ConfigError(
                f"hpo_config.parameters.{parameter.name}", f"no recipe of this config has the op {which}{known}"
            )


def resolve_metric(config: SandboxConfig, metric: str, current: list[Job]) -> tuple[Job, int]:
    """The metric job output: a ref (<pipeline>.<meta_name>.<output>, -1.<output>) or a plain output name."""
    where = "hpo_config.metric.name"
    if "." in metric:
        return resolve_ref(config, metric, current[-1], current, where)
    having = [job for job in current if job.cfg.outputs is not None and metric in job.cfg.outputs]
    if len(having) == 1:
        return having[0], having[0].output_index(metric, where)
    if having:
        refs = ", ".join(f"{job.cfg.pipeline}.{job.cfg.display_name}.{metric}" for job in having)
        raise ConfigError(where, f"{metric!r} is the output of {len(having)} jobs: name one of {refs}")
    outputs = {name for job in current for name in job.cfg.outputs or ()}
    raise ConfigError(where, f"no job has an output named {metric!r}{suggest(metric, outputs)}")


def check_search(hpo: HpoConfig, jobs: list[Job]) -> None:
    names = {(job.cfg.pipeline, job.cfg.display_name) for job in jobs}
    for parameter in hpo.parameters:
        if parameter.op is None and (parameter.pipeline, parameter.meta_name) not in names:
            known = [f"{p}.{m}" for p, m in sorted(names)]
            raise ConfigError(
                f"hpo_config.parameters.{parameter.name}",
                f"no job {parameter.pipeline}.{parameter.meta_name}{suggest(f'{parameter.pipeline}.{parameter.meta_name}', known)}",
            )
