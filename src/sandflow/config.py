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
job runs (Data-Juicer would fail only then). Unknown top-level keys are
errors upstream too (jsonargparse). See docs/config-errors.md.
"""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import yaml

STAGES = ("probe_job_configs", "refine_recipe_job_configs", "execution_job_configs", "evaluation_job_configs")
SECTIONS = ("dj_configs", "extra_configs")
ANONYMOUS_PIPELINE = "anonymous"
ANONYMOUS_META_NAME = "anonymous_meta_name"
DEFAULT_WORK_DIR = "./outputs/hello_world"
RECIPE_SUFFIXES = (".yaml", ".yml", ".json")

# Keys of the 000 guide's single-file form that are sandbox settings, not recipe keys.
LEGACY_SANDBOX_KEYS = (
    "path_k_sigma_recipe",
    "path_model_feedback_recipe",
    "model_infer_config",
    "model_train_config",
    "data_eval_config",
    "model_eval_config",
)
GLOBAL_KEYS = ("project_name", "experiment_name", "work_dir", "resume", "debug", "hpo_config")


class ConfigError(Exception):
    """A bad config: one line naming where it is. The CLI and the Snakefile exit 2 on it."""

    def __init__(self, where: str, message: str):
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where
        self.message = message


def config_path(*parts: str | int) -> str:
    """Render a location in the config: ('pipelines', 'p1', 'jobs', 2, 'input', 'a.b') -> pipelines.p1.jobs[2].input['a.b']."""
    out = ""
    for part in parts:
        if not isinstance(part, (str, int)) or isinstance(part, bool):
            out += f"[{part!r}]"
        elif isinstance(part, int):
            out += f"[{part}]"
        elif part.replace("_", "").replace("-", "").isalnum():
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def suggest(name: str, choices: Iterable[str], most: int = 8) -> str:
    """' (did you mean ...?)' when one is close, else the choices themselves when there are few."""
    choices = sorted(set(choices))
    hint = did_you_mean(name, choices)
    if hint or not choices or len(choices) > most:
        return hint
    return f" (known: {', '.join(choices)})"


def describe_value(value: Any) -> str:
    """How an error message names a value the user gave: its kind, and the value when it is short."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value!r}" if len(value) <= 60 else "a string"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


@dataclass(frozen=True)
class JobConfig:
    """One job as written in the config, before planning."""

    where: str
    pipeline: str
    stage: str
    index: int
    hook: str
    meta_name: str | None
    dj_configs: Any
    extra_configs: Any
    inputs: dict[str, str]
    outputs: tuple[str, ...] | None
    local: dict[str, Any]
    # What the job asks of the scheduler (threads, mem_mb, gpu, ...); not part of its key.
    resources: dict[str, Any] = field(default_factory=dict)

    @property
    def display_name(self) -> str:
        return self.meta_name or ANONYMOUS_META_NAME


@dataclass
class SandboxConfig:
    source: str
    project_name: str
    experiment_name: str
    work_dir: str
    max_iter_num: int
    max_iter_cap: int
    iter_targets: list[str]
    iter_targets_mode: str
    iter_updater: dict[str, str]
    hpo_config: Any
    sequential: bool
    wandb: dict[str, Any] | None  # wandb tracking settings; None: not tracked
    pipelines: list[tuple[str, list[JobConfig]]] = field(default_factory=list)
    job_files: list[str] = field(default_factory=list)  # jobs given as file paths (DVC declares them as deps)

    def jobs(self) -> list[JobConfig]:
        """All jobs in DJ-Sandbox's sequential order."""
        return [job for _, jobs in self.pipelines for job in jobs]


@lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    text = resources.files("sandflow").joinpath("schemas/sandbox.schema.json").read_text()
    return json.loads(text)


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """PyYAML's safe loader, except that a mapping may not repeat a key (PyYAML keeps the last one silently).

    The libyaml parser, where PyYAML has it, reads a large config ten times faster than the pure-Python one.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base` may be overridden by explicit keys: that is what merging is for
            key = self.construct_object(key_node, deep=deep)
            try:
                if key in first_line:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (first at line {first_line[key]})", key_node.start_mark)
                first_line[key] = key_node.start_mark.line + 1
            except TypeError:
                continue  # an unhashable key: the base class reports it
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """'line 7, column 22: <problem> (while parsing ... at line 6)', without PyYAML's multi-line snippets."""
    mark = getattr(exc, "problem_mark", None)
    if mark is None:
        return " ".join(str(exc).split())
    text = f"line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
    context_mark = getattr(exc, "context_mark", None)
    if exc.context and context_mark is not None:
        text += f" ({exc.context} at line {context_mark.line + 1})"
    return text


def read_yaml_or_json(path: str | Path) -> Any:
    """Parse a .json file as JSON, anything else as YAML; a problem is a ConfigError whose ``where`` is the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), "cannot read: not a UTF-8 text file") from None
    if path.suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(str(path), f"not valid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), f"not valid YAML: {_yaml_problem(exc)}") from None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The top-level mapping of a sandbox config file; problems with the file itself have where=''."""
    try:
        data = read_yaml_or_json(path)
    except ConfigError as exc:
        raise ConfigError("", exc.message) from None
    if data is None:
        raise ConfigError("", "the file is empty: a sandbox config is a mapping of settings and job lists")
    if not isinstance(data, dict):
        raise ConfigError("", f"a sandbox config must be a mapping of settings and job lists, not {describe_value(data)}")
    return data


def load_config_file(path: str | Path) -> SandboxConfig:
    return load_config(read_config_file(path), source=str(path))


def load_job_file(value: str, where: str) -> Any:
    """A job given as the path of a .yaml/.yml/.json file (DJ-Sandbox's prepare_side_configs accepts these)."""
    if not value.endswith(RECIPE_SUFFIXES):
        raise ConfigError(where, f"a job given as a string is the path of a .yaml, .yml or .json job file, "
                                 f"not {value!r} (a job is a mapping with at least `hook`)")
    if not os.path.isfile(value):
        raise ConfigError(where, f"job file not found: {value} (relative paths are resolved against {os.getcwd()})")
    try:
        job = read_yaml_or_json(value)
    except ConfigError as exc:
        raise ConfigError(where, f"{value}: {exc.message}") from None
    if not isinstance(job, dict):
        raise ConfigError(where, f"{value} must hold a job (a mapping with at least `hook`), not {describe_value(job)}")
    return job


def _with_job_files(data: dict[str, Any], job_files: list[str]) -> dict[str, Any]:
    """A copy of data where each job given as a file path is replaced by the file's job (a new dict; data is untouched);
    the paths read are appended to job_files."""

    def jobs_of(body: Any, base: tuple[str | int, ...]) -> Any:
        if not isinstance(body, dict):
            return body
        body = dict(body)
        for stage in STAGES:
            if isinstance(body.get(stage), list):
                job_files.extend(job for job in body[stage] if isinstance(job, str))
                body[stage] = [load_job_file(job, config_path(*base, stage, index)) if isinstance(job, str) else job
                               for index, job in enumerate(body[stage])]
        return body

    data = jobs_of(data, ())
    pipelines = data.get("pipelines")
    if isinstance(pipelines, dict):
        data["pipelines"] = {name: jobs_of(body, ("pipelines", name)) for name, body in pipelines.items()}
    elif isinstance(pipelines, list):
        data["pipelines"] = [
            {name: jobs_of(body, ("pipelines", position, name)) for name, body in item.items()}
            if isinstance(item, dict) and len(item) == 1 else item
            for position, item in enumerate(pipelines)
        ]
    return data


def _child(where: str, part: str | int) -> str:
    rendered = config_path(part)
    return where + (rendered if rendered.startswith("[") else "." + rendered)


def check_string_keys(tree: Any, where: str) -> None:
    """Every mapping key in a section is a string: targets are dotted key paths and the job spec is JSON."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            if not isinstance(key, str):
                raise ConfigError(where, f"keys must be strings, got {describe_value(key)}: write the key in quotes "
                                         "(YAML reads unquoted numbers, yes/no, on/off and null as other types)")
            check_string_keys(value, _child(where, key))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            check_string_keys(value, _child(where, index))


def check_recipe(recipe: Any, where: str, source: str | None = None) -> None:
    """Type-check the Data-Juicer recipe keys that would otherwise fail only when the job runs.

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
    process = recipe.get("process")
    if process is None:
        return
    if not isinstance(process, list):
        fail("process", f"must be a list of ops, each `- <op_name>: {{<arguments>}}`, got {describe_value(process)}")
    for index, entry in enumerate(process):
        if not isinstance(entry, dict) or len(entry) != 1:
            fail(f"process[{index}]", f"must be one op, `<op_name>: {{<arguments>}}`, got {describe_value(entry)}"
                 + (f" with {len(entry)} keys" if isinstance(entry, dict) else ""))
        (name, arguments), = entry.items()
        if arguments is not None and not isinstance(arguments, dict):
            fail(_child(f"process[{index}]", name), f"an op's arguments must be a mapping, got {describe_value(arguments)}")


def _is_legacy(data: dict[str, Any]) -> bool:
    return "pipelines" not in data and not any(stage in data for stage in STAGES) and (
        "process" in data or any(key in data for key in LEGACY_SANDBOX_KEYS)
    )


def convert_legacy(data: dict[str, Any]) -> dict[str, Any]:
    """The 000 guide's single-file form -> its default pipeline.

    probe (analyser; model inference if configured) -> refine (k-sigma / model
    feedback if their paths are set) -> execution (process; training if
    configured) -> evaluation (analyser; data / model evaluation if configured).
    """
    recipe = {k: v for k, v in data.items() if k not in LEGACY_SANDBOX_KEYS and k not in GLOBAL_KEYS}
    recipe["project_name"] = data.get("project_name", "sandbox")
    converted: dict[str, Any] = {k: data[k] for k in GLOBAL_KEYS if k in data}
    converted.setdefault("work_dir", str(Path(recipe.get("export_path", DEFAULT_WORK_DIR + "/x")).parent))

    probe = [{"hook": "ProbeViaAnalyzerHook", "meta_name": "analysis_ori_data", "dj_configs": recipe}]
    if data.get("model_infer_config"):
        probe.append({"hook": "ProbeViaModelInferHook", "meta_name": "analysis_ori_model",
                      "dj_configs": recipe, "extra_configs": data["model_infer_config"]})
    refine = []
    process: dict[str, Any] = {"hook": "ProcessDataHook", "meta_name": "process_data",
                               "dj_configs": recipe, "output": "processed_dataset_path"}
    if data.get("path_k_sigma_recipe"):
        refine.append({"hook": "RefineRecipeViaKSigmaHook", "meta_name": "analysis_ori_data",
                       "output": "refined_recipe_path", "dj_configs": recipe,
                       "extra_configs": {"path_k_sigma_recipe": data["path_k_sigma_recipe"]}})
        process["input"] = {"dj_configs": "-1.refined_recipe_path"}
    if data.get("path_model_feedback_recipe"):
        refine.append({"hook": "RefineRecipeViaModelFeedbackHook", "meta_name": "refine_via_model_feedback",
                       "dj_configs": recipe,
                       "extra_configs": {"path_model_feedback_recipe": data["path_model_feedback_recipe"]}})
    execution = [process]
    if data.get("model_train_config"):
        execution.append({"hook": "TrainModelHook", "meta_name": "train_model",
                          "input": {"extra_configs.train_dataset": "anonymous.process_data.processed_dataset_path"},
                          "extra_configs": data["model_train_config"]})
    evaluation = [{"hook": "ProbeViaAnalyzerHook", "meta_name": "analysis_processed_data",
                   "input": {"dj_configs.dataset_path": "anonymous.process_data.processed_dataset_path"},
                   "dj_configs": recipe}]
    if data.get("data_eval_config"):
        evaluation.append({"hook": "EvaluateDataHook", "meta_name": "eval_data",
                           "input": {"extra_configs.dataset_path": "anonymous.process_data.processed_dataset_path"},
                           "extra_configs": data["data_eval_config"]})
    if data.get("model_eval_config"):
        evaluation.append({"hook": "EvaluateModelHook", "meta_name": "eval_model",
                           "extra_configs": data["model_eval_config"]})
    converted.update(probe_job_configs=probe, refine_recipe_job_configs=refine,
                     execution_job_configs=execution, evaluation_job_configs=evaluation)
    return converted


JSON_TYPE_NAMES = {"object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer",
                   "number": "a number", "boolean": "true or false", "null": "empty"}


def _schema_message(error: Any) -> str:
    """One readable sentence for a JSON Schema error (the place is added by the caller).

    Subschemas may carry ``x-message`` (what the value must be, replacing the
    generic type wording) and ``x-pattern-message`` (why a pattern), so each
    rule and its wording stay together in the schema.
    """
    value, rule, custom = error.instance, error.validator_value, error.schema.get("x-message")
    if error.validator == "type":
        types = [rule] if isinstance(rule, str) else list(rule)
        message = f"{custom or 'must be ' + ' or '.join(JSON_TYPE_NAMES[t] for t in types)}, got {describe_value(value)}"
        if "string" in types and isinstance(value, (int, float)) and not isinstance(value, bool):
            message += f": write it in quotes ('{value!r}') if it is text, YAML reads {value!r} as a number"
        return message
    if error.validator == "pattern":
        return f"{value!r} {error.schema.get('x-pattern-message') or 'must match ' + repr(rule)}"
    if error.validator == "enum":
        return f"must be one of {', '.join(map(repr, rule))}, got {describe_value(value)}{did_you_mean(str(value), map(str, rule))}"
    if error.validator == "minimum":
        return f"must be at least {rule}, got {value!r}"
    if error.validator == "minLength":
        return "must not be empty"
    if error.validator in ("minProperties", "maxProperties"):
        return f"{custom or 'has the wrong number of keys'}, got {len(value)}{': ' + ', '.join(map(str, value)) if value else ''}"
    if error.validator == "uniqueItems":
        repeated = next(item for position, item in enumerate(value) if item in value[:position])
        return f"names must be unique, {repeated!r} appears more than once"
    return error.message if len(error.message) < 200 else error.message[:200] + "..."


def _schema_error(data: dict[str, Any]) -> ConfigError | None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is None:
        return None
    if error.validator == "oneOf" and list(error.absolute_path) == ["pipelines"]:
        # Report what is wrong inside the form the user chose (mapping or list), not "matches no form".
        form = 0 if isinstance(error.instance, dict) else 1 if isinstance(error.instance, list) else None
        inner = [e for e in error.context if e.relative_schema_path[0] == form]
        if not inner:
            return ConfigError("pipelines", f"must be a mapping name -> job lists, or a list of one-key mappings, "
                                            f"got {describe_value(error.instance)}")
        error = jsonschema.exceptions.best_match(inner)
    where = config_path(*error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        extras = [k for k in error.instance if k not in allowed]
        name = extras[0] if extras else "?"
        return ConfigError(config_path(*error.absolute_path, name), f"unknown key{did_you_mean(str(name), allowed)}")
    if error.validator == "required":
        missing = [key for key in error.validator_value if key not in error.instance]
        return ConfigError(where, f"missing required key `{missing[0]}`")
    return ConfigError(where, _schema_message(error))


def _wandb_settings(value: bool | dict[str, Any] | None) -> dict[str, Any] | None:
    if not value:
        return None
    return {} if value is True else dict(value)


def load_config(data: Any, source: str = "config") -> SandboxConfig:
    """Validate a parsed config and normalise it to pipelines of JobConfigs."""
    if not isinstance(data, dict):
        raise ConfigError("", f"a sandbox config must be a mapping of settings and job lists, not {describe_value(data)}")
    has_pipelines = data.get("pipelines") not in (None, [], {})
    top_level_jobs = [stage for stage in STAGES if data.get(stage)]
    if has_pipelines and top_level_jobs:
        raise ConfigError(top_level_jobs[0], "both pipeline forms at once: use either `pipelines` or top-level job lists, not both")
    if _is_legacy(data):
        data = convert_legacy(data)
    job_files: list[str] = []
    data = _with_job_files(data, job_files)
    error = _schema_error(data)
    if error:
        raise error

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
    )
    if has_pipelines:
        raw = data["pipelines"]
        items = list(raw.items()) if isinstance(raw, dict) else [next(iter(p.items())) for p in raw]
        seen: set[str] = set()
        for position, (name, body) in enumerate(items):
            base = ("pipelines", name) if isinstance(raw, dict) else ("pipelines", position, name)
            if name in seen:
                raise ConfigError(config_path(*base), f"duplicate pipeline name {name!r}")
            seen.add(name)
            config.pipelines.append((name, _jobs_of(name, body or {}, base)))
    else:
        config.pipelines.append((ANONYMOUS_PIPELINE, _jobs_of(ANONYMOUS_PIPELINE, data, ())))
    if not config.jobs():
        raise ConfigError("pipelines" if has_pipelines else "", "no jobs to run: give job lists (probe_job_configs, "
                          "refine_recipe_job_configs, execution_job_configs, evaluation_job_configs) at top level or in pipelines")
    return config


def _jobs_of(pipeline: str, body: dict[str, Any], base: tuple[str | int, ...]) -> list[JobConfig]:
    jobs = []
    for stage in STAGES:
        for index, raw in enumerate(body.get(stage) or []):
            output = raw.get("output")
            outputs = None if output is None else tuple([output] if isinstance(output, str) else output)
            jobs.append(JobConfig(
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
            ))
    return jobs
