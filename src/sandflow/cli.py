"""sandflow check / run / show / new / dvc-stage / gc: validate a config and describe its job graph, run it with
Snakemake, print the lineage of one of its artifacts, write a starter experiment, write dvc.yaml's stage
for params.yaml's config, or remove the job directories no given config plans."""

from __future__ import annotations

import argparse
import sys

from sandflow.config.errors import ConfigError, print_error
from sandflow.config.files import read_config_file
from sandflow.config.load import load_config_file
from sandflow.core.collector import collector_paused
from sandflow.plan.history import Explainer
from sandflow.plan.model import Job, Plan, Ref
from sandflow.plan.planner import plan_config
from sandflow.run import job_server, noop
from sandflow.run.import_shortcuts import slurm_efficiency_report_on_use
from sandflow.run.launch import SNAKEFILE, with_terminal_logger
from sandflow.run.warm_imports import plan_preload
from sandflow.run.workflow import SandflowRun, cannot_run_here, plan_for_snakemake


def describe_job(job: Job, number: dict[int, int], why: str) -> list[str]:
    head = f"  {number[id(job)]:>3}. {job.cfg.display_name}  [{job.hook.name}{' ' + job.component if job.component else ''}]  key {job.key}"
    lines = [head, f"         {why}"]
    for source in job.sources():
        place = ".".join(map(str, source.target))
        if isinstance(source, Ref):
            lines.append(f"         {place} <- output {source.index} of job {number[id(source.job)]} ({source.text})")
        else:
            writers = ", ".join(str(number[id(upstream)]) for upstream in source.jobs)
            lines.append(f"         {place} <- {source.text} written by job {writers}")
    if job.after is not None:
        lines.append(f"         after job {number[id(job.after)]} (reads paths sandflow cannot see)")
    for role, linked in job.linked.items():
        lines.append(f"         {role} <- job {number[id(linked)]}")
    for write in job.writes:
        lines.append(f"         writes {write.published(job.iteration)}")
    return lines


def describe(plan: Plan) -> str:
    config = plan.config
    unique = len(plan.unique_jobs())
    iterations = max((job.iteration for job in plan.jobs), default=0)
    lines = [
        f"{config.source}: valid. {len(plan.jobs)} jobs ({unique} distinct) in {len(config.pipelines)} pipeline(s), "
        f"{iterations} iteration(s) planned; work_dir {plan.work_dir}",
    ]
    variables = getattr(config, "variables", None) or {}  # the config's variables (config/load.py)
    lines.extend(f"variable {name} = {value}" for name, value in variables.items())
    if plan.pending_note:
        lines.append(f"note: {plan.pending_note}")
    number = {id(job): position + 1 for position, job in enumerate(plan.jobs)}
    explainer = Explainer(plan)
    whys = {id(job): explainer.why(job) for job in plan.jobs}
    current = None
    for job in plan.jobs:
        header = (job.iteration, job.cfg.pipeline, job.trial)
        if header != current:
            current = header
            trial = "" if job.trial is None else f", hpo trial {job.trial}"
            lines.append(f"iteration {job.iteration}, pipeline {job.cfg.pipeline}{trial}:")
        lines.extend(describe_job(job, number, whys[id(job)]))
    cached = {job.key for job in plan.jobs if whys[id(job)] == "cached"}
    lines.append(f"{len(cached)} distinct job(s) cached, {unique - len(cached)} will run")
    problems = cannot_run_here(plan)
    if problems:
        lines.append("cannot run here yet:")
        lines.extend(f"  {problem}" for problem in problems)
    return "\n".join(lines)


def report(config_file: str, error: ConfigError) -> int:
    """The one line a bad config gets (the Snakefile prints the same), and exit code 2."""
    return print_error(config_file, error)


def check(config_file: str) -> int:
    try:
        plan = plan_config(load_config_file(config_file))
    except ConfigError as exc:
        return report(config_file, exc)
    print(describe(plan))
    return 0


def show(config_file: str, target: str) -> int:
    from sandflow.lineage import NotFound
    from sandflow.lineage import show as lineage

    try:
        print(lineage(plan_config(load_config_file(config_file)), target))
    except ConfigError as exc:
        return report(config_file, exc)
    except (NotFound, OSError) as exc:  # OSError: a published file that cannot be read to check it
        return print_error(config_file, exc)
    return 0


def passed_config_files(snakemake_args: list[str]) -> list[str]:
    """The files a --configfile among the arguments for Snakemake names (its argparse takes any unique prefix,
    --configf..., and one or more files after it)."""
    files: list[str] = []
    taking = False
    for arg in snakemake_args:
        name, equals, value = arg.partition("=")
        if name.startswith("--configf") and "--configfiles".startswith(name):
            files.extend([value] if equals else [])
            taking = not equals
        elif arg.startswith("-"):
            taking = False
        elif taking:
            files.append(arg)
    return files


def plain_run_plan(config_file: str, snakemake_args: list[str]) -> SandflowRun | None:
    """The run of a plain local rerun (run/noop.py qualifies), planned; None for any other run, or a config that
    does not plan (Snakemake reports it as always)."""
    if not noop.qualifies(snakemake_args):
        return None
    try:
        return plan_for_snakemake(config_file)  # the Snakefile takes this plan rather than planning again
    except ConfigError:
        return None


def run(config_file: str, snakemake_args: list[str]) -> int:
    """Same as `snakemake --configfile <config> --logger sandflow <args>` from the current directory."""
    # Snakemake parses the config files itself, and reports a syntax error or an empty file in its own words
    # (exit 1, no line number), and evaluates one with __use_yte__ as Python before the Snakefile sees it:
    # read them first so those get our one line and exit 2.
    for path in [config_file, *passed_config_files(snakemake_args)]:
        try:
            read_config_file(path)
        except ConfigError as exc:
            return report(path, exc)
    plain = plain_run_plan(config_file, snakemake_args)
    if plain is not None and noop.why_snakemake(plain) is None:  # the fast path of a no-op rerun
        print(noop.nothing_to_do_line(plain.plan), file=sys.stderr)
        return 0
    if plain is not None:  # its job server imports the jobs' libraries while Snakemake starts (run/job_server.py)
        job_server.start_before_snakemake(plain.work_dir, plan_preload(plain.plan))
    slurm_efficiency_report_on_use()  # pandas, 0.5 s of Snakemake's start (run/import_shortcuts.py)
    with collector_paused():
        from snakemake.cli import main as snakemake_main

    if not any(
        arg in ("--cores", "-c", "--jobs", "-j", "--profile") or arg.startswith(("--cores=", "-c", "--jobs=", "-j"))
        for arg in snakemake_args
    ):
        snakemake_args = ["--cores", "all", *snakemake_args]
    argv = ["--snakefile", str(SNAKEFILE), "--configfile", config_file, *with_terminal_logger(snakemake_args)]
    try:
        snakemake_main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        job_server.stop_running()  # one that Snakemake ended before its onstart
    return 0


def new(template: str | None, directory: str | None, data: str | None, list_templates: bool) -> int:
    from sandflow.starter import StarterError, create, listing

    if list_templates:
        print(listing())
        return 0
    if template is None or directory is None:
        print(
            "sandflow: error: new needs a template and a directory (sandflow new --list names the templates)",
            file=sys.stderr,
        )
        return 2
    try:
        written = create(template, directory, data)
    except StarterError as exc:
        print(f"sandflow: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {template} into {directory}: {', '.join(written)}")
    print(f"next: sandflow check {directory}/sandbox.yaml  (then sandflow run; see {directory}/README.md)")
    return 0


def gc(config_files: list[str], work_dir: str | None, delete: bool, stats_cache: bool) -> int:
    from sandflow.run.gc import GcRefused, collect, load_configs, only_work_dir

    try:
        for directory, configs in only_work_dir(load_configs(config_files), work_dir).items():
            print("\n".join(collect(directory, configs, delete, stats_cache)))
    except (ConfigError, GcRefused) as exc:
        return print_error("gc", exc)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sandflow", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    check_parser = commands.add_parser("check", help="validate a sandbox config and print its job graph")
    check_parser.add_argument("config")
    show_parser = commands.add_parser(
        "show", help="print the lineage of an artifact: its job, configs and inputs, recursively"
    )
    show_parser.add_argument("config")
    show_parser.add_argument(
        "target",
        help="a path (published, in a job directory of this config or an older one, or a readable link), "
        "<pipeline>.<meta_name>, a meta_name or a job key",
    )
    run_parser = commands.add_parser("run", help="run a sandbox config with snakemake (extra args go to snakemake)")
    run_parser.add_argument("config")
    new_parser = commands.add_parser("new", help="write a starter experiment from a template into a new directory")
    new_parser.add_argument("template", nargs="?", help="a template name (see --list)")
    new_parser.add_argument("dir", nargs="?", help="the directory to create (must not exist, or be empty)")
    new_parser.add_argument("--data", help="a JSON Lines dataset to use instead of the template's sample")
    new_parser.add_argument("--list", action="store_true", help="list the templates")
    commands.add_parser(
        "dvc-stage",
        help="write dvc.yaml's experiment stage (run where dvc.yaml is): its deps are the "
        "config params.yaml names and every file that config reads",
    )
    gc_parser = commands.add_parser(
        "gc",
        help="list (and with --yes remove) the job directories and logs of each work_dir that none of the given "
        "configs plans",
    )
    gc_parser.add_argument("configs", nargs="+", help="every config whose jobs are to be kept")
    gc_parser.add_argument("--yes", action="store_true", help="delete (without it, only list what would go)")
    gc_parser.add_argument("--work-dir", help="collect only this work_dir (one of the configs must use it)")
    gc_parser.add_argument("--stats-cache", action="store_true", help="also remove <work_dir>/stats-cache wholly")
    args, rest = parser.parse_known_args(argv)
    if args.command == "check":
        if rest:
            parser.error(f"unexpected arguments: {' '.join(rest)}")
        return check(args.config)
    if args.command == "show":
        if rest:
            parser.error(f"unexpected arguments: {' '.join(rest)}")
        return show(args.config, args.target)
    if args.command == "new":
        if rest:
            parser.error(f"unexpected arguments: {' '.join(rest)}")
        return new(args.template, args.dir, args.data, args.list)
    if args.command == "gc":
        if rest:
            parser.error(f"unexpected arguments: {' '.join(rest)}")
        return gc(args.configs, args.work_dir, args.yes, args.stats_cache)
    if args.command == "dvc-stage":
        if rest:
            parser.error(f"unexpected arguments: {' '.join(rest)}")
        from sandflow.dvc_stage import write_stage

        return write_stage()
    return run(args.config, rest)


if __name__ == "__main__":
    sys.exit(main())
