"""What the Snakefile asks of a plan: targets, each job's inputs and its run-time spec.

Rules stay generic (one per hook, keyed by ``{key}``); everything specific to a
job reaches it through ``get_job_spec`` as one params value, so no config value
is ever spliced into a shell command and the job never re-plans the config.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

from sandflow.config.errors import ConfigError
from sandflow.config.files import read_config_file
from sandflow.config.load import load_config
from sandflow.core import layout
from sandflow.core.keys import digest_of
from sandflow.core.private_fs import UnsafePath
from sandflow.plan.history import record_planned
from sandflow.plan.iterations import read_decision
from sandflow.plan.model import Job, Plan
from sandflow.plan.planner import plan_config
from sandflow.report import figures as report_figures
from sandflow.run import job_server, storage
from sandflow.run.failed_run import record_failed_run
from sandflow.run.integrity import first_altered
from sandflow.run.lock import HeldLock, LockRefused, hold_lock
from sandflow.run.specs import RunJobSpec, assembly_spec, job_spec
from sandflow.run.summary import log_run_summary


def exit_with_error(message: str) -> None:
    """One line on stderr, exit code 2, before any job (SystemExit in a Snakefile would become exit 1)."""
    print(f"sandflow: error: {message}", file=sys.stderr)
    sys.stderr.flush()
    os._exit(2)


def cannot_run_here(plan: Plan) -> list[str]:
    """One line per job still to run that needs what is not here (a model, a package, a GPU, a tool)."""
    problems = []
    for job in plan.unique_jobs():
        if os.path.exists(job.context_path):
            continue
        problems.extend(f"{job.where}: {line}" for line in job.missing)
    return problems


class Workflow:
    def __init__(self, plan: Plan):
        self.plan = plan
        self.jobs = plan.by_key  # grows when later iterations are planned
        self._lock: HeldLock | None = None
        self._started = 0.0  # when this run took the work_dir lock
        # Whether Snakemake's --force* options are given: a job it reruns then recomputes even if it had
        # committed (runner.py restores a committed record otherwise). Set by load_or_exit.
        self.forced_reruns: Callable[[], bool] = lambda: False
        # Whether a real run skips onstart, and so the work_dir lock (snakemake --no-hooks). Set by load_or_exit.
        self.hooks_skipped: Callable[[], bool] = lambda: False
        # Whether a storage plugin holds the job store (run/storage.py). Set by load_or_exit.
        self.object_store = False

    def use_storage(self, provider: str | None) -> None:
        """Snakemake's --default-storage-provider (None without one): jobs are then declared as whole
        directories, which the plugin moves to and from the store."""
        if provider is None:
            return
        problem = storage.unsupported(self.plan)
        if problem:
            exit_with_error(f"--default-storage-provider {provider}: {problem}")
        self.object_store = True

    def start_run(self, snakemake_workflow: Any) -> None:
        """Snakemake's onstart (not in a dry run): refuse what cannot run here, hold the work_dir lock, and
        start the job server that lets heavy jobs (Data-Juicer, torch) start warm (run/job_server.py)."""
        problems = cannot_run_here(self.plan)
        if problems:
            more = f" (and {len(problems) - 1} more: `sandflow check` lists them)" if len(problems) > 1 else ""
            exit_with_error(f"cannot run here: {problems[0]}{more}")
        foreign = report_figures.foreign_figures(self.report_outputs()["figures"], self.work_dir)
        if foreign:  # before Snakemake empties it for the context_infos job
            exit_with_error(foreign)
        try:
            self._lock = hold_lock(self.work_dir)
        except LockRefused as exc:
            exit_with_error(str(exc))
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
            if failed and self._lock is not None and not self.object_store:  # a store holds the job records
                final_records = [
                    output.format(digest="*") for output in (self.publication_output(), self.outcome_output())
                ]
                record_failed_run(assembly_spec(self.plan), self._started, final_records, self.plan.hashes)
        except OSError as exc:
            print(f"sandflow: the record of this failed run was not written: {exc}", file=sys.stderr)
        finally:
            if self._lock is not None:
                self._lock.release()  # clears this host's record: a run on another node may start at once
        log_run_summary(self.plan, self.object_store)

    def refuse_altered_artifacts(self) -> None:
        """At parse time in the main process (also when there is nothing to run): finished jobs must be intact."""
        if self.object_store:
            return  # checking would download every artifact: each job checks those it staged (run/storage.py)
        job_dirs = (job.job_dir for job in self.plan.unique_jobs())
        altered = first_altered(job_dirs, self.plan.context_infos_path, self.plan.hashes)
        if altered:
            exit_with_error(altered)

    @property
    def work_dir(self) -> str:
        return self.plan.work_dir

    def job_output(self, hook: str) -> str | list[str]:
        if self.object_store:  # the directory, then its marker: finished once the whole directory is in the store
            return storage.declared_job_outputs(layout.job_dir(self.work_dir, hook, "{key}"))
        return os.path.join(layout.job_dir(self.work_dir, hook, "{key}"), layout.CONTEXT_FILE)

    def job_log(self, hook: str) -> str:
        return layout.job_log(self.work_dir, hook, "{key}")

    def job_benchmark(self, hook: str) -> str:
        """Where Snakemake records a job's wall time, max RSS, I/O and CPU time (benchmarks/<hook>/<key>.tsv)."""
        return layout.job_benchmark(self.work_dir, hook, "{key}")

    def targets(self) -> list[str]:
        return [self.declared(job) for job in self.plan.unique_jobs()]

    def declared(self, job: Job) -> str:
        """What a rule declares of a job: its record, or the whole directory when a storage plugin moves it."""
        return job.job_dir if self.object_store else job.context_path

    # ---- iterations with iter_targets (rules/iterate.smk) --------------------------------------

    def extend_iterations(self, decision_file: Callable[[int, str], str]) -> None:
        """Plan the iterations whose decisions say they run; ``decision_file(n, digest)`` is the
        checkpoint's output for iteration n (a path that does not exist yet while it is undecided)."""
        self.plan.planner.schedule.extend(self.plan, lambda n, digest: read_decision(decision_file(n, digest)))
        for job in self.plan.jobs:  # in place: the rules' resource callables share this mapping
            self.jobs.setdefault(job.key, job)
        if self._lock is not None:  # a real run, not a dry one
            record_planned(self.plan)

    def decision_output(self) -> str:
        return layout.decision_path(self.work_dir, "{n}", "{digest}")

    def decision_files(self, decision_file: Callable[[int, str], str]) -> list[str]:
        """Every planned iteration's decision, after planning all that are decided (the last one is
        still to come, or records why the run stopped there)."""
        if not self.plan.config.iter_targets:
            return []
        self.extend_iterations(decision_file)
        planner = self.plan.planner
        return [decision_file(n, planner.schedule.digest(n)) for n in range(1, len(planner.iterations) + 1)]

    def iteration_outcome(self) -> str | None:
        """The record of where an iterative run stopped, named by its first iteration's decision: a
        changed job, target or cap gives a new name, so Snakemake (which does not rerun a finished job
        for a checkpoint it depends on) rebuilds it, and context_infos.json after it."""
        if not self.plan.config.iter_targets:
            return None
        return self.outcome_output().format(digest=self.plan.planner.schedule.digest(1))

    def outcome_output(self) -> str:
        return layout.state_path(self.work_dir, "iterations", "outcome-{digest}.json")

    def context_infos_inputs(self, decision_file: Callable[[int, str], str]) -> dict[str, list[str] | str]:
        """The final rule's inputs: every job, the publication record, the iteration decisions."""
        self.refuse_skipped_hooks()
        outcome = self.iteration_outcome()
        return {
            "jobs": self.targets(),
            "publication": self.publication_record(),
            "decisions": self.decision_files(decision_file),
            "outcome": [outcome] if outcome else [],
        }

    def refuse_skipped_hooks(self) -> None:
        """Asked while Snakemake builds the DAG (it knows its execution settings then), by every job rule's
        input function and the final rule's: whatever the target, --no-hooks would run without the lock."""
        if self.hooks_skipped():
            exit_with_error(
                "snakemake --no-hooks would skip the work_dir lock that keeps two runs apart; run without it"
            )

    # ---- hpo_config searches (rules/hpo.smk) -------------------------------------------------------

    def hpo_spec(self, wildcards: Any = None) -> dict[str, Any]:
        search = self.plan.search
        return {
            "metric": search.hpo.metric,
            "goal": search.hpo.goal,
            # only when set: the spec's digest names the summary, and a search without a target keeps its name
            **({"target": search.hpo.target} if search.hpo.target is not None else {}),
            "parameters": [parameter.name for parameter in search.hpo.parameters],
            "trials": [
                {"number": t.number, "values": t.values, "context": t.metric_job.context_path, "index": t.metric_index}
                for t in search.trials
            ],
        }

    def hpo_spec_output(self) -> str:
        return layout.state_path(self.work_dir, "hpo", "{digest}.json")

    def hpo_inputs(self) -> dict[str, list[str] | str]:
        """The metric jobs of every trial, and a record named by the spec (a changed goal reruns the summary)."""
        spec = self.hpo_spec()
        digest = digest_of(spec)
        return {
            "metrics": sorted({trial["context"] for trial in spec["trials"]}),
            "spec": self.hpo_spec_output().format(digest=digest),
        }

    def hpo_outputs(self) -> dict[str, str]:
        directory = os.path.join(self.work_dir, "hpo")
        return {
            "best": os.path.join(directory, "best.json"),
            "table": os.path.join(directory, "trials.csv"),
            "plot": os.path.join(directory, "metric.png"),
        }

    # ---- wandb tracking (rules/track.smk) ----------------------------------------------------------

    def tracking_spec(self, wildcards: Any = None) -> dict[str, Any]:
        config = self.plan.config
        settings = {"project": config.project_name, "experiment": config.experiment_name, **(config.wandb or {})}
        trials = self.hpo_spec()["trials"] if self.plan.search else []
        return {**assembly_spec(self.plan), "wandb": settings, "trials": trials}

    def tracking_record(self) -> str | None:
        """Named by the wandb settings, so that changing them logs the runs again."""
        if self.plan.config.wandb is None:
            return None
        digest = digest_of(self.plan.config.wandb)
        return os.path.join(self.work_dir, "wandb", f"tracked-{digest}.json")

    def get_decision_inputs(self, wildcards: Any) -> list[str]:
        return sorted({job.context_path for job in self.plan.planner.iterations[int(wildcards.n) - 1]})

    def get_decision_spec(self, wildcards: Any) -> dict[str, Any]:
        return self.plan.planner.schedule.spec(int(wildcards.n))

    def get_job_inputs(self, wildcards: Any) -> list[str]:
        self.refuse_skipped_hooks()  # also when a job's own output is the target
        return sorted({self.declared(dep) for dep in self.jobs[wildcards.key].deps})

    def get_job_spec(self, wildcards: Any) -> RunJobSpec:
        return {**job_spec(self.jobs[wildcards.key]), "recompute": self.forced_reruns(), **self.staged()}

    def get_assembly_spec(self, wildcards: Any = None) -> dict[str, Any]:
        return {**assembly_spec(self.plan), **self.staged()}

    def staged(self) -> dict[str, str]:
        """The marker a script needs to read staged copies of job directories (nothing without a store)."""
        return {storage.STAGED: layout.jobs_root(self.work_dir)} if self.object_store else {}

    def report_outputs(self) -> dict[str, str]:
        """What the Snakemake report shows of a run (src/sandflow/report/figures.py)."""
        directory = os.path.join(self.work_dir, "report")
        return {"figures": os.path.join(directory, "figures"), "metrics": os.path.join(directory, "metrics.csv")}

    def final_targets(self) -> list[str]:
        """rule all's inputs: the assembly's, where an iterative run stopped (named by what the iterations
        depend on: when it is missing, they are decided again), an HPO search's best trial, the wandb record."""
        return [
            *self.assembly_targets(),
            *filter(None, [self.iteration_outcome(), self.tracking_record()]),
            *([self.hpo_outputs()["best"]] if self.plan.search else []),
        ]

    def assembly_targets(self) -> list[str]:
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
        record = [] if self.plan.config.iter_targets else [self.publication_record()]
        markers = [storage.uploaded_marker(job.job_dir) for job in self.plan.unique_jobs()] if self.object_store else []
        return [self.plan.context_infos_path, *record, *markers]

    def publication_output(self) -> str:
        return layout.state_path(self.work_dir, "publication", "{digest}.json")

    def publication_record(self) -> str:
        """A file named by the hash of what the assembly publishes where.

        Job keys leave publishing out, so a moved export_path changes no job; this
        file's name changes instead, and the assembly (which lists it as input) reruns.
        """
        return self.publication_output().format(digest=digest_of(assembly_spec(self.plan)))


def load_or_exit(config: dict[str, Any], snakemake_workflow: Any) -> Workflow:
    """Plan the Snakemake config; a bad config prints one line and exits 2 before anything runs.

    In the main process (not again in every cluster job) it also refuses altered artifacts and prints
    the plan's note (iterations still to be decided).
    """
    configfiles = snakemake_workflow.configfiles
    # Name config files as the user gave them (Snakemake hands them over absolute).
    source = (
        ", ".join(os.path.relpath(f) if not os.path.relpath(f).startswith("..") else str(f) for f in configfiles)
        or "config"
    )
    try:
        for path in configfiles:  # Snakemake's own YAML loader lets a repeated key through silently
            read_config_file(path)
        workflow = Workflow(plan_config(load_config(dict(config), source=source)))
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

    workflow.forced_reruns = forced_reruns
    workflow.hooks_skipped = hooks_skipped
    # With a default storage provider (profiles/s3) the job store is in an object store (run/storage.py).
    workflow.use_storage(snakemake_workflow.storage_settings.default_storage_provider)
    if snakemake_workflow.is_main_process:
        workflow.refuse_altered_artifacts()
        if workflow.plan.pending_note:
            print(f"sandflow: note: {workflow.plan.pending_note}", file=sys.stderr)
    return workflow
