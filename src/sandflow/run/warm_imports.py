"""What the job server (run/job_server.py) imports before it forks jobs: per hook, the modules of the libraries the
hook declares (Hook.libraries), and, when a run starts, those of every hook whose jobs the run is about to run."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandflow.hooks.base import Hook
    from sandflow.plan.model import Plan

__all__ = ["WARM_IMPORTS", "BACKGROUND_IMPORTS", "warm_imports", "warm", "run_preload", "plan_preload"]

# What a warm start imports (or calls, for module:function), by the distributions a hook declares (Hook.libraries):
# a job is forked once these are imported.
WARM_IMPORTS = {
    # data_juicer.core without Ray (run/lazy_packages.py), then the default executor's and the analyzer's modules;
    # matplotlib's font manager: an analysis names each figure in its cache by the font it would be drawn with;
    # sandflow's Data-Juicer hooks (0.03 s a job otherwise).
    "py-data-juicer": (
        "sandflow.run.lazy_packages:data_juicer_core_on_use",
        "data_juicer.core.analyzer",
        "data_juicer.core.executor.default_executor",
        "matplotlib.font_manager",
        "sandflow.hooks.data_juicer",
    ),
    "torch": ("torch",),
    "transformers": ("transformers", "transformers.trainer", "sandflow.hooks.hf.tiny_lm:warm_up"),
    "peft": ("peft",),
}
# Imported by the server for later jobs after the above, never waited for by a job: a process job never needs pyplot,
# an analysis whose figures are all stored does not import it (hooks/dj_analysis_cache.py), and one that draws and
# starts before the server has it imports it itself (waiting for the server's import made the first job no sooner).
BACKGROUND_IMPORTS = {"py-data-juicer": ("matplotlib.pyplot",)}


def warm_imports(libraries: Sequence[str], table: dict[str, tuple[str, ...]] = WARM_IMPORTS) -> list[str]:
    """The modules to import before forking a job of a hook with these libraries ([]: run it in its own process),
    or, with BACKGROUND_IMPORTS as table, those to import after it."""
    return [module for library in libraries for module in table.get(library, ())]


def warm(name: str) -> None:
    """Import a module, or import and call 'module:function'."""
    module, _, function = name.partition(":")
    loaded = importlib.import_module(module)
    if function:
        getattr(loaded, function)()


def preload_of(wanted: Callable[[Hook], bool]) -> list[str]:
    """The warm imports, then the background ones, of the registry's wanted hooks, in registry order (the probes'
    first), each once."""
    from sandflow.hooks.registry import HOOKS

    modules: list[str] = []
    for imports in (WARM_IMPORTS, BACKGROUND_IMPORTS):
        for hook in HOOKS.values():
            if wanted(hook):
                modules += [module for module in warm_imports(hook.libraries, imports) if module not in modules]
    return modules


def run_preload(workflow: Any) -> list[str]:
    """What the server imports for the hooks that have a job in this run's DAG that needs to run (Snakemake's
    onstart, one rule per hook: hook.rule)."""
    rules = {job.rule.name for job in workflow.dag.needrun_jobs()}
    return preload_of(lambda hook: hook.rule in rules)


def plan_preload(plan: Plan) -> list[str]:
    """What the server imports for the hooks that have an unfinished job in the plan (before Snakemake's DAG says
    which jobs run: `sandflow run`)."""
    hooks = {job.hook.name for job in plan.unique_jobs() if not os.path.exists(job.context_path)}
    return preload_of(lambda hook: hook.name in hooks)
