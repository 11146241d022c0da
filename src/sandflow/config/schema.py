"""The JSON Schema of a sandbox config (schemas/sandbox.schema.json) and one readable line per error."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from sandflow.config.errors import ConfigError, config_path, describe_value, did_you_mean


@lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    text = resources.files("sandflow.config").joinpath("schemas/sandbox.schema.json").read_text()
    return json.loads(text)


JSON_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "empty",
}


def _schema_message(error: Any) -> str:
    """One readable sentence for a JSON Schema error (the place is added by the caller).

    Subschemas may carry ``x-message`` (what the value must be, replacing the
    generic type wording) and ``x-pattern-message`` (why a pattern), so each
    rule and its wording stay together in the schema.
    """
    value, rule, custom = error.instance, error.validator_value, error.schema.get("x-message")
    if error.validator == "type":
        types = [rule] if isinstance(rule, str) else list(rule)
        message = (
            f"{custom or 'must be ' + ' or '.join(JSON_TYPE_NAMES[t] for t in types)}, got {describe_value(value)}"
        )
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


def schema_error(data: dict[str, Any]) -> ConfigError | None:
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
            return ConfigError(
                "pipelines",
                f"must be a mapping name -> job lists, or a list of one-key mappings, "
                f"got {describe_value(error.instance)}",
            )
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
