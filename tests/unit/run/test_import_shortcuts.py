"""The import shortcuts (src/sandflow/run/import_shortcuts.py) on the pinned Snakemake and its SLURM plugin: the
same results, without pandas in Snakemake's process."""

from __future__ import annotations

import numpy as np
from snakemake.iocontainers import Params, Snakemake
from snakemake.persistence import PersistenceBase

from sandflow.run.import_shortcuts import take_import_shortcuts

from helpers.env import fresh_python


def test_snakemake_imports_pandas_for_the_slurm_plugin_unless_its_report_module_waits():
    plain = fresh_python("import sys, snakemake.cli; print('pandas' in sys.modules)")
    assert plain.split() == ["True"]  # what the shortcut spares: the plugin's efficiency report imports pandas
    shortcut = fresh_python(
        """
        import sys
        from sandflow.run.import_shortcuts import SLURM_EFFICIENCY_REPORT, slurm_efficiency_report_on_use
        slurm_efficiency_report_on_use()
        import snakemake.cli
        import snakemake_executor_plugin_slurm as plugin
        print('pandas' in sys.modules)
        stand_in = sys.modules[SLURM_EFFICIENCY_REPORT]
        print(stand_in.parse_maxrss('2048K'))  # any other name: the module itself, imported now
        print('pandas' in sys.modules, sys.modules[SLURM_EFFICIENCY_REPORT].__file__.endswith('efficiency_report.py'))
        print(plugin.create_efficiency_report is stand_in.create_efficiency_report)
        """
    )
    assert shortcut.split() == ["False", "2.0", "True", "True", "True"]


def stored(params: Params) -> tuple[list, list, dict]:
    holder = object.__new__(Snakemake)
    Snakemake._safely_store_params(holder, params)
    return list(holder._params_store), list(holder._params_store._get_names()), holder._params_types


def named_params(*values: object) -> Params:
    params = Params(toclone=list(values))
    params._set_name("spec", 0)
    return params


def test_script_params_are_stored_as_snakemakes_own_code_stores_them():
    take_import_shortcuts()
    spec = {"hook": "ProbeViaAnalyzerHook", "job_dir": "outputs/jobs/x"}
    assert stored(named_params(spec, "text")) == ([spec, "text"], [("spec", (0, None))], {})
    # A numpy array goes to Snakemake's own code, which stores it as a list with its type.
    assert stored(named_params(np.arange(3), 1)) == ([[0, 1, 2], 1], [("spec", (0, None))], {0: "np.ndarray"})


def test_no_pandas_is_imported_for_plain_params_and_pandas_objects_keep_pandas_treatment():
    out = fresh_python(
        """
        import sys
        from snakemake.iocontainers import Params, Snakemake
        from snakemake.persistence.file import FilePersistence
        from sandflow.run.import_shortcuts import take_import_shortcuts
        take_import_shortcuts()
        holder = object.__new__(Snakemake)
        Snakemake._safely_store_params(holder, Params(toclone=[{'a': 1}]))
        persistence = object.__new__(FilePersistence)  # Snakemake's default
        print(persistence._serialize_param({'a': 1}) == persistence._serialize_param_builtin({'a': 1}))
        print('pandas' in sys.modules)
        import pandas as pd
        frame = pd.DataFrame({'x': [1, 2]})
        Snakemake._safely_store_params(holder, Params(toclone=[frame]))
        print(holder._params_types)
        print(persistence._serialize_param(frame) == repr(pd.util.hash_pandas_object(frame).tolist()))
        """
    )
    assert out.split("\n")[:4] == ["True", "False", "{0: 'pd.DataFrame'}", "True"]


def test_installing_twice_wraps_once():
    take_import_shortcuts()
    first = (Snakemake._safely_store_params, PersistenceBase._serialize_param)
    take_import_shortcuts()
    assert (Snakemake._safely_store_params, PersistenceBase._serialize_param) == first
