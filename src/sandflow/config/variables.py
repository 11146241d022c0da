"""``variables:`` and ``${name}`` in string values, substituted when a config is loaded.

The plan is the plan of the config written out: a job's key sees only the substituted values, so the
same work written with or without variables has the same key. ``${env:NAME}`` reads an environment
variable (only that way: a bare ``${HOME}`` is an undefined config variable, not the environment).
``$${x}`` is a literal ``${x}``. A value that is exactly one ``${name}`` takes the variable's value as
it is (a number stays a number); inside a longer string it is written as text. Mapping keys are never
substituted. Recipe and job files a config names are substituted with the same values.

The values used end up in :attr:`SandboxConfig.variables` (``name -> value``, and ``env:NAME -> value``
for each environment variable read), for ``sandflow check`` to show.
"""

from __future__ import annotations

import functools
import os
import re
from typing import Any

from sandflow.config.errors import ConfigError, child_path, config_path, describe_value

# ``${...}`` with an optional second ``$`` in front (the escape).
REFERENCE_RE = re.compile(r"\$(\$?)\{([^{}]*)\}")
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
ENV_PREFIX = "env:"
# Environment variables named like secrets are refused: a substituted value is written into job records
# (context.json), keys and logs. Hooks that need a secret take the variable's name (api_key_env).
# PAT: a personal access token (GitHub, GitLab, Azure DevOps).
SECRET_WORDS = frozenset(
    {"KEY", "APIKEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "PASS", "PASSPHRASE", "CREDENTIAL", "CREDENTIALS"}
    | {"AUTH", "PAT"}
)
SCALARS = (str, int, float, bool)


def _render(where: str, parts: tuple[str | int, ...]) -> str:
    """The place of a value: ``where`` (a section, possibly empty) followed by the path inside it."""
    return functools.reduce(child_path, parts, where) if where else config_path(*parts)


def _as_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


class Substitution:
    """Looks names up in ``values`` (a config's variables) and records each environment variable read there."""

    def __init__(self, values: dict[str, Any]):
        self.values = values

    def lookup(self, name: str, place: str, origin: str) -> Any:
        if name.startswith(ENV_PREFIX):
            return self.environment(name[len(ENV_PREFIX) :], place, origin)
        if not NAME_RE.fullmatch(name):
            raise ConfigError(
                place,
                f"${{{name}}} is not a variable: write ${{<name>}} or ${{env:<NAME>}} (letters, digits and _), "
                f"or $${{...}} for a literal ${{...}}{origin}",
            )
        if name not in self.values:
            defined = [key for key in self.values if not key.startswith(ENV_PREFIX)]
            known = f"defined: {', '.join(defined)}" if defined else "no `variables:` defined"
            raise ConfigError(place, f"undefined variable ${{{name}}} ({known}){origin}")
        return self.values[name]

    def environment(self, name: str, place: str, origin: str) -> str:
        if not NAME_RE.fullmatch(name):
            raise ConfigError(place, f"${{env:{name}}} does not name an environment variable{origin}")
        if SECRET_WORDS & set(name.upper().split("_")):
            raise ConfigError(
                place,
                f"${{env:{name}}} looks like a secret, and a substituted value is written into job records and logs; "
                f"give a secret to a hook by its variable's name (api_key_env: {name}){origin}",
            )
        recorded = self.values.get(ENV_PREFIX + name)
        if recorded is None:
            recorded = os.environ.get(name)
            if recorded is None:
                raise ConfigError(place, f"undefined environment variable ${{env:{name}}}: it is not set{origin}")
            self.values[ENV_PREFIX + name] = recorded
        return recorded

    def expand(self, text: str, place: str, origin: str) -> Any:
        if "${" not in text:
            return text
        whole = REFERENCE_RE.fullmatch(text)
        if whole and not whole.group(1):
            return self.lookup(whole.group(2), place, origin)

        def one(match: re.Match[str]) -> str:
            if match.group(1):
                return "${" + match.group(2) + "}"
            return _as_text(self.lookup(match.group(2), place, origin))

        return REFERENCE_RE.sub(one, text)

    def tree(self, tree: Any, where: str = "", source: str | None = None) -> Any:
        """A copy of ``tree`` with every string value substituted; ``source`` is the file it came from."""
        origin = f" (in {source})" if source else ""

        def walk(node: Any, parts: tuple[str | int, ...]) -> Any:
            if isinstance(node, str):
                return self.expand(node, _render(where, parts), origin) if "${" in node else node
            if isinstance(node, dict):
                return {key: walk(value, parts + (key,)) for key, value in node.items()}
            if isinstance(node, list):
                return [walk(value, parts + (index,)) for index, value in enumerate(node)]
            return node

        return walk(tree, ())


def defined_variables(block: Any) -> dict[str, Any]:
    """The ``variables:`` block, each value substituted with the variables above it and the environment."""
    if block is None:
        return {}
    if not isinstance(block, dict):
        raise ConfigError("variables", f"must be a mapping name -> value, got {describe_value(block)}")
    values: dict[str, Any] = {}
    substitution = Substitution(values)
    for name, value in block.items():
        place = config_path("variables", name) if isinstance(name, str) else "variables"
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise ConfigError(
                place, f"a variable's name is letters, digits and _ (not starting with a digit), got {name!r}"
            )
        if not isinstance(value, SCALARS):
            raise ConfigError(place, f"must be a string, number or boolean, got {describe_value(value)}")
        values[name] = substitution.expand(value, place, "") if isinstance(value, str) else value
    return values


def substitute_config(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the config without its ``variables`` block, every string value substituted; the values used)."""
    values = defined_variables(data.get("variables"))
    rest = {key: value for key, value in data.items() if key != "variables"}
    return Substitution(values).tree(rest), values
