"""The job rules (rules/probe.smk, refine.smk, execute.smk, evaluate.smk): one generic rule per hook, keyed by
``{key}``; everything specific to a job reaches it as one params value (scripts/run_job.py runs it)."""

from __future__ import annotations

import os
from typing import Any

from sandflow.core import layout
from sandflow.run import storage
from sandflow.run.per_job import per_job_function
from sandflow.run.run_state import RunState
from sandflow.run.specs import RunJobSpec, job_spec


class JobRules:
    def __init__(self, state: RunState):
        self.state = state
        # What the rules give Snakemake as input and params: it calls them once per job (run/per_job.py).
        self.inputs = per_job_function(self.inputs_of)
        self.spec = per_job_function(self.spec_of)

    @property
    def by_key(self) -> dict[str, Any]:
        """Every planned job by key; grows in place when later iterations are planned (run/iterations.py)."""
        return self.state.by_key

    def output(self, hook: str) -> str | list[str]:
        work_dir = self.state.work_dir
        if self.state.object_store:  # the directory, then its marker: finished once the whole directory is stored
            return storage.declared_job_outputs(layout.job_dir(work_dir, hook, "{key}"))
        return os.path.join(layout.job_dir(work_dir, hook, "{key}"), layout.CONTEXT_FILE)

    def log(self, hook: str) -> str:
        return layout.job_log(self.state.work_dir, hook, "{key}")

    def benchmark(self, hook: str) -> str:
        """Where Snakemake records a job's wall time, max RSS, I/O and CPU time (benchmarks/<hook>/<key>.tsv)."""
        return layout.job_benchmark(self.state.work_dir, hook, "{key}")

    def inputs_of(self, wildcards: Any) -> list[str]:
        self.state.refuse_skipped_hooks()  # also when a job's own output is the target
        return sorted({self.state.declared(dep) for dep in self.by_key[wildcards.key].deps})

    def spec_of(self, wildcards: Any) -> RunJobSpec:
        job = self.by_key[wildcards.key]
        return {**job_spec(job), "recompute": self.state.forced_reruns(), **self.state.staged()}

    def targets(self) -> list[str]:
        return [self.state.declared(job) for job in self.state.plan.unique_jobs()]
