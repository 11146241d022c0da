"""hpo_config: Data-Juicer's HPO file (a wandb sweep configuration) turned into trials.

The file (a path in the sandbox config, or the mapping itself) holds what Data-Juicer's
tools/hpo configs hold::

    method: grid            # grid | random | bayes
    metric: {name: <pipeline>.<meta_name>.<output>, goal: minimize}   # or maximize; or name: <output>
                                                # goal defaults to minimize, as in wandb; target: stop there
    parameters:
      <pipeline>.<meta_name>.<dj_configs|extra_configs>.<dotted key>:
        values: [...]                          # or value: x, or a distribution (config/sweep_distributions.py)
      <op>.<arg>:                              # Data-Juicer's form (tools/hpo), or <op>[<i>].<arg>
        values: [...]
    sweep_max_count: 12                         # the trial budget
    seed: 0                                     # sandflow: the seed of random and bayes sampling

A precise parameter name addresses a job's config the way ``iter_updater`` targets do; an
``<op>.<arg>`` name (Data-Juicer's own HPO files) sets that argument of the op in every recipe
the config's jobs name (plan/hpo_trials.py), ``<op>[i].<arg>`` only the op's i-th occurrence in each
recipe (0-based; -1 is the last, which is the one upstream's merge_config sets). A metric name
without a dot is the one job output of that name. ``trials: [{<parameter>: value, ...}, ...]``
(ours) lists trials explicitly; ``python -m sandflow.hpo_search`` writes it for bayes batches.

grid and random trials are planned inside the Snakemake graph (src/sandflow/plan/planner.py): every
trial is the config's jobs with its values patched in, so ``snakemake -n`` lists every trial
and trials that share a prefix share its jobs (same keys). bayes needs results to choose the
next trials, so it runs as an ask/tell loop outside (src/sandflow/hpo_search.py).
"""

from __future__ import annotations

import itertools
import os
import random
import re
from dataclasses import dataclass
from typing import Any

from sandflow.config.errors import ConfigError, describe_value, did_you_mean
from sandflow.config.files import read_yaml_or_json
from sandflow.config.model import SECTIONS
from sandflow.config.sweep_distributions import check_distribution, distribution_of, is_number, value_at

METHODS = ("grid", "random", "bayes")
GOALS = ("minimize", "maximize")
METRIC_KEYS = ("name", "goal", "target")
# Data-Juicer's parameter names (tools/hpo): <op>.<arg>, here also <op>[<i>].<arg> for one occurrence.
OP_PARAMETER = re.compile(r"(?P<op>[A-Za-z_]\w*)(?:\[(?P<occurrence>-?\d+)\])?\.(?P<arg>[A-Za-z_]\w*)")
KEYS = ("method", "metric", "parameters", "sweep_max_count", "run_cap", "seed", "trials", "early_terminate")
# Keys of a wandb sweep, and of the recipe Data-Juicer's HPO files carry along, that a search here
# has no use for: accepted, so those files load as they are.
IGNORED_KEYS = (
    "sweep_name",
    "name",
    "description",
    "project",
    "entity",
    "program",
    "command",
    "project_name",
    "dataset_path",
    "export_path",
    "np",
    "process",
)


@dataclass(frozen=True)
class OpArgument:
    """``<op>.<arg>`` (every occurrence of the op) or ``<op>[<i>].<arg>`` (its i-th in each recipe)."""

    op: str
    occurrence: int | None
    arg: str


@dataclass(frozen=True)
class Parameter:
    name: str  # as written: <pipeline>.<meta_name>.<section>.<dotted key>, or <op>[<i>].<arg>
    pipeline: str | None  # the precise form's job; None for an op argument
    meta_name: str | None
    local: str | None  # <section>.<dotted key>, as a `local` patch of that job
    spec: dict[str, Any]
    op: OpArgument | None = None  # Data-Juicer's form: an argument of a recipe op

    @property
    def distribution(self) -> str:
        return distribution_of(self.spec)


@dataclass(frozen=True)
class HpoConfig:
    method: str
    metric: str
    goal: str
    target: float | None  # metric.target: the search is done once a trial reaches it
    parameters: tuple[Parameter, ...]
    max_count: int | None
    seed: int
    explicit_trials: tuple[dict[str, Any], ...] | None
    notes: tuple[str, ...] = ()  # settings accepted but without effect here, told before a run


def load_hpo(value: Any) -> HpoConfig:
    """Read and check hpo_config (a path or a mapping); a problem is a ConfigError naming its key."""
    if isinstance(value, str):
        if not os.path.isfile(value):
            raise ConfigError("hpo_config", f"no such file: {value}")
        data = read_yaml_or_json(value)
    else:
        data = value
    if not isinstance(data, dict):
        raise ConfigError(
            "hpo_config", f"must be a mapping or a path to a .yaml/.json file, got {describe_value(data)}"
        )
    notes = (early_terminate_note(data["early_terminate"]),) if "early_terminate" in data else ()
    for key in data:
        if key not in KEYS and key not in IGNORED_KEYS:
            raise ConfigError(f"hpo_config.{key}", f"unknown key{did_you_mean(str(key), KEYS)}")
    method = data.get("method", "grid" if "trials" in data else None)
    if method not in METHODS:
        raise ConfigError("hpo_config.method", f"must be one of {', '.join(METHODS)}, got {describe_value(method)}")
    metric = data.get("metric")
    if not isinstance(metric, dict) or not isinstance(metric.get("name"), str):
        raise ConfigError(
            "hpo_config.metric", "must be a mapping with name: <output> or <pipeline>.<meta_name>.<output>, and goal"
        )
    for key in metric:
        if key not in METRIC_KEYS:
            raise ConfigError(f"hpo_config.metric.{key}", f"unknown key{did_you_mean(str(key), METRIC_KEYS)}")
    goal = metric.get("goal", "minimize")  # wandb's default
    if goal not in GOALS:
        raise ConfigError("hpo_config.metric.goal", f"must be minimize or maximize, got {describe_value(goal)}")
    target = metric.get("target")
    if target is not None and not is_number(target):
        raise ConfigError("hpo_config.metric.target", f"must be a number, got {describe_value(target)}")
    parameters = tuple(
        _parameter(name, spec) for name, spec in _mapping(data.get("parameters"), "hpo_config.parameters").items()
    )
    if not parameters:
        raise ConfigError("hpo_config.parameters", "names no parameter to search")
    max_count = data.get("sweep_max_count", data.get("run_cap"))
    if max_count is not None and (not isinstance(max_count, int) or isinstance(max_count, bool) or max_count < 1):
        raise ConfigError(
            "hpo_config.sweep_max_count",
            f"must be a whole number of trials, at least 1, got {describe_value(max_count)}",
        )
    seed = data.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError("hpo_config.seed", f"must be a whole number, got {describe_value(seed)}")
    explicit = data.get("trials")
    if explicit is not None:
        explicit = tuple(_explicit_trial(position, trial, parameters) for position, trial in enumerate(_list(explicit)))
    elif method in ("random", "bayes") and max_count is None:
        raise ConfigError("hpo_config.sweep_max_count", f"a {method} search needs a trial budget")
    elif method == "grid":
        for parameter in parameters:
            if parameter.distribution not in ("categorical", "constant"):
                raise ConfigError(
                    f"hpo_config.parameters.{parameter.name}",
                    "a grid search needs values (or value), not a distribution",
                )
    return HpoConfig(method, metric["name"], goal, target, parameters, max_count, seed, explicit, notes)


def early_terminate_note(value: Any) -> str:
    """wandb's early_terminate (hyperband) as wandb would apply it here: it stops a run whose metric, logged at
    steps min_iter * eta^k, trails the others; a trial reports its metric once, at its end, so wandb would stop
    none. Accepted (Data-Juicer's own hpo files carry it) and said, never silently ignored."""
    if not isinstance(value, dict) or value.get("type") != "hyperband":
        raise ConfigError(
            "hpo_config.early_terminate",
            f"must be {{type: hyperband, ...}} (wandb's only kind), got {describe_value(value)}",
        )
    return (
        "hpo_config.early_terminate (hyperband) stops no trial: a trial reports its metric once, when its jobs "
        "are done, so there is no intermediate value to stop on; metric.target or sweep_max_count bound a search"
    )


def trials(hpo: HpoConfig) -> list[dict[str, Any]]:
    """The trials to plan: parameter name -> value, in trial order."""
    if hpo.explicit_trials is not None:
        return [dict(trial) for trial in hpo.explicit_trials]
    if hpo.method == "grid":
        choices = [p.spec["values"] if "values" in p.spec else [p.spec["value"]] for p in hpo.parameters]
        grid = [dict(zip((p.name for p in hpo.parameters), combination)) for combination in itertools.product(*choices)]
        return grid[: hpo.max_count] if hpo.max_count else grid
    if hpo.method == "random":
        rng = random.Random(hpo.seed)
        return [{p.name: sample(p, rng) for p in hpo.parameters} for _ in range(hpo.max_count or 0)]
    raise ConfigError(
        "hpo_config.method",
        "a bayes search chooses trials from results: run it with `python -m sandflow.hpo_search --configfile <config>`",
    )


def reaches_target(goal: str, target: float | None, value: float | None) -> bool:
    """wandb's metric.target: a trial reaches it with a value at or past it in the goal's direction."""
    if target is None or value is None:
        return False
    return value >= target if goal == "maximize" else value <= target


def sample(parameter: Parameter, rng: random.Random) -> Any:
    """One seeded draw; a continuous distribution takes one rng.random() (wandb's ppf of a uniform draw)."""
    spec, kind = parameter.spec, parameter.distribution
    if kind == "constant":
        return spec["value"]
    if kind == "categorical":
        return rng.choices(spec["values"], weights=spec.get("probabilities"))[0]
    if kind == "int_uniform":
        return rng.randint(spec["min"], spec["max"])
    return value_at(kind, spec, rng.random(), f"hpo_config.parameters.{parameter.name}")


def _parameter(name: Any, spec: Any) -> Parameter:
    where = f"hpo_config.parameters.{name}"
    parts = name.split(".") if isinstance(name, str) else []
    op_form = OP_PARAMETER.fullmatch(name) if isinstance(name, str) else None
    if len(parts) >= 4 and parts[2] in SECTIONS and all(parts):
        parameter = Parameter(name, parts[0], parts[1], ".".join(parts[2:]), _mapping(spec, where))
    elif op_form:
        occurrence = int(op_form["occurrence"]) if op_form["occurrence"] is not None else None
        op = OpArgument(op_form["op"], occurrence, op_form["arg"])
        parameter = Parameter(name, None, None, None, _mapping(spec, where), op)
    else:
        raise ConfigError(
            where,
            "a parameter must be named <op>.<arg> or <op>[<i>].<arg> (a recipe op's argument), "
            "or <pipeline>.<meta_name>.<dj_configs|extra_configs>.<dotted key>",
        )
    spec = parameter.spec
    kind = parameter.distribution
    check_distribution(kind, spec, where)
    if kind == "categorical":
        if not isinstance(spec["values"], list) or not spec["values"]:
            raise ConfigError(f"{where}.values", "must be a non-empty list")
        if spec.get("probabilities") is not None:
            _check_probabilities(spec["probabilities"], len(spec["values"]), f"{where}.probabilities")
    if kind == "int_uniform":
        for bound in ("min", "max"):
            if not isinstance(spec[bound], int):
                raise ConfigError(
                    f"{where}.{bound}", f"an int_uniform distribution needs a whole number, got {spec[bound]!r}"
                )
    return parameter


def _check_probabilities(probabilities: Any, count: int, where: str) -> None:
    """One weight per value, none negative, not all 0 (random.choices fails on each, with a traceback)."""
    if not isinstance(probabilities, list) or len(probabilities) != count:
        got = f"{len(probabilities)} of them" if isinstance(probabilities, list) else describe_value(probabilities)
        raise ConfigError(where, f"must be a list of {count} numbers, one per value, got {got}")
    if not all(is_number(weight) and weight >= 0 for weight in probabilities) or not sum(probabilities) > 0:
        raise ConfigError(where, f"must be numbers of at least 0, not all 0, got {probabilities!r}")


def _explicit_trial(position: int, trial: Any, parameters: tuple[Parameter, ...]) -> dict[str, Any]:
    where = f"hpo_config.trials[{position}]"
    trial = _mapping(trial, where)
    names = [p.name for p in parameters]
    for name in trial:
        if name not in names:
            raise ConfigError(f"{where}.{name}", f"not a parameter of this search{did_you_mean(str(name), names)}")
    missing = [name for name in names if name not in trial]
    if missing:
        raise ConfigError(where, f"gives no value for {', '.join(missing)}")
    return trial


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(where, f"must be a mapping, got {describe_value(value)}")
    return value


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise ConfigError("hpo_config.trials", f"must be a non-empty list of trials, got {describe_value(value)}")
    return value
