"""What the job server (run/job_server.py) imports before it forks jobs: per hook, the modules of the libraries the
hook declares (Hook.libraries), and, when a run starts, those of every hook whose jobs the run is about to run."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

__all__ = ["WARM_IMPORTS", "warm_imports", "warm", "run_preload"]

# What a warm start imports (or calls, for module:function), by the distributions a hook declares (Hook.libraries).
WARM_IMPORTS = {
    # pyplot too: the analysis draws (or copies cached) figures, and importing it is 1.5-2 s of a rerun's job.
    "py-data-juicer": ("data_juicer.core", "matplotlib.pyplot"),
    "torch": ("torch",),
    "transformers": ("transformers", "transformers.trainer", "sandflow.hooks.hf.tiny_lm:warm_up"),
    "peft": ("peft",),
}


def warm_imports(libraries: Sequence[str]) -> list[str]:
    """The modules to import before forking a job of a hook with these libraries ([]: run it in its own process)."""
    return [module for library in libraries for module in WARM_IMPORTS.get(library, ())]


def warm(name: str) -> None:
    """Import a module, or import and call 'module:function'."""
    module, _, function = name.partition(":")
    loaded = importlib.import_module(module)
    if function:
        getattr(loaded, function)()


def run_preload(workflow: Any) -> list[str]:
    """The warm imports of the registry's hooks that have a job in this run's DAG that needs to run (Snakemake's
    onstart, one rule per hook: hook.rule), in registry order (the probes' first), each once."""
    from sandflow.hooks.registry import HOOKS

    rules = {job.rule.name for job in workflow.dag.needrun_jobs()}
    modules: list[str] = []
    for hook in HOOKS.values():
        if hook.rule in rules:
            modules += [module for module in warm_imports(hook.libraries) if module not in modules]
    return modules
