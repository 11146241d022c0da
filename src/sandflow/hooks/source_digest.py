"""The sha256 of the code that makes a hook's (or component's) artifacts: it enters every job key of that hook.

The code counted for a hook's function is its own module plus every module of ``sandflow.hooks`` and
``sandflow.report`` it imports (top-level and inside functions, and the packages they sit in),
transitively: the layers whose code writes artifacts. Left out are the layers below (``core``, ``config``:
plumbing every hook and the planner share, where an edit would rerun every job) and ``hooks/base.py`` and
``hooks/registry.py`` (the hook interface: records, no behaviour). Why and what that means: docs/design.md,
"Keys".

Digests are of source bytes and module names, never paths or mtimes, so keys are the same on every machine
and in every checkout; they are computed once per module per process (planning 1,000 jobs reads each file
once).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import sandflow

PACKAGE_ROOT = Path(sandflow.__file__).resolve().parent
# Module prefixes whose imports are followed, and modules that are never counted (see the docstring).
COUNTED_PREFIXES = ("sandflow.hooks.", "sandflow.report.")
NOT_COUNTED = frozenset({"sandflow.hooks.base", "sandflow.hooks.registry"})
# The fields of a statement (or except/case clause) that hold statements: where nested imports can be.
STATEMENT_BLOCKS = ("body", "orelse", "finalbody", "handlers", "cases")


def _counted(module: str) -> bool:
    return module.startswith(COUNTED_PREFIXES) and module not in NOT_COUNTED


def _sandflow_file(module: str) -> Path | None:
    """The source file of a sandflow module, found without importing it (None when there is none)."""
    base = PACKAGE_ROOT.joinpath(*module.split(".")[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_file(module: str) -> Path | None:
    if module == "sandflow" or module.startswith("sandflow."):
        return _sandflow_file(module)
    spec = importlib.util.find_spec(module)  # a hook registered from outside sandflow (tests)
    return Path(spec.origin) if spec is not None and spec.origin and spec.has_location else None


def _statements(tree: ast.Module) -> Iterator[ast.AST]:
    """Every statement of a module, however deeply nested (with the except and case clauses holding some). An
    import is a statement, so expressions, most of the tree, are not visited: a third of ``ast.walk``'s time."""
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop()
        yield node
        for block in STATEMENT_BLOCKS:
            pending.extend(getattr(node, block, ()))


def _imported_names(source: bytes, module: str, is_package: bool) -> set[str]:
    """Every module name an ``import`` statement of the source may load (absolute; ``from x import y``
    gives both ``x`` and ``x.y``, since y may be a module), wherever the statement is."""
    package = module if is_package else module.rpartition(".")[0]
    names: set[str] = set()
    for node in _statements(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


@cache
def _module_source(module: str) -> tuple[str, frozenset[str]] | None:
    """A module's source sha256 and the counted modules it imports (None when it has no source file)."""
    path = _module_file(module)
    if path is None:
        return None  # not a module (a name imported from one)
    source = path.read_bytes()
    imported = _imported_names(source, module, path.name == "__init__.py")
    for parent_end in range(module.count(".")):  # importing a.b.c runs a/__init__ and a/b/__init__ too
        imported.add(module.rsplit(".", parent_end + 1)[0])
    return hashlib.sha256(source).hexdigest(), frozenset(name for name in imported if _counted(name))


@cache
def module_digest(module: str) -> str:
    """sha256 over the names and source sha256s of a module and the counted modules it imports, transitively."""
    seen: dict[str, str] = {}
    pending = [module]
    while pending:
        name = pending.pop()
        if name in seen or (facts := _module_source(name)) is None:
            continue
        seen[name], imported = facts
        pending.extend(imported - seen.keys())
    material = "".join(f"{name}\0{digest}\n" for name, digest in sorted(seen.items()))
    return hashlib.sha256(material.encode()).hexdigest()


def source_digest(run: Callable[..., Any] | None) -> str | None:
    """The digest of the code behind a hook's or component's function (None for a hook without one).

    The registry's lazy wrappers carry the module they import as ``__module__``."""
    return None if run is None else module_digest(run.__module__)
