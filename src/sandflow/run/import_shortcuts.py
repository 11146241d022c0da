"""Libraries Snakemake's process imports only in case it needs them: each left until it is needed (as in
run/dag_shortcuts.py: only with the Snakemake it was checked against, a no-op wherever the internal is not as this
module knows it).

pandas is 0.5 s of the 1.0 s a Snakemake start spends importing (measured with ``python -X importtime``), and
sandflow's Snakemake process never needs it. Three places import it:

* snakemake-executor-plugin-slurm imports its efficiency report module (pandas, numpy) when Snakemake collects its
  executor plugins, on every start, for a report written only at the end of a SLURM run asked to make one:
  ``slurm_efficiency_report_on_use`` (installed by ``sandflow run`` before it imports Snakemake) leaves that
  module unimported until something uses it;
* for each script job, Snakemake's ``snakemake`` object imports pandas, numpy and polars to see whether a param is
  one of their data frames, series or arrays: ``script_params_without_imports`` looks at the params first and
  hands any value of those libraries to Snakemake's own code, which stores it as before;
* for each job's metadata, Snakemake serialises its params through pandas' hashing whenever pandas is installed:
  ``job_params_serialised_without_pandas`` does so only while pandas is imported (no param can be a pandas object
  before).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
import types
from collections.abc import Iterable
from typing import Any

from sandflow.run.dag_shortcuts import INSTALLED, checked_snakemake, installed, replaceable

SLURM_EFFICIENCY_REPORT = "snakemake_executor_plugin_slurm.efficiency_report"
# The libraries whose values Snakemake's script params store in a form of their own (iocontainers.Snakemake).
DATA_LIBRARIES = frozenset({"pandas", "numpy", "polars"})


def loaded_module(name: str, stand_in: types.ModuleType) -> types.ModuleType:
    """The module itself, imported now if the stand-in still holds its place."""
    if sys.modules.get(name) is stand_in:
        del sys.modules[name]
    return importlib.import_module(name)


def slurm_efficiency_report_on_use() -> None:
    """A stand-in for the plugin's efficiency report module: its report function, or any other name asked of it,
    imports the module itself then. Before Snakemake is imported; a no-op once the module is imported."""
    if SLURM_EFFICIENCY_REPORT in sys.modules or importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return
    stand_in = types.ModuleType(SLURM_EFFICIENCY_REPORT, "imported on first use (sandflow.run.import_shortcuts)")

    def create_efficiency_report(*args: Any, **kwargs: Any) -> Any:
        return loaded_module(SLURM_EFFICIENCY_REPORT, stand_in).create_efficiency_report(*args, **kwargs)

    def __getattr__(name: str) -> Any:  # noqa: N807 (a module's __getattr__, PEP 562)
        if name == "__path__":  # asked by every `from ... import`: the module is no package
            raise AttributeError(name)
        return getattr(loaded_module(SLURM_EFFICIENCY_REPORT, stand_in), name)

    stand_in.create_efficiency_report = create_efficiency_report  # type: ignore[attr-defined]
    stand_in.__getattr__ = __getattr__  # type: ignore[method-assign]
    sys.modules[SLURM_EFFICIENCY_REPORT] = stand_in


def of_data_library(value: Any) -> bool:
    return any(cls.__module__.partition(".")[0] in DATA_LIBRARIES for cls in type(value).__mro__)


def script_params_without_imports() -> None:
    """``Snakemake._safely_store_params`` storing plain params as they are, with no type recorded, as Snakemake's own
    does for a value that is none of pandas', numpy's or polars'; params with such a value go to Snakemake's own."""
    from snakemake.iocontainers import Params, Snakemake

    original = replaceable(Snakemake, "_safely_store_params", ["self", "params"])
    if original is None:
        return

    @installed
    def _safely_store_params(self: Any, params: Iterable[Any]) -> None:
        if any(of_data_library(value) for value in params):
            original(self, params)
            return
        self._params_store = Params(toclone=list(params))
        self._params_types = {}
        self._params_store._take_names(params._get_names())  # type: ignore[attr-defined]

    Snakemake._safely_store_params = _safely_store_params


def job_params_serialised_without_pandas() -> None:
    """``PersistenceBase._serialize_param`` (a cached property naming the serialiser) as one that takes pandas'
    way only while pandas is imported."""
    from snakemake.persistence import PersistenceBase

    original = inspect.getattr_static(PersistenceBase, "_serialize_param", None)
    if not isinstance(original, property) or getattr(original.fget, INSTALLED, False):
        return
    if not all(hasattr(PersistenceBase, name) for name in ("_serialize_param_pandas", "_serialize_param_builtin")):
        return

    @installed
    def _serialize_param(self: Any) -> Any:
        def serialise(value: Any) -> Any:
            if "pandas" in sys.modules:
                return self._serialize_param_pandas(value)
            return self._serialize_param_builtin(value)

        return serialise

    PersistenceBase._serialize_param = property(_serialize_param)


def take_import_shortcuts() -> None:
    """The params shortcuts above, in the process that runs Snakemake's jobs (after its modules are imported)."""
    if not checked_snakemake():
        return
    script_params_without_imports()
    job_params_serialised_without_pandas()
