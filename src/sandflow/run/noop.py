"""`sandflow run` without Snakemake when nothing is to be done: the plan, a stat per file, no DAG.

Snakemake's no-op rerun costs seconds (its start-up, the Snakefile's imports, the DAG). This check says
"nothing to do" only where Snakemake would say "Nothing to be done" under profiles/default's rerun triggers
(mtime, input, software-env), and hands over to Snakemake on anything it cannot establish cheaply:

* every planned job directory is finished (``context.json``) and intact (run/integrity.py, as every run checks);
* every file rule ``all`` asks for and every file those rules read or write exists: context_infos.json with
  report/figures and report/metrics.csv, the publication record (named by the assembly spec, so a moved
  export_path or a changed job has none), an iterative run's decisions and outcome, an hpo search's spec record
  and best.json, trials.csv, metric.png, the wandb record;
* no output is older than one of its inputs (Snakemake's mtime trigger);
* every published copy of a job's artifacts is where the assembly put it, with its size (Snakemake cannot see
  those: a deleted one goes back through Snakemake, whose assembly the user can then force);
* nothing is running in the work_dir: the check holds the work_dir lock while it looks (a held lock: Snakemake,
  which refuses in one line);
* no Snakemake run was cut off here (``.snakemake/incomplete`` is empty: it would rerun those outputs).

A job's input set is in its key and the publication record is named by every key, so Snakemake's input trigger
cannot fire where these files are all present; with an iterative config, the outcome record is named by the
iterations' decisions likewise.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from sandflow.core import layout
from sandflow.core.jobio import load_context
from sandflow.plan.model import Plan, Write
from sandflow.run.integrity import first_altered
from sandflow.run.launch import SNAKEFILE
from sandflow.run.lock import LockRefused, hold_lock
from sandflow.run.specs import assembly_spec
from sandflow.run.summary import shown
from sandflow.run.workflow import SandflowRun

# Where Snakemake marks the outputs of a job it started and did not see finish (relative to where it runs).
SNAKEMAKE_INCOMPLETE = os.path.join(".snakemake", "incomplete")
PROJECT_ROOT = SNAKEFILE.parent
# Options that only say how many jobs run at once.
COUNT_OPTIONS = ("--cores", "-c", "--jobs", "-j")


def mtime(path: str) -> float | None:
    """As Snakemake sees it: a directory output by its .snakemake_timestamp when it has one."""
    try:
        if os.path.isdir(path) and os.path.exists(os.path.join(path, ".snakemake_timestamp")):
            path = os.path.join(path, ".snakemake_timestamp")
        return os.stat(path).st_mtime
    except OSError:
        return None


def stale_step(outputs: Iterable[str], inputs: Iterable[str]) -> str | None:
    """Why Snakemake would run the rule with these files (None: it would not): an output missing, or older than
    an input."""
    output_times = {path: mtime(path) for path in outputs}
    missing = [path for path, time in output_times.items() if time is None]
    if missing:
        return f"{missing[0]} is missing"
    oldest = min(output_times.values(), default=None)
    for path in inputs:
        time = mtime(path)
        if time is None:
            return f"{path} is missing"
        if oldest is not None and time > oldest:
            return f"{path} is newer than what it makes"
    return None


def steps(run: SandflowRun) -> list[tuple[list[str], list[str]]]:
    """(outputs, inputs) of each rule Snakemake would consider for rule all's targets, from the rules' adapters."""
    plan = run.plan
    decision = run.iterations.decision_output()

    def decision_file(n: int, digest: str) -> str:
        return decision.format(n=n, digest=digest)

    inputs = run.assembly.context_infos_inputs(decision_file)  # plans the decided iterations first
    found: list[tuple[list[str], list[str]]] = [
        ([job.context_path], sorted({dep.context_path for dep in job.deps})) for job in plan.unique_jobs()
    ]
    decisions = list(inputs["decisions"])
    for n, path in enumerate(decisions, start=1):
        found.append(([path], sorted({job.context_path for job in run.iterations.planner.iterations[n - 1]})))
    report = run.assembly.report_outputs()
    found.append(
        (
            [plan.context_infos_path, report["figures"], report["metrics"]],
            [*inputs["jobs"], *([inputs["publication"]]), *decisions, *inputs["outcome"]],
        )
    )
    if not plan.config.iter_targets:
        found.append(([run.assembly.publication_record()], []))
    found.extend(([outcome], decisions) for outcome in inputs["outcome"])
    if plan.search is not None:
        hpo = run.hpo.inputs()
        found.append(([hpo["spec"]], []))
        found.append((list(run.hpo.outputs().values()), [*hpo["metrics"], hpo["spec"]]))
    tracking = run.tracking.record()
    if tracking:
        found.append(([tracking], [plan.context_infos_path]))
    return found


def published_copies(plan: Plan) -> dict[Path, Path]:
    """Each published file -> the job's artifact it is a copy of (the last writer in the assembly's order wins,
    as there: several jobs may publish into one export directory)."""
    copies: dict[Path, Path] = {}
    for job in assembly_spec(plan)["jobs"]:
        writes = job["writes"]
        if writes is None:  # a job whose sections arrived at run time recorded where it writes
            writes = load_context(os.path.join(job["job_dir"], layout.CONTEXT_FILE))["writes"]
        for raw in writes:
            write = Write(tuple(raw["slot"].split(".")), raw["value"], raw["kind"], raw["iterized"])
            slot = Path(job["job_dir"], raw["slot"])
            root = Path(write.publish_root(job["iteration"]))
            copies.update((root / path.relative_to(slot), path) for path in slot.rglob("*") if path.is_file())
    return copies


def unpublished(plan: Plan) -> str | None:
    """The first artifact whose published copy is missing or of another size (None: all are in place)."""
    for copy, source in published_copies(plan).items():
        try:
            if os.stat(copy).st_size == os.stat(source).st_size:
                continue
        except OSError:
            pass
        return f"{copy} is not the published copy of {source}"
    return None


def why_snakemake(run: SandflowRun) -> str | None:
    """Why the run goes to Snakemake (None: nothing is to be done)."""
    plan = run.plan
    if os.path.isdir(SNAKEMAKE_INCOMPLETE) and any(os.scandir(SNAKEMAKE_INCOMPLETE)):
        return "a Snakemake run was cut off here"
    for outputs, inputs in steps(run):
        stale = stale_step(outputs, inputs)
        if stale:
            return stale
    try:
        lock = hold_lock(plan.work_dir)  # nothing may change while we look
    except LockRefused as refused:
        return str(refused)
    try:
        return first_altered((job.job_dir for job in plan.unique_jobs()), plan.context_infos_path, plan.hashes) or (
            unpublished(plan)
        )
    finally:
        lock.release()
        os.close(lock.fd)


def nothing_to_do_line(plan: Plan) -> str:
    """The line a no-op run ends with, in place of Snakemake's summary."""
    jobs = len(plan.unique_jobs())
    return (
        f"sandflow: nothing to do: {jobs} job(s) cached under {shown(layout.jobs_root(plan.work_dir))}{os.sep}; "
        f"context_infos.json: {shown(plan.context_infos_path)}"
    )


def local_profile(value: str) -> bool:
    """The project's profiles/local (a name Snakemake would look up elsewhere does not qualify)."""
    return os.path.realpath(value) == os.path.realpath(PROJECT_ROOT / "profiles" / "local")


def qualifies(snakemake_args: list[str]) -> bool:
    """Whether `sandflow run <config> <snakemake_args>` may take the fast path: only a plain run, with at most
    --cores/-c/--jobs/-j N and --profile profiles/local (which sets only cores, the terminal and failed logs).
    Any other option (--forceall, -R, targets, --report, -n, --config, a storage or executor profile...) goes to
    Snakemake, as does a SNAKEMAKE_PROFILE other than profiles/local."""
    profile = os.environ.get("SNAKEMAKE_PROFILE")
    if profile and not local_profile(profile):
        return False
    args = iter(snakemake_args)
    for arg in args:
        name, equals, value = arg.partition("=")
        if name in COUNT_OPTIONS:
            value = value if equals else next(args, "")
            if not (value == "all" or value.isdigit()):
                return False
        elif arg[:2] in ("-c", "-j") and arg[2:].isdigit():
            continue
        elif name == "--profile":
            if not local_profile(value if equals else next(args, "")):
                return False
        else:
            return False
    return True
