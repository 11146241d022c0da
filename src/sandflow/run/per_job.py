"""What Snakemake does once per job, kept small for plans of tens of thousands of jobs (benchmarks/plan_trials.py).

Snakemake builds every job of the DAG in its main process, and for each one:

* reads the signature of each function a rule gives (input, params) with ``inspect.signature``, two or three
  times per call: ``per_job_function`` hands it a plain function whose signature is computed once;
* checks that the rule's ``script:`` exists, through its source cache (the path parsed as a URI, the cached
  copy stat'ed and read, the job's params expanded to format the path): ``check_scripts_once_per_rule`` makes
  that once per rule, without params, when the script's path has no wildcards, so that it is the same file for
  every job of the rule;
* allocates thousands of objects, and every 700 of them Python's cyclic garbage collector scans the young ones,
  every 7,000 the older ones, and now and then everything, the plan included: ``collect_garbage_less_often``
  makes those passes rarer in Snakemake's process, and ``freeze_plan`` takes what exists after planning out
  of them (together, the collector's time at 30,000 planned jobs went from an eighth of ``snakemake -n`` to
  under a thirtieth).

Shortcuts through more of Snakemake's per-job internals are in run/dag_shortcuts.py.
"""

from __future__ import annotations

import functools
import gc
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

Result = TypeVar("Result")

# New container objects between two passes over the young generation (Python's default is 700). A Snakemake
# job of this workflow makes a few thousand; the cyclic garbage between two passes stays a few MB.
YOUNG_GENERATION_THRESHOLD = 100_000
# Passes over the young generation between two over the middle one (Python's default is 10). Each middle pass
# rescans every job object built since the last one (0.2 s at 10,000 trials, twice per `snakemake -n`): once per
# 10M new objects instead (a `snakemake -n` here makes about 110 per Snakemake job: once per 90,000 jobs).
MIDDLE_GENERATION_THRESHOLD = 100


def per_job_function(method: Callable[[Any], Result]) -> Callable[[Any], Result]:
    """``method(wildcards)`` as a plain function that carries its signature: ``inspect.signature`` then returns it
    as it is, instead of building it again (a bound method's twice) on each of Snakemake's calls."""

    @functools.wraps(method)
    def call(wildcards: Any) -> Result:
        return method(wildcards)

    call.__signature__ = inspect.signature(method)  # type: ignore[attr-defined]
    return call


def collect_garbage_less_often() -> None:
    """For this process (Snakemake's; a job runs in its own): pass over the young generation once per
    YOUNG_GENERATION_THRESHOLD new objects, the middle one once per MIDDLE_GENERATION_THRESHOLD of those passes,
    the oldest as often as before relative to that."""
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young, YOUNG_GENERATION_THRESHOLD), max(middle, MIDDLE_GENERATION_THRESHOLD), old)


def freeze_plan() -> None:
    """Exempt every object that exists now (the plan, the imported modules) from the garbage collector's later
    passes: they live as long as the process."""
    gc.freeze()


def check_scripts_once_per_rule() -> None:
    """Make Snakemake check a rule's ``script:`` once, not once per job, when its path has no wildcards, and
    without the job's params (Snakemake expands them to format the path, which then has nothing to format).

    Snakemake's DAG builds its script check from ``snakemake.dag.ScriptProcessor`` (looked up when a DAG is
    made, after the Snakefile is read); a Snakemake without it keeps its own check for every job.
    """
    from snakemake import dag  # here, where Snakemake runs: importing it takes seconds

    processor = getattr(dag, "ScriptProcessor", None)
    get_source = getattr(getattr(dag, "script", None), "get_source", None)
    if processor is None or get_source is None or getattr(processor, "once_per_rule", False):
        return

    class ScriptCheckedOncePerRule(processor):  # type: ignore[misc, valid-type]
        once_per_rule = True

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.checked_rules: set[Any] = set()

        def process_job(self, job: Any) -> None:
            path = job.rule.script if job.is_script else None
            if not isinstance(path, str) or "{" in path or "}" in path:  # none, or a path formatted per job
                super().process_job(job)
            elif job.rule not in self.checked_rules:
                # Snakemake's check: reading the script through its source cache raises when it is not there.
                source_file = dag.script.get_source(path, self.dag.workflow.sourcecache, job.rule.basedir)[0]
                if not self.dag.workflow.sourcecache.exists(source_file):
                    raise dag.WorkflowError(f"Script {path} not accessible. Please check the path to the script.")
                self.checked_rules.add(job.rule)

    dag.ScriptProcessor = ScriptCheckedOncePerRule
