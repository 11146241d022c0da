"""Load, validate and normalise a DJ-Sandbox config.

Accepts what DJ-Sandbox accepts: the single-pipeline form (job lists at top
level, pipeline ``anonymous``), the multi-pipeline form (``pipelines`` as a
mapping or as a list of one-key mappings) and the older single-file form of
the 000 guide (a Data-Juicer recipe plus sandbox keys), which is converted to
its default pipeline. Shape errors come from a JSON Schema; every error names
its place in the config (``pipelines.p1.execution_job_configs[2].input``).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

import yaml

STAGES = ("probe_job_configs", "refine_recipe_job_configs", "execution_job_configs", "evaluation_job_configs")
SECTIONS = ("dj_configs", "extra_configs")
ANONYMOUS_PIPELINE = "anonymous"
ANONYMOUS_META_NAME = "anonymous_meta_name"
DEFAULT_WORK_DIR = "./outputs/hello_world"

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
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.replace("_", "").replace("-", "").isalnum():
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


def did_you_mean(name: str, choices: Iterator[str] | list[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


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
    iter_targets: list[str]
    iter_targets_mode: str
    iter_updater: dict[str, str]
    hpo_config: Any
    sequential: bool
    pipelines: list[tuple[str, list[JobConfig]]] = field(default_factory=list)

    def jobs(self) -> list[JobConfig]:
        """All jobs in DJ-Sandbox's sequential order."""
        return [job for _, jobs in self.pipelines for job in jobs]


@lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    text = resources.files("sandflow").joinpath("schemas/sandbox.schema.json").read_text()
    return json.loads(text)


def read_yaml_or_json(path: str | Path) -> Any:
    """Parse a .yaml/.yml/.json file; a syntax error is a ConfigError naming the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read: {exc.strerror}") from None
    try:
        if path.suffix == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        detail = str(exc).replace("\n", " ")
        raise ConfigError(str(path), f"not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {detail}") from None


def load_config_file(path: str | Path) -> SandboxConfig:
    data = read_yaml_or_json(path)
    return load_config(data, source=str(path))


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


def _schema_error(data: dict[str, Any]) -> ConfigError | None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is None:
        return None
    where = config_path(*error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        extras = [k for k in error.instance if k not in allowed]
        name = extras[0] if extras else "?"
        return ConfigError(config_path(*error.absolute_path, name), f"unknown key{did_you_mean(name, allowed)}")
    if error.validator == "required":
        return ConfigError(where, error.message.replace("'", "`", 2))
    if error.validator == "oneOf" and error.absolute_path and error.absolute_path[-1] == "pipelines":
        return ConfigError(where, "must be a mapping name -> job lists, or a list of one-key mappings")
    message = error.message if len(error.message) < 200 else error.message[:200] + "..."
    return ConfigError(where, message)


def load_config(data: Any, source: str = "config") -> SandboxConfig:
    """Validate a parsed config and normalise it to pipelines of JobConfigs."""
    if not isinstance(data, dict):
        raise ConfigError(source, "a sandbox config must be a mapping at top level")
    has_pipelines = data.get("pipelines") not in (None, [], {})
    top_level_jobs = [stage for stage in STAGES if data.get(stage)]
    if has_pipelines and top_level_jobs:
        raise ConfigError(top_level_jobs[0], "both pipeline forms at once: use either `pipelines` or top-level job lists, not both")
    if _is_legacy(data):
        data = convert_legacy(data)
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
        iter_targets=list(iter_targets),
        iter_targets_mode=data.get("iter_targets_mode", "all"),
        iter_updater=dict(data.get("iter_updater") or {}),
        hpo_config=data.get("hpo_config"),
        sequential=bool(data.get("sequential", False)),
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
            ))
    return jobs
