"""The assembly rules (rules/context.smk): the publication record (scripts/record_spec.py) and context_infos.json
with what the Snakemake report shows (scripts/assemble_context.py, run/context.py)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

from sandflow.core import layout
from sandflow.core.atomic import remove_leftover_temps, write_text_atomic
from sandflow.core.jobio import JobFailed, job_logging
from sandflow.core.keys import digest_of
from sandflow.core.private_fs import UnsafePath
from sandflow.report import figures as report_figures
from sandflow.run import storage
from sandflow.run.context import assemble_context_infos
from sandflow.run.iterations import IterationRules
from sandflow.run.jobs import JobRules
from sandflow.run.run_state import RunState
from sandflow.run.specs import assembly_spec
from sandflow.run.storage import stage_spec


class AssemblyRules:
    def __init__(self, state: RunState, jobs: JobRules, iterations: IterationRules):
        self.state = state
        self.jobs = jobs
        self.iterations = iterations
        self._publication: tuple[int, str] | None = None  # (jobs planned, record) of the last publication_record

    def context_infos_inputs(self, decision_file: Callable[[int, str], str]) -> dict[str, list[str] | str]:
        """The final rule's inputs: every job, the publication record, the iteration decisions."""
        self.state.refuse_skipped_hooks()
        outcome = self.iterations.outcome()
        return {
            "jobs": self.jobs.targets(),
            "publication": self.publication_record(),
            "decisions": self.iterations.decision_files(decision_file),
            "outcome": [outcome] if outcome else [],
        }

    def context_infos_log(self) -> str:
        return layout.rule_log(self.state.work_dir, "context_infos")

    def spec(self, wildcards: Any = None) -> dict[str, Any]:
        return {**assembly_spec(self.state.plan), **self.state.staged()}

    def report_outputs(self) -> dict[str, str]:
        """What the Snakemake report shows of a run (src/sandflow/report/figures.py)."""
        return layout.report_outputs(self.state.work_dir)

    def targets(self) -> list[str]:
        """What rule all asks of the assembly: context_infos.json and the publication record (an iterative
        run's plan grows after parsing: its final targets have where it stopped instead), and with an object
        store every job's marker. When such a record is missing its rule runs, and the assembly after it
        (Snakemake does not rebuild a missing job record under an existing context_infos.json): a failed run
        removes them, as the context_infos.json it writes is not the assembly's (run/failed_run.py). With an
        object store, Snakemake's records of which inputs built context_infos.json are local
        (.snakemake/metadata), so on another machine a changed plan would not rebuild it; the publication
        record, named by every job key, is missing there. Snakemake checks only the outputs some job asks for,
        not those under an up-to-date context_infos.json: asking for the markers runs again a job whose upload
        was cut off or whose objects a killed --forcerun deleted."""
        plan = self.state.plan
        record = [] if plan.config.iter_targets else [self.publication_record()]
        unique_jobs = plan.unique_jobs()
        markers = [storage.uploaded_marker(job.job_dir) for job in unique_jobs] if self.state.object_store else []
        return [plan.context_infos_path, *record, *markers]

    def publication_output(self) -> str:
        return layout.state_path(self.state.work_dir, "publication", "{digest}.json")

    def publication_log(self) -> str:
        return layout.rule_log(self.state.work_dir, "publication_record", "{digest}")

    def publication_record(self) -> str:
        """A file named by the hash of what the assembly publishes where.

        Job keys leave publishing out, so a moved export_path changes no job; this
        file's name changes instead, and the assembly (which lists it as input) reruns.

        Asked twice per run (rule all, the final rule's inputs) and hashing every job: computed again only when
        the plan grew (later iterations are appended; a planned job does not change).
        """
        plan = self.state.plan
        if self._publication is None or self._publication[0] != len(plan.jobs):
            digest = digest_of(assembly_spec(plan))
            self._publication = (len(plan.jobs), self.publication_output().format(digest=digest))
        return self._publication[1]


def record_spec(spec: dict[str, Any], output: str) -> None:
    write_text_atomic(output, json.dumps(spec, indent=2, sort_keys=True) + "\n")


def main_from_snakemake(snakemake: Any) -> None:
    spec = stage_spec(snakemake.params.spec, declared=snakemake.params.spec["context_infos"], local=snakemake.output[0])
    try:
        with job_logging(snakemake.log[0]):
            # Report files stay under the work_dir as this machine holds it: with a store, its staged copy,
            # where context_infos.json (<work_dir>/context_infos.json) is staged too.
            local_work_dir = os.path.dirname(os.path.abspath(snakemake.output[0]))
            remove_leftover_temps(local_work_dir)  # of an assembly killed mid-write; the run holds the lock
            assemble_context_infos(spec, snakemake.output[0])
            report_figures.build(
                {**spec, "work_dir": local_work_dir}, snakemake.output.figures, snakemake.output.metrics
            )
    except (UnsafePath, JobFailed) as exc:  # JobFailed: a job's train_log.json that is not a log
        print(f"sandflow: job failed: {exc}", file=sys.stderr)
        sys.exit(1)
