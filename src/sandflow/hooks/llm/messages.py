"""Build chat messages from a sample and parse a model's answer: DJ-Sandbox's helper functions.

``build_messages_func`` / ``parse_output_func`` of the LLM inference
executors name one of the built-ins below (the same names and behaviour as
DJ-Sandbox's ``helper_funcs.ALL_FUNCS``) or a user function as
``module:function``. A build function returns one message list, or a list of
message lists to ask several questions about one sample; a parse function
turns one model answer into the value stored in the sample.

Differences from upstream: upstream knows only its registry names (an unknown
name becomes None and fails on the first sample, and its default
``build_input`` is not registered at all); here an unknown name is a
ValueError naming the config key, the default is ``build_messages``, and
``module:function`` imports a user function (the current directory is on the
import path while it is imported, as for ``python -m``).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

Messages = list[dict[str, str]]


def build_messages(item: dict[str, Any], **kwargs: Any) -> Messages:
    """An optional system prompt from ``item[system_key]`` and the user turn ``item[query_key]``."""
    system_prompt = item.get(kwargs.get("system_key", "system"), "")
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.append({"role": "user", "content": item[kwargs.get("query_key", "query")]})
    return messages


def build_messages_for_math_qa(item: dict[str, Any], **kwargs: Any) -> Messages:
    """A grader prompt: the system prompt, then ``Question: <query>\\nAnswer: <response>`` as the user turn."""
    system_prompt = item.get(kwargs.get("system_key", "system"), "")
    question = item[kwargs.get("query_key", "query")]
    answer = item[kwargs.get("response_key", "response")]
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.append({"role": "user", "content": f"Question: {question}\nAnswer: {answer}"})
    return messages


def parse_output(output: str, item: dict[str, Any], **kwargs: Any) -> str:
    """The model's answer unchanged."""
    return output


BUILT_INS: dict[str, Callable[..., Any]] = {
    "build_messages": build_messages,
    "build_messages_for_math_qa": build_messages_for_math_qa,
    "parse_output": parse_output,
}


def resolve_function(spec: Any, where: str) -> Callable[..., Any]:
    """The function a config names: a built-in name or ``module:function`` (``where`` names the config key)."""
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"{where} must be a function name, got {spec!r}")
    if spec in BUILT_INS:
        return BUILT_INS[spec]
    if ":" not in spec:
        raise ValueError(
            f"{where}: unknown function {spec!r}; built-ins: {', '.join(sorted(BUILT_INS))}; "
            f"or give a user function as 'module:function'"
        )
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"{where} must look like 'module:function', got {spec!r}")
    module = _import_from_cwd(module_name, where)
    function = module
    for part in attr.split("."):
        if not hasattr(function, part):
            raise ValueError(f"{where}: module {module_name!r} has no {attr!r}")
        function = getattr(function, part)
    if not callable(function):
        raise ValueError(f"{where}: {spec!r} is not callable")
    return function


def user_module_file(spec: Any) -> str | None:
    """The file under the current directory that a ``module:function`` spec imports (None if none is there).

    The planner hashes it into the job's key, so editing a user function reruns the jobs that call it.
    """
    if not isinstance(spec, str) or spec.count(":") != 1:
        return None
    module_name, _, attr = spec.partition(":")
    parts = module_name.split(".")
    if not attr or not all(part.isidentifier() for part in parts):
        return None
    base = os.path.join(*parts)
    for candidate in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(candidate):
            return candidate
    return None


def _import_from_cwd(module_name: str, where: str) -> Any:
    """Import a user module, with the current directory on sys.path for the duration of the import."""
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise ValueError(
                f"{where}: cannot import module {module_name!r} (not installed and not under {cwd})"
            ) from None
        raise
    finally:
        if added:
            sys.path.remove(cwd)
