"""What the Snakefile asks of a plan, one adapter per rules file (each owns its paths and its script's entry point):

rules/probe|refine|execute|evaluate.smk  run/jobs.py        scripts/run_job.py
rules/iterate.smk                        run/iterations.py  scripts/decide_iteration.py, record_iteration_outcome.py
rules/hpo.smk                            run/hpo.py         scripts/hpo_summary.py
rules/track.smk                          run/tracking.py    scripts/track_wandb.py
rules/context.smk                        run/assembly.py    scripts/assemble_context.py, record_spec.py
onstart, onsuccess, onerror (Snakefile)  this module, with the work_dir lock (run/lock.py)

Rules stay generic (one per hook, keyed by ``{key}``); everything specific to a job reaches it as one params
value, so no config value is ever spliced into a shell command and the job never re-plans the config.
"""

from __future__ import annotations

import copy
import os
import sys
import time
from typing import Any, NamedTuple

from sandflow.config.errors import ConfigError
from sandflow.config.files import read_config_file
from sandflow.config.load import load_config
from sandflow.core.private_fs import UnsafePath
from sandflow.plan.history import record_planned
from sandflow.plan.model import Plan
from sandflow.plan.planner import Planner
from sandflow.report import figures as report_figures
from sandflow.run import job_server, storage
from sandflow.run.assembly import AssemblyRules
from sandflow.run.dag_shortcuts import take_dag_shortcuts
from sandflow.run.dispatch_shortcuts import take_dispatch_shortcuts
from sandflow.run.dry_run_shortcuts import take_dry_run_shortcuts
from sandflow.run.failed_run import record_failed_run
from sandflow.run.file_shortcuts import take_file_shortcuts
from sandflow.run.hpo import HpoRules
from sandflow.run.import_shortcuts import take_import_shortcuts
from sandflow.run.input_shortcuts import take_input_shortcuts
from sandflow.run.integrity import first_altered
from sandflow.run.iterations import IterationRules
from sandflow.run.jobs import JobRules
from sandflow.run.lock import HeldLock, LockRefused, hold_lock
from sandflow.run.log_shortcuts import take_log_shortcuts
from sandflow.run.per_job import check_scripts_once_per_rule, collect_garbage_less_often, freeze_plan
from sandflow.run.run_state import RunState, exit_with_error
from sandflow.run.scheduler_shortcuts import take_scheduler_shortcuts
from sandflow.run.specs import assembly_spec
from sandflow.run.summary import log_run_summary
from sandflow.run.tracking import TrackingRules

__all__ = ["SandflowRun", "cannot_run_here", "exit_with_error", "load_or_exit"]


def cannot_run_here(plan: Plan) -> list[str]:
    """One line per job still to run that needs what is not here (a model, a package, a GPU, a tool)."""
    problems = []
    for job in plan.unique_jobs():
        if os.path.exists(job.context_path):
            continue
        problems.extend(f"{job.where}: {line}" for line in job.missing)
    return problems


class SandflowRun:
    """One Snakemake run of a plan: the rule adapters, the run's start and finish, and the work_dir lock."""

    def __init__(self, planner: Planner):
        self.plan = planner.plan()
        self.state = RunState(self.plan)
        self.jobs = JobRules(self.state)
        self.iterations = IterationRules(self.state, planner)
        self.hpo = HpoRules(self.state)
        self.tracking = TrackingRules(self.state, self.hpo)
        self.assembly = AssemblyRules(self.state, self.jobs, self.iterations)
        self._lock: HeldLock | None = None
        self._started = 0.0  # when this run took the work_dir lock

    @property
    def work_dir(self) -> str:
        return self.plan.work_dir

    def use_storage(self, provider: str | None) -> None:
        """Snakemake's --default-storage-provider (None without one): jobs are then declared as whole
        directories, which the plugin moves to and from the store."""
        if provider is None:
            return
        problem = storage.unsupported(self.plan)
        if problem:
            exit_with_error(f"--default-storage-provider {provider}: {problem}")
        self.state.object_store = True

    def start_run(self, snakemake_workflow: Any) -> None:
        """Snakemake's onstart (not in a dry run): refuse what cannot run here, hold the work_dir lock, and
        start the job server that lets heavy jobs (Data-Juicer, torch) start warm (run/job_server.py)."""
        problems = cannot_run_here(self.plan)
        if problems:
            more = f" (and {len(problems) - 1} more: `sandflow check` lists them)" if len(problems) > 1 else ""
            exit_with_error(f"cannot run here: {problems[0]}{more}")
        foreign = report_figures.foreign_figures(self.assembly.report_outputs()["figures"], self.work_dir)
        if foreign:  # before Snakemake empties it for the context_infos job
            exit_with_error(foreign)
        try:
            self._lock = hold_lock(self.work_dir)
        except LockRefused as exc:
            exit_with_error(str(exc))
        self.state.locked = True
        self._started = time.time()  # a job that wrote its log since then ran in this run (run/failed_run.py)
        self.plan.hashes.save()
        record_planned(self.plan)  # so `sandflow check` can later say what changed (plan/history.py)
        try:
            job_server.start_for_local_run(snakemake_workflow, self.work_dir)
        except UnsafePath as exc:
            self.finish_run()  # exit_with_error skips atexit: clear the lock's record first
            exit_with_error(str(exc))

    def finish_run(self, failed: bool = False) -> None:
        """Snakemake's onsuccess and onerror (failed: context_infos.json then records what finished)."""
        job_server.stop_running()
        try:
            if failed and self._lock is not None and not self.state.object_store:  # a store holds the records
                final_records = [
                    output.format(digest="*")
                    for output in (self.assembly.publication_output(), self.iterations.outcome_output())
                ]
                record_failed_run(assembly_spec(self.plan), self._started, final_records, self.plan.hashes)
        except OSError as exc:
            print(f"sandflow: the record of this failed run was not written: {exc}", file=sys.stderr)
        finally:
            if self._lock is not None:
                self._lock.release()  # clears this host's record: a run on another node may start at once
        if not failed:  # a failed run ends with its one line (the job's error), not a summary to read past
            log_run_summary(self.plan, self.state.object_store)

    def refuse_altered_artifacts(self) -> None:
        """At parse time in the main process (also when there is nothing to run): finished jobs must be intact."""
        if self.state.object_store:
            return  # checking would download every artifact: each job checks those it staged (run/storage.py)
        job_dirs = (job.job_dir for job in self.plan.unique_jobs())
        altered = first_altered(job_dirs, self.plan.context_infos_path, self.plan.hashes)
        if altered:
            exit_with_error(altered)

    def final_targets(self) -> list[str]:
        """rule all's inputs: the assembly's, where an iterative run stopped (named by what the iterations
        depend on: when it is missing, they are decided again), an HPO search's best trial, the wandb record."""
        return [
            *self.assembly.targets(),
            *filter(None, [self.iterations.outcome(), self.tracking.record()]),
            *([self.hpo.outputs()["best"]] if self.plan.search else []),
        ]


def config_source(configfiles: list[str]) -> str:
    """Config files named as the user gave them (Snakemake hands them over absolute)."""
    relative = [os.path.relpath(f) for f in configfiles]
    return ", ".join(r if not r.startswith("..") else str(f) for f, r in zip(configfiles, relative)) or "config"


class HandedOver(NamedTuple):
    """A plan `sandflow run` made in this process before it started Snakemake here, of this config."""

    configfile: str  # absolute
    data: dict[str, Any]  # the file's mapping, as read then
    run: SandflowRun


_handed_over: list[HandedOver] = []


def plan_for_snakemake(config_file: str) -> SandflowRun:
    """Plan a config file as the Snakefile would, and leave the plan for it: `sandflow run` plans to see whether
    anything is to be done, and the Snakefile, read next in the same process, takes the plan instead of making it
    again (seconds for a grid of thousands of trials). A ConfigError when the config does not plan."""
    configfile = os.path.abspath(config_file)
    data = read_config_file(configfile)
    collect_garbage_less_often()  # before planning: the plan is most of what a pass would scan (run/per_job.py)
    run = SandflowRun(Planner(load_config(copy.deepcopy(data), source=config_source([configfile]))))
    _handed_over[:] = [HandedOver(configfile, data, run)]
    return run


def handed_over(config: dict[str, Any], configfiles: list[str]) -> SandflowRun | None:
    """The plan left by plan_for_snakemake when Snakemake read the same one file into the same mapping (no
    --config, no second file); taken once."""
    taken = _handed_over.pop() if _handed_over else None
    if taken is None or [os.path.abspath(f) for f in configfiles] != [taken.configfile] or config != taken.data:
        return None
    return taken.run


def load_or_exit(config: dict[str, Any], snakemake_workflow: Any) -> SandflowRun:
    """Plan the Snakemake config; a bad config prints one line and exits 2 before anything runs.

    In the main process (not again in every cluster job) it also refuses altered artifacts and prints
    the plan's note (iterations still to be decided).
    """
    collect_garbage_less_often()  # before planning: the plan is most of what a pass would scan (run/per_job.py)
    configfiles = snakemake_workflow.configfiles
    source = config_source(configfiles)
    try:
        for path in configfiles:  # Snakemake's own YAML loader lets a repeated key through silently
            read_config_file(path)
        run = handed_over(config, configfiles) or SandflowRun(Planner(load_config(dict(config), source=source)))
    except ConfigError as exc:
        exit_with_error(f"{source}: {exc}")
        raise  # unreachable: exit_with_error does not return

    def forced_reruns() -> bool:
        settings = snakemake_workflow.dag_settings  # exists only once Snakemake has parsed its options
        return bool(settings.forceall or settings.forcerun or settings.forcetargets)

    def hooks_skipped() -> bool:
        settings = snakemake_workflow.execution_settings  # set before the DAG is built, after parsing
        main = snakemake_workflow.is_main_process  # jobs Snakemake spawns itself run with --no-hooks
        return bool(main and settings is not None and settings.no_hooks and not snakemake_workflow.dryrun)

    run.state.forced_reruns = forced_reruns
    run.state.hooks_skipped = hooks_skipped
    # With a default storage provider (profiles/s3) the job store is in an object store (run/storage.py).
    run.use_storage(snakemake_workflow.storage_settings.default_storage_provider)
    if snakemake_workflow.is_main_process:
        run.refuse_altered_artifacts()
        if run.plan.pending_note:
            print(f"sandflow: note: {run.plan.pending_note}", file=sys.stderr)
    # Snakemake's work per job (run/per_job.py): its script check once per rule, no rescans of the plan.
    check_scripts_once_per_rule()
    take_dag_shortcuts()
    take_dispatch_shortcuts()
    take_dry_run_shortcuts()
    take_file_shortcuts()
    take_import_shortcuts()
    take_input_shortcuts()
    take_log_shortcuts()
    take_scheduler_shortcuts()
    freeze_plan()
    return run
