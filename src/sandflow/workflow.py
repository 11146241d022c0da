"""What the Snakefile asks of a plan: targets, each job's inputs and its run-time spec.

Rules stay generic (one per hook, keyed by ``{key}``); everything specific to a
job reaches it through ``get_job_spec`` as one params value, so no config value
is ever spliced into a shell command and the job never re-plans the config.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import sys
from collections import Counter
from typing import Any, Callable

from sandflow import storage
from sandflow.config import ConfigError, load_config, read_config_file
from sandflow.integrity import first_altered
from sandflow.iterations import decision_path, read_decision
from sandflow.plan import KEY_LENGTH, Job, Plan, canonical_json, plan_config


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
        self._lock: int | None = None
        # Whether Snakemake's --force* options are given (its settings exist only after parsing): a job
        # it reruns then recomputes even if it had committed. Set by the Snakefile.
        self.forced_reruns: Callable[[], bool] = lambda: False
        # Whether a storage plugin holds the job store (src/sandflow/storage.py). Set by the Snakefile.
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

    def start_run(self) -> None:
        """Snakemake's onstart (not in a dry run): refuse what cannot run here, then hold the work_dir lock."""
        problems = cannot_run_here(self.plan)
        if problems:
            more = f" (and {len(problems) - 1} more: `sandflow check` lists them)" if len(problems) > 1 else ""
            exit_with_error(f"cannot run here: {problems[0]}{more}")
        self._lock = hold_lock(self.work_dir)
        self.plan.hashes.save()

    def refuse_altered_artifacts(self) -> None:
        """At parse time in the main process (also when there is nothing to run): finished jobs must be intact."""
        if self.object_store:
            return  # the job directories are in the store: checking would download every artifact (docs/design.md)
        altered = first_altered((job.job_dir for job in self.plan.unique_jobs()), self.plan.context_infos_path)
        if altered:
            exit_with_error(altered)

    @property
    def work_dir(self) -> str:
        return self.plan.work_dir

    def job_output(self, hook: str) -> str:
        if self.object_store:
            return storage.declared_directory(os.path.join(self.work_dir, "jobs", hook, "{key}"))
        return os.path.join(self.work_dir, "jobs", hook, "{key}", "context.json")

    def job_log(self, hook: str) -> str:
        return os.path.join(self.work_dir, "logs", hook, "{key}.log")

    def targets(self) -> list[str]:
        return [self.declared(job) for job in self.plan.unique_jobs()]

    def declared(self, job: Job) -> str:
        """What a rule declares of a job: its record, or the whole directory when a storage plugin moves it."""
        return job.job_dir if self.object_store else job.context_path

    # ---- iterations with iter_targets (rules/iterate.smk) --------------------------------------

    def extend_iterations(self, decision_file: Callable[[int, str], str]) -> None:
        """Plan the iterations whose decisions say they run; ``decision_file(n, digest)`` is the
        checkpoint's output for iteration n (a path that does not exist yet while it is undecided)."""
        self.plan.planner.extend(self.plan, lambda n, digest: read_decision(decision_file(n, digest)))
        for job in self.plan.jobs:  # in place: the rules' resource callables share this mapping
            self.jobs.setdefault(job.key, job)

    def decision_output(self) -> str:
        return decision_path(self.work_dir, "{n}", "{digest}")

    def decision_files(self, decision_file: Callable[[int, str], str]) -> list[str]:
        """Every planned iteration's decision, after planning all that are decided (the last one is
        still to come, or records why the run stopped there)."""
        if not self.plan.config.iter_targets:
            return []
        self.extend_iterations(decision_file)
        planner = self.plan.planner
        return [decision_file(n, planner.decision_digest(n)) for n in range(1, len(planner.iterations) + 1)]

    def iteration_outcome(self) -> str | None:
        """The record of where an iterative run stopped, named by its first iteration's decision: a
        changed job, target or cap gives a new name, so Snakemake (which does not rerun a finished job
        for a checkpoint it depends on) rebuilds it, and context_infos.json after it."""
        if not self.plan.config.iter_targets:
            return None
        digest = self.plan.planner.decision_digest(1)
        return os.path.join(self.work_dir, ".sandflow", "iterations", f"outcome-{digest}.json")

    def context_infos_inputs(self, decision_file: Callable[[int, str], str]) -> dict[str, list[str] | str]:
        """The final rule's inputs: every job, the publication record, the iteration decisions."""
        outcome = self.iteration_outcome()
        return {"jobs": self.targets(), "publication": self.publication_record(),
                "decisions": self.decision_files(decision_file), "outcome": [outcome] if outcome else []}

    # ---- hpo_config searches (rules/hpo.smk) -------------------------------------------------------

    def hpo_spec(self, wildcards: Any = None) -> dict[str, Any]:
        search = self.plan.search
        return {
            "metric": search.hpo.metric, "goal": search.hpo.goal,
            "parameters": [parameter.name for parameter in search.hpo.parameters],
            "trials": [{"number": t.number, "values": t.values, "context": t.metric_job.context_path, "index": t.metric_index}
                       for t in search.trials],
        }

    def hpo_spec_output(self) -> str:
        return os.path.join(self.work_dir, ".sandflow", "hpo", "{digest}.json")

    def hpo_inputs(self) -> dict[str, list[str] | str]:
        """The metric jobs of every trial, and a record named by the spec (a changed goal reruns the summary)."""
        spec = self.hpo_spec()
        digest = hashlib.sha256(canonical_json(spec).encode()).hexdigest()[:KEY_LENGTH]
        return {"metrics": sorted({trial["context"] for trial in spec["trials"]}),
                "spec": self.hpo_spec_output().format(digest=digest)}

    def hpo_outputs(self) -> dict[str, str]:
        directory = os.path.join(self.work_dir, "hpo")
        return {"best": os.path.join(directory, "best.json"), "table": os.path.join(directory, "trials.csv"),
                "plot": os.path.join(directory, "metric.png")}

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
        digest = hashlib.sha256(canonical_json(self.plan.config.wandb).encode()).hexdigest()[:KEY_LENGTH]
        return os.path.join(self.work_dir, "wandb", f"tracked-{digest}.json")

    def get_decision_inputs(self, wildcards: Any) -> list[str]:
        return sorted({job.context_path for job in self.plan.planner.iterations[int(wildcards.n) - 1]})

    def get_decision_spec(self, wildcards: Any) -> dict[str, Any]:
        return self.plan.planner.decision_spec(int(wildcards.n))

    def get_job_inputs(self, wildcards: Any) -> list[str]:
        return sorted({self.declared(dep) for dep in self.jobs[wildcards.key].deps})

    def get_job_spec(self, wildcards: Any) -> dict[str, Any]:
        return {**job_spec(self.jobs[wildcards.key]), "recompute": self.forced_reruns(), **self.staged()}

    def get_assembly_spec(self, wildcards: Any = None) -> dict[str, Any]:
        return {**assembly_spec(self.plan), **self.staged()}

    def staged(self) -> dict[str, str]:
        """The marker a script needs to read staged copies of job directories (nothing without a store)."""
        return {storage.STAGED: os.path.join(self.work_dir, "jobs")} if self.object_store else {}

    def report_outputs(self) -> dict[str, str]:
        """What the Snakemake report shows of a run (src/sandflow/report_figures.py)."""
        directory = os.path.join(self.work_dir, "report")
        return {"figures": os.path.join(directory, "figures"), "metrics": os.path.join(directory, "metrics.csv")}

    def publication_output(self) -> str:
        return os.path.join(self.work_dir, ".sandflow", "publication", "{digest}.json")

    def publication_record(self) -> str:
        """A file named by the hash of what the assembly publishes where.

        Job keys leave publishing out, so a moved export_path changes no job; this
        file's name changes instead, and the assembly (which lists it as input) reruns.
        """
        digest = hashlib.sha256(canonical_json(assembly_spec(self.plan)).encode()).hexdigest()[:KEY_LENGTH]
        return os.path.join(self.work_dir, ".sandflow", "publication", f"{digest}.json")


def _candidates(candidates: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{"job_dir": c["job"].job_dir, "slot": c["slot"], "rel": c["rel"]} for c in candidates]


def job_spec(job: Job) -> dict[str, Any]:
    """Everything the rule needs to run the job, as plain JSON-able data."""
    sources: dict[str, Any] = {}
    for section, source in job.section_sources.items():
        if "ref" in source:
            sources[section] = {"ref": {"context": source["ref"]["job"].context_path, "index": source["ref"]["index"]}}
        else:
            sources[section] = {"path": {"candidates": _candidates(source["path"]["candidates"]), "text": source["path"]["text"]}}
    return {
        "key": job.key,
        "hook": job.hook.name,
        "job_dir": job.job_dir,
        "where": job.where,
        "pipeline": job.cfg.pipeline,
        "meta_name": job.cfg.display_name,
        "iteration": job.iteration,
        "sections": job.sections,
        "section_sources": sources,
        "deferred_local": job.deferred_local,
        "refs": [{"target": list(r["target"]), "context": r["job"].context_path, "index": r["index"]}
                 for r in job.refs],
        "path_reads": [{"target": list(r["target"]), "candidates": _candidates(r["candidates"]), "text": r["text"]}
                       for r in job.path_reads],
        "writes": list(job.hook.writes),
        "linked": {role: linked.job_dir for role, linked in job.linked.items()},
        "n_outputs": len(job.cfg.outputs) if job.cfg.outputs is not None else job.n_outputs,
    }


def readable_names(plan: Plan) -> dict[int, str]:
    """<meta_name> where unique in its pipeline, else <meta_name>-<position>; <position> without meta_name."""
    pipelines: dict[tuple[int | None, int, str], list[Job]] = {}
    for job in plan.jobs:
        pipelines.setdefault((job.trial, job.iteration, job.cfg.pipeline), []).append(job)
    names: dict[int, str] = {}
    for siblings in pipelines.values():
        uses = Counter(sibling.cfg.meta_name for sibling in siblings)
        for position, job in enumerate(siblings):
            meta = job.cfg.meta_name
            if meta is None:
                names[id(job)] = str(position)
            elif uses[meta] == 1:
                names[id(job)] = meta
            else:
                names[id(job)] = f"{meta}-{position}"
    return names


def assembly_spec(plan: Plan) -> dict[str, Any]:
    names = readable_names(plan)
    return {
        "work_dir": plan.work_dir,
        "context_infos": plan.context_infos_path,
        "jobs": [
            {
                "iteration": job.iteration,
                "trial": job.trial,
                "hook": job.hook.name,
                "pipeline": job.cfg.pipeline,
                "meta_name": job.cfg.display_name,
                "readable_name": names[id(job)],
                "key": job.key,
                "job_dir": job.job_dir,
                "output_names": list(job.cfg.outputs) if job.cfg.outputs is not None else None,
                # Publish locations known now; a job whose sections arrive at run time records its own.
                # A search's trials publish nothing: they would overwrite each other.
                "writes": [] if job.trial is not None else None if job.section_sources else [
                    {"slot": w.slot, "value": w.value, "kind": w.kind, "iterized": w.iterized} for w in job.writes
                ],
            }
            for job in plan.jobs
        ],
    }


def hold_lock(work_dir: str) -> int:
    """An exclusive lock on work_dir for this process's life (released by the kernel even on SIGKILL)."""
    lock_dir = os.path.join(work_dir, ".sandflow")
    os.makedirs(lock_dir, exist_ok=True)
    fd = os.open(os.path.join(lock_dir, "lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
        exit_with_error(f"another sandflow run (pid {holder}) is using work_dir {work_dir}; wait for it to finish or stop it")
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def load_or_exit(config: dict[str, Any], configfiles: list[str]) -> Workflow:
    """Plan the Snakemake config; a bad config prints one line and exits 2 before anything runs."""
    # Name config files as the user gave them (Snakemake hands them over absolute).
    source = ", ".join(os.path.relpath(f) if not os.path.relpath(f).startswith("..") else str(f) for f in configfiles) or "config"
    try:
        for path in configfiles:  # Snakemake's own YAML loader lets a repeated key through silently
            read_config_file(path)
        return Workflow(plan_config(load_config(dict(config), source=source)))
    except ConfigError as exc:
        exit_with_error(f"{source}: {exc}")
        raise  # unreachable: exit_with_error does not return
