"""Reading config, recipe and job files: YAML (no repeated keys) or JSON, errors as ConfigError."""

from __future__ import annotations

import datetime
import json
import os
import re
from pathlib import Path
from typing import Any

import yaml

from sandflow.config.errors import ConfigError, child_path, config_path, describe_value
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


# Deeper than any config needs, shallow enough for every recursive walk over a config (Python stops at 1000).
MAX_DEPTH = 100
# More values than any config holds: aliases inside aliases ("billion laughs") expand to more on every walk.
MAX_VALUES = 1_000_000
# YAML builds these from tags and unquoted forms; none is JSON, which job specs and keys are, so a key made
# from them would not be stable (a set's order) or the job would fail later with a traceback.
NOT_CONFIG_VALUES: dict[type, str] = {
    bytes: "binary data (!!binary) is not a config value: give the path of a file that holds it",
    set: "a set (!!set) is not a config value: write a list",
    tuple: "an ordered mapping (!!omap or !!pairs) is not a config value: write a mapping or a list",
    datetime.date: "YAML reads an unquoted date or time as a date, not text: write it in quotes",
}


# libyaml's parser recurses once per [ or { and overflows the C stack (a segfault, not an exception) somewhere
# between 20,000 and 50,000 levels (measured here); text nested deeper than this is refused before it is parsed.
MAX_FLOW_DEPTH = 1000
QUOTED = re.compile(r"'[^']*'|\"(?:[^\"\\]|\\.)*\"")
NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")


def _flow_depth(text: str) -> int:
    """How deep [...] and {...} nest outside quoted strings (brackets inside plain text count too: an upper bound)."""
    depth = deepest = 0
    for bracket in NOT_A_BRACKET.sub("", QUOTED.sub("", text)):
        depth = depth + 1 if bracket in "[{" else max(depth - 1, 0)
        deepest = max(deepest, depth)
    return deepest


def _not_config_value(value: Any) -> str | None:
    return next((text for kind, text in NOT_CONFIG_VALUES.items() if isinstance(value, kind)), None)


def _place(where: str, key: Any, depth: int) -> str:
    """The place of a child, cut short at a depth where the full place would no longer read as one line."""
    if depth >= 12:
        return where if where.endswith("...") else where + "..."
    return child_path(where, key) if where else config_path(key)


def check_plain_tree(data: Any) -> None:
    """A config is a tree of JSON values: no value inside itself (a YAML alias inside its own anchor, which
    loops every walk over it), no nesting past MAX_DEPTH, none of NOT_CONFIG_VALUES. Raises ConfigError whose
    ``where`` is the place in the file."""
    pending: list[tuple[Any, str, tuple[int, ...]]] = [(data, "", ())]
    seen = 0
    while pending:
        value, where, enclosing = pending.pop()
        seen += 1
        if seen > MAX_VALUES:
            raise ConfigError("", f"holds more than {MAX_VALUES:,} values (aliases inside aliases?)")
        if len(enclosing) > MAX_DEPTH:
            raise ConfigError(where, f"nested more than {MAX_DEPTH} levels deep")
        problem = _not_config_value(value)
        if problem:
            raise ConfigError(where, problem)
        if not isinstance(value, (dict, list)):
            continue
        if id(value) in enclosing:
            raise ConfigError(where, "holds itself (a YAML alias inside its own anchor, as in `&a [*a]`)")
        items = list(value.items() if isinstance(value, dict) else enumerate(value))
        for key, item in reversed(items):  # popped in the file's order: the first problem is reported
            problem = _not_config_value(key)
            if problem:
                raise ConfigError(where, f"the key {key!r}: {problem}")
            pending.append((item, _place(where, key, len(enclosing)), (*enclosing, id(value))))


def read_yaml_or_json(path: str | Path) -> Any:
    """Parse a .json file as JSON, anything else as YAML, and check that it is a plain tree (check_plain_tree); a
    problem is a ConfigError whose ``where`` is the file (and whose message starts with the place in it)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), "cannot read: not a UTF-8 text file") from None
    form = "JSON" if path.suffix == ".json" else "YAML"
    if _flow_depth(text) > MAX_FLOW_DEPTH:
        raise ConfigError(str(path), f"not valid {form}: nested more than {MAX_DEPTH} levels deep")
    try:
        data = json.loads(text) if form == "JSON" else yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506
    except json.JSONDecodeError as exc:
        raise ConfigError(str(path), f"not valid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), f"not valid YAML: {_yaml_problem(exc)}") from None
    except RecursionError:
        raise ConfigError(str(path), f"not valid {form}: nested more than {MAX_DEPTH} levels deep") from None
    try:
        check_plain_tree(data)
    except ConfigError as exc:
        raise ConfigError(str(path), f"{exc.where}: {exc.message}" if exc.where else exc.message) from None
    return data


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
