"""Packages whose names import their submodules when first asked for (PEP 562, as scientific-python's lazy_loader
does), for the job server's warm imports (run/warm_imports.py).

``import data_juicer.core`` imports Ray: the package's ``__init__`` imports its Ray executors, analyzer and exporter
next to the default ones, and those apply ``ray.remote`` and import ``ray.data`` at import time. That is 0.2-0.25 s of
the server's 1.2 s Data-Juicer import (measured here, the garbage collector paused), which a run's first job waits
for. ``data_juicer_core_on_use`` puts ``data_juicer.core`` and ``data_juicer.core.executor`` in place as modules that
import a name's submodule when the name is first asked for, so the server imports only the default executor's and
the analyzer's modules. A job that runs on Ray imports Ray then: Data-Juicer's ExecutorFactory imports its Ray
executors when asked for one, and sandflow's Ray hook imports them by module (hooks/dj_ray.py).

A package is made lazy only when its ``__init__`` does nothing but import names from its own submodules (and set
``__all__``), so that importing a name's submodule is all its ``__init__`` would have done for that name; any other
package is imported as it is.
"""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import importlib.util
import sys
from pathlib import Path

DATA_JUICER_CORE = ("data_juicer.core", "data_juicer.core.executor")


def names_from_submodules(spec: importlib.machinery.ModuleSpec) -> dict[str, tuple[str, str]] | None:
    """name -> (submodule, its name there) for each name a package's __init__ (found at spec) imports from its
    submodules; None when that __init__ does anything else, or spec is not a package's."""
    if spec.origin is None or not spec.submodule_search_locations:
        return None
    package = spec.name
    names: dict[str, tuple[str, str]] = {}
    for node in ast.parse(Path(spec.origin).read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            for alias in node.names:
                names[alias.asname or alias.name] = (f"{package}.{node.module}", alias.name)
        elif isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["__all__"]:
            continue
        elif not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):  # a docstring
            return None
    return names


def lazy_package(package: str) -> bool:
    """Put package in sys.modules as a module whose names import their submodule on first use; False (nothing done)
    when it is imported already or its __init__ does more than import names (names_from_submodules)."""
    if package in sys.modules:
        return False
    spec = importlib.util.find_spec(package)
    if spec is None:
        return False
    names = names_from_submodules(spec)
    if names is None:
        return False
    module = importlib.util.module_from_spec(spec)

    def __getattr__(name: str) -> object:  # noqa: N807 (a module's __getattr__, PEP 562)
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        submodule, original = names[name]
        value = getattr(importlib.import_module(submodule), original)
        setattr(module, name, value)
        return value

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    module.__all__ = list(names)  # type: ignore[attr-defined]
    sys.modules[package] = module
    parent, _, child = package.rpartition(".")
    if parent:
        setattr(importlib.import_module(parent), child, module)
    return True


def data_juicer_core_on_use() -> None:
    """data_juicer.core and its executor package, lazy (the module's docstring); a no-op once they are imported."""
    for package in DATA_JUICER_CORE:
        lazy_package(package)
