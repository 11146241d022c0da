"""Lazy packages (src/sandflow/run/lazy_packages.py): the job server imports Data-Juicer's default executor and
analyzer without Ray, and every name of data_juicer.core is the same object as in a plain import."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from sandflow.run.lazy_packages import lazy_package

from helpers.env import fresh_python

PACKAGES = ("data_juicer.core", "data_juicer.core.executor")


def python(code: str, cwd: Path | None = None) -> str:
    """The last line code prints in a fresh Python (nothing imported yet)."""
    return fresh_python(code, cwd=cwd, timeout=300).splitlines()[-1]


NAMES = """
import importlib, json
names = {}
for package in %r:
    module = importlib.import_module(package)
    for name in module.__all__:
        value = getattr(module, name)
        names[f"{package}.{name}"] = f"{value.__module__}.{value.__qualname__}"
"""


@pytest.mark.slow
def test_the_servers_data_juicer_imports_leave_ray_out_and_every_name_is_data_juicers_own():
    warm = textwrap.dedent(
        """
        import json, sys
        from sandflow.run import warm_imports
        for name in warm_imports.warm_imports(["py-data-juicer"]):
            warm_imports.warm(name)
        without_ray = "ray" not in sys.modules
        from data_juicer.core import Analyzer, DefaultExecutor  # what sandflow's Data-Juicer hooks import
        without_ray = without_ray and "ray" not in sys.modules
        """
    )
    lazy = json.loads(
        python(warm + NAMES % (PACKAGES,) + 'print(json.dumps([without_ray, "ray" in sys.modules, names]))')
    )
    plain = json.loads(python("import json" + NAMES % (PACKAGES,) + "print(json.dumps(names))"))
    assert lazy[:2] == [True, True]  # Ray only once a Ray name was asked for
    assert lazy[2] == plain and "data_juicer.core.executor.RayExecutor" in plain


def write_package(root: Path, init: str) -> None:
    package = root / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text(init)
    (package / "heavy.py").write_text("import sys\nsys.modules['pkg'].heavy_imported = True\nclass Heavy: pass\n")
    (package / "light.py").write_text("def light(): return 'light'\n")


def test_a_package_that_only_imports_names_imports_each_submodule_when_a_name_is_asked_for(tmp_path: Path):
    write_package(
        tmp_path,
        '"""A package."""\nfrom .heavy import Heavy\nfrom .light import light as fn\n__all__ = ["Heavy", "fn"]\n',
    )
    out = python(
        """
        import sys
        from sandflow.run.lazy_packages import lazy_package
        print(lazy_package("pkg"), end=" ")
        from pkg import fn
        print(fn(), "pkg.heavy" in sys.modules, end=" ")
        import pkg
        print(pkg.Heavy.__module__, pkg.heavy_imported, sorted(pkg.__all__))
        """,
        cwd=tmp_path,
    )
    assert out == "True light False pkg.heavy True ['Heavy', 'fn']"


def test_a_package_whose_init_does_more_is_left_as_it_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    write_package(tmp_path, "from .light import light\nSETTING = light()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert lazy_package("pkg") is False and "pkg" not in sys.modules
