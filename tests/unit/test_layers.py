"""The packages are layers: a module imports only from its own layer or the ones below it (docs/design.md).

What counts as an import: ``import x``, ``from x import y`` (y may be a module: ``from sandflow import run``),
relative imports (``from ..run import runner``), and module names given as strings, which ``importlib`` and the hook
registry's lazy imports turn into imports at run time (``_lazy("sandflow.hooks.hf.train", ...)``, an f-string's
leading ``"sandflow.hooks.third_party."``). Top-level modules (cli, lineage, dvc_stage, hpo_search, ...) and devtools
sit above every layer: they may import anything, and no layer may import them.
"""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

from helpers.paths import REPO

PACKAGE = REPO / "src" / "sandflow"
# Lowest first; TOP is everything else under sandflow (top-level modules, devtools).
LAYERS = ["core", "config", "report", "hooks", "plan", "run"]
TOP = len(LAYERS)
MODULE_NAME = re.compile(r"sandflow(?:\.[A-Za-z_]\w*)+")


def layer_of(module: str) -> int | None:
    """The layer index of a sandflow module (TOP above them all); None for the bare package and non-sandflow names."""
    parts = module.split(".")
    if parts[0] != "sandflow" or len(parts) < 2:
        return None
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else TOP


def module_name(package: Path, path: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(module: str, is_package: bool, tree: ast.AST, children: set[str]) -> Iterator[tuple[int, str]]:
    """(line, module name) of everything the module imports, by statement or by a string naming a module: one in
    ``children`` (sandflow's own modules and packages), so that a logger's name ("sandflow.job") is not one."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # A module's own package is its name minus the last part; a package's __init__ is its own.
                base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            yield node.lineno, source
            for alias in node.names:  # the names may be modules: `from sandflow import run`
                yield node.lineno, f"{source}.{alias.name}"
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_NAME.fullmatch(node.value):
            if node.value.split(".")[1] in children:
                yield node.lineno, node.value
        elif isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
            match = MODULE_NAME.match(str(node.values[0].value))
            if match and match.group(0).split(".")[1] in children:
                yield node.lineno, match.group(0)


def violations(package: Path) -> list[str]:
    """'<file>:<line> (<layer>) imports <module> (<layer>)' for every import of a higher layer under package."""
    found = []
    names = [*LAYERS, "top level"]
    children = {path.stem for path in package.iterdir() if path.suffix == ".py" or (path / "__init__.py").exists()}
    children |= {path.name for path in package.iterdir() if path.is_dir()}
    for path in sorted(package.rglob("*.py")):
        module = module_name(package, path)
        own = layer_of(module)
        if own is None or own == TOP:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for line, target in sorted(set(imported_names(module, path.name == "__init__.py", tree, children))):
            theirs = layer_of(target)
            if theirs is not None and theirs > own:
                found.append(f"{path.relative_to(package)}:{line} ({names[own]}) imports {target} ({names[theirs]})")
    return found


def test_no_module_imports_a_higher_layer():
    found = violations(PACKAGE)
    assert not found, "\n".join(found)


def plant(package: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(textwrap.dedent(text))
    return package


def test_the_check_sees_every_kind_of_import_of_a_higher_layer(tmp_path: Path):
    package = plant(
        tmp_path / "sandflow",
        {
            "__init__.py": "",
            "cli.py": "from sandflow.run import runner\n",  # the top level may import anything
            "plan/planner.py": "",
            "run/runner.py": "",
            "run/specs.py": "",
            "core/__init__.py": "from ..config import load\n",  # a package's own relative import
            "core/top.py": "import sandflow.cli\n",
            "core/lineage.py": "from sandflow.lineage import show\n",
            "config/load.py": """\
                import importlib

                planner = importlib.import_module("sandflow.plan.planner")
            """,
            "hooks/relative.py": "from ..run import runner\n",
            "hooks/by_name.py": "from sandflow import run\n",
            "hooks/registry.py": """\
                def _lazy(module, function): ...

                train = _lazy("sandflow.run.specs", "job_spec")
                tool = _lazy(f"sandflow.plan.{'planner'}", "plan_config")
            """,
            "hooks/fine.py": """\
                import logging

                import sandflow
                from sandflow import core
                from sandflow.config import errors
                from . import registry
                from .registry import _lazy

                train = _lazy("sandflow.hooks.hf.train", "train_huggingface")
                third_party = _lazy(f"sandflow.hooks.third_party.{'tool'}", "run")
                words = "see sandflow.run.runner's docs"  # prose, not a module name
                log = logging.getLogger("sandflow.job")  # a logger's name: sandflow has no module job
                rank = logging.getLogger(f"sandflow.rank{0}")
            """,
        },
    )
    assert violations(package) == [
        "config/load.py:3 (config) imports sandflow.plan.planner (plan)",
        "core/__init__.py:1 (core) imports sandflow.config (config)",
        "core/__init__.py:1 (core) imports sandflow.config.load (config)",
        "core/lineage.py:1 (core) imports sandflow.lineage (top level)",
        "core/lineage.py:1 (core) imports sandflow.lineage.show (top level)",
        "core/top.py:1 (core) imports sandflow.cli (top level)",
        "hooks/by_name.py:1 (hooks) imports sandflow.run (run)",
        "hooks/registry.py:3 (hooks) imports sandflow.run.specs (run)",
        "hooks/registry.py:4 (hooks) imports sandflow.plan (plan)",
        "hooks/relative.py:1 (hooks) imports sandflow.run (run)",
        "hooks/relative.py:1 (hooks) imports sandflow.run.runner (run)",
    ]


def test_no_test_module_imports_another():
    """What tests share lives in tests/helpers: importing a test module runs its module-level code and, under
    pytest-xdist, ties its fixtures to whichever worker imports it."""
    offenders = []
    for path in sorted((REPO / "tests").rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            names += [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            offenders += [
                f"{path.relative_to(REPO)}: {name}" for name in names if name.split(".")[-1].startswith("test_")
            ]
    assert offenders == []
