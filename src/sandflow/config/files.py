"""Reading config, recipe and job files: YAML (no repeated keys) or JSON, errors as ConfigError."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from sandflow.config.errors import ConfigError, describe_value
from sandflow.config.model import RECIPE_SUFFIXES

# The key that makes Snakemake evaluate a --configfile as a YTE template, before the Snakefile can check it.
YTE_KEY = "__use_yte__"


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
                        None, None, f"duplicate key {key!r} (first at line {first_line[key]})", key_node.start_mark
                    )
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
        raise ConfigError(
            "", f"a sandbox config must be a mapping of settings and job lists, not {describe_value(data)}"
        )
    if YTE_KEY in data:
        raise ConfigError(
            YTE_KEY,
            "Snakemake runs the Python expressions of a config with this key (a YTE template) when it reads "
            "--configfile; a sandbox config is plain YAML (`variables:` substitutes values): remove the key",
        )
    return data


def load_job_file(value: str, where: str) -> Any:
    """A job given as the path of a .yaml/.yml/.json file (DJ-Sandbox's prepare_side_configs accepts these)."""
    if not value.endswith(RECIPE_SUFFIXES):
        raise ConfigError(
            where,
            f"a job given as a string is the path of a .yaml, .yml or .json job file, "
            f"not {value!r} (a job is a mapping with at least `hook`)",
        )
    if not os.path.isfile(value):
        raise ConfigError(where, f"job file not found: {value} (relative paths are resolved against {os.getcwd()})")
    try:
        job = read_yaml_or_json(value)
    except ConfigError as exc:
        raise ConfigError(where, f"{value}: {exc.message}") from None
    if not isinstance(job, dict):
        raise ConfigError(where, f"{value} must hold a job (a mapping with at least `hook`), not {describe_value(job)}")
    return job
