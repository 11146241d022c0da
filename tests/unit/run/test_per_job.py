"""What Snakemake does per job stays small (run/per_job.py): no timings here, benchmarks/plan_trials.py has them.

* the functions a rule gives Snakemake per job carry their signature, which Snakemake reads three times per call;
* a real `snakemake -n` of a small hpo grid looks up each rule's script once, not once per job, and leaves the
  planned objects out of the garbage collector's passes;
* through run/dag_shortcuts.py, the same dry run lists the same jobs and resources (tmpdir from the environment)
  with no params expanded, one log expansion and one resource evaluation per job, each function's parameters
  read once, the resources of a rule of plain values built once (each job gets a copy), no group expanded for
  rules without one, no asyncio task per output to check it is not write-protected.
"""

from __future__ import annotations

import functools
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.common import get_function_params
from snakemake.iocontainers import Wildcards

from sandflow.config.load import load_config_file
from sandflow.core.keys import digest_of
from sandflow.plan.planner import Planner
from sandflow.run import assembly
from sandflow.run.per_job import YOUNG_GENERATION_THRESHOLD
from sandflow.run.resources import RuleResources
from sandflow.run.workflow import SandflowRun

from helpers.env import snakemake_env
from helpers.hpo_grid import grid_config
from helpers.paths import SNAKEFILE
from helpers.snakemake import job_counts

TRIALS = 4


def grid(directory: Path) -> str:
    """A grid of TRIALS trials of merge -> downsample (the searched value) -> mse in ``directory``: its config file."""
    for name in ("a", "b"):
        (directory / f"{name}.jsonl").write_text('{"grade": 1, "truth": 1}\n{"grade": 0, "truth": 1}\n')
    config = grid_config(TRIALS)
    (directory / "grid.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return "grid.yaml"


def test_the_functions_snakemake_calls_per_job_carry_their_signature(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    run = SandflowRun(Planner(load_config_file(grid(tmp_path))))
    by_hook = RuleResources(run.jobs.by_key, final=False)  # as for a plan that grows: a function per directive
    functions = {
        "input": run.jobs.inputs,
        "params": run.jobs.spec,
        "threads": by_hook.threads_of("EvaluateDataHook"),
        "mem_mb": by_hook.resources_of("EvaluateDataHook")["mem_mb"],
    }
    for directive, function in functions.items():
        assert list(get_function_params(function)) == ["wildcards"], directive
        # The same object on every call: read from the function, not built again from its code.
        assert get_function_params(function) is get_function_params(function), directive
    (evaluate,) = [job for job in run.plan.unique_jobs() if job.hook.name == "EvaluateDataHook"][:1]
    wildcards = Wildcards(fromdict={"key": evaluate.key})
    assert run.jobs.inputs(wildcards) == [dep.context_path for dep in evaluate.deps]
    assert run.jobs.spec(wildcards)["key"] == evaluate.key and run.jobs.spec(wildcards)["recompute"] is False
    assert functions["threads"](wildcards) == 1 and functions["mem_mb"](wildcards) == 4096


def test_the_publication_record_is_hashed_once_per_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Rule all and the final rule's inputs both name the publication record, a hash of every job: hashed once,
    and again only for a plan that grew (a later iteration's jobs)."""
    monkeypatch.chdir(tmp_path)
    run = SandflowRun(Planner(load_config_file(grid(tmp_path))))
    hashed: list[int] = []
    real_spec = assembly.assembly_spec
    monkeypatch.setattr(assembly, "assembly_spec", lambda plan: hashed.append(len(plan.jobs)) or real_spec(plan))
    targets = run.final_targets()
    record = run.assembly.context_infos_inputs(lambda n, digest: f"decision_{n}_{digest}.json")["publication"]
    assert record in targets and hashed == [len(run.plan.jobs)]
    assert record == run.assembly.publication_output().format(digest=digest_of(real_spec(run.plan)))
    run.plan.jobs.append(run.plan.jobs[0])  # as a later iteration's jobs are appended
    grown = run.assembly.publication_record()
    assert grown != record and grown == run.assembly.publication_output().format(digest=digest_of(real_spec(run.plan)))
    assert hashed == [len(run.plan.jobs) - 1, len(run.plan.jobs)]


# Runs `snakemake -n` in a child with Snakemake's script lookup counted, and reports what the garbage collector
# was left with after it; the counting calls the real lookup.
COUNTING_DRY_RUN = """
import gc, json, sys
import snakemake.cli, snakemake.script

looked_up = []
real_lookup = snakemake.script.get_source

def counted(path, *args, **kwargs):
    looked_up.append(str(path))
    return real_lookup(path, *args, **kwargs)

snakemake.script.get_source = counted
try:
    snakemake.cli.main(sys.argv[2:])
except SystemExit as exit_:
    code = exit_.code
with open(sys.argv[1], "w") as report:
    json.dump({"code": code, "looked_up": looked_up, "young_threshold": gc.get_threshold()[0],
               "frozen": gc.get_freeze_count()}, report)
"""


@pytest.mark.slow  # imports Snakemake in a child: several seconds
def test_a_dry_run_looks_up_each_rules_script_once_and_keeps_the_plan_out_of_garbage_collection(tmp_path: Path):
    config = grid(tmp_path)
    command = [sys.executable, "-c", COUNTING_DRY_RUN, str(tmp_path / "report.json")]
    command += ["--snakefile", str(SNAKEFILE), "--configfile", config, "-n"]
    result = subprocess.run(command, cwd=tmp_path, env=snakemake_env(), capture_output=True, text=True, timeout=600)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["code"] == 0, result.stderr[-3000:]
    counts = job_counts(result)
    # merge once, then a downsample and an evaluation per trial; each rule below runs a script.
    assert counts["data_pool_manipulation"] == TRIALS + 1 and counts["evaluate_data"] == TRIALS, counts
    script_rules = ["data_pool_manipulation", "evaluate_data", "hpo_spec_record", "hpo_summary", "publication_record"]
    script_rules.append("context_infos")
    assert len(report["looked_up"]) == len(script_rules) < sum(counts[rule] for rule in script_rules), report
    assert report["looked_up"].count("../scripts/run_job.py") == 2, report  # one per hook rule, not per job
    assert report["young_threshold"] == YOUNG_GENERATION_THRESHOLD
    assert report["frozen"] > 0


def test_remembered_parameters_are_those_of_the_signature():
    from snakemake import common, rules

    from sandflow.run.dag_shortcuts import read_signatures_once  # here: the module is what this test is about

    read_signatures_once()

    def input_function(wildcards, input, threads=1):
        return []

    class Evaluator:
        def evaluate(self, *args, **kwargs):
            return None

    overridden = functools.partial(input_function, threads=2)
    common.overwrite_function_params(overridden, ["wildcards"])
    bound = Evaluator().evaluate
    for func in (input_function, bound, Evaluator.evaluate, functools.partial(input_function, threads=2)):
        params = rules.get_function_params(func)
        assert list(params.items()) == list(inspect.signature(func).parameters.items()), func
    assert list(rules.get_function_params(bound)) == ["args", "kwargs"]  # without self, unlike its function's
    assert list(rules.get_function_params(Evaluator.evaluate)) == ["self", "args", "kwargs"]
    # Read once per function: the same mapping again, also for another bound method of the same function.
    assert rules.get_function_params(input_function) is rules.get_function_params(input_function)
    assert rules.get_function_params(bound) is rules.get_function_params(Evaluator().evaluate)
    assert common.get_function_params(overridden) == ["wildcards"]  # Snakemake's override wins
    assert common.get_input_function_aux_params(input_function, {"input": 1, "attempt": 2}) == {"input": 1}


# Runs `snakemake -n` in a child, counting calls of what Snakemake repeats per job; the counters call the real thing.
COUNTING_SHORTCUTS_DRY_RUN = """
import asyncio, collections, inspect, json, sys
import snakemake.cli, snakemake.iocontainers, snakemake.ioutils, snakemake.output_index, snakemake.resources
import snakemake.rules

calls = collections.Counter()

def counted(owner, name, label=None):
    real = getattr(owner, name)
    def count(*args, **kwargs):
        calls[label or name] += 1
        return real(*args, **kwargs)
    setattr(owner, name, count)

real_signature = inspect.signature

def signature(func, *args, **kwargs):  # counted per function when Snakemake reads its parameters
    if sys._getframe(1).f_code.co_name == "get_function_params":
        calls["signature of " + repr(func)] += 1
    return real_signature(func, *args, **kwargs)

inspect.signature = signature
real_match = snakemake.output_index.OutputIndex.match_producers

def match_producers(index, targetfile):  # counted per file: which rules make it
    calls["producers of " + str(targetfile)] += 1
    return real_match(index, targetfile)

snakemake.output_index.OutputIndex.match_producers = match_producers
counted(snakemake.ioutils, "register_in_globals")  # once per evaluation of a resource expression
counted(snakemake.rules.Rule, "expand_params")
counted(snakemake.rules.Rule, "expand_log")
counted(snakemake.resources.Resource, "evaluate")
counted(snakemake.iocontainers.ResourceList, "__init__", "ResourceList")  # each one built name by name
counted(snakemake.rules.Rule, "expand_group")
counted(asyncio.TaskGroup, "__aenter__", "task groups")
try:
    snakemake.cli.main(sys.argv[2:])
except SystemExit as exit_:
    code = exit_.code
with open(sys.argv[1], "w") as report:
    json.dump({"code": code, "calls": calls}, report)
"""


@pytest.mark.slow  # imports Snakemake in a child: several seconds
def test_a_dry_run_lists_the_same_jobs_and_resources_with_less_done_per_job(tmp_path: Path):
    config = grid(tmp_path)
    searched = yaml.safe_load((tmp_path / config).read_text())
    # The downsampling asks for more memory than the merge, a job of its rule: that rule gets a function per job.
    searched["pipelines"][0]["search"]["execution_job_configs"][1]["resources"] = {"mem_mb": 8192}
    (tmp_path / config).write_text(yaml.safe_dump(searched, sort_keys=False))
    (tmp_path / "tmp").mkdir()
    command = [sys.executable, "-c", COUNTING_SHORTCUTS_DRY_RUN, str(tmp_path / "report.json")]
    command += ["--snakefile", str(SNAKEFILE), "--configfile", config, "-n"]
    env = {**snakemake_env(), "TMPDIR": str(tmp_path / "tmp")}  # the default tmpdir resource follows it
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["code"] == 0, result.stderr[-3000:]
    counts = job_counts(result)
    assert counts["data_pool_manipulation"] == TRIALS + 1 and counts["evaluate_data"] == TRIALS, counts
    jobs = sum(counts.values())

    # What the listing says of each job is what Snakemake's own evaluation gives.
    listed = [line.strip() for line in (result.stdout + result.stderr).splitlines() if "resources:" in line]
    tmpdir = f"tmpdir={tmp_path / 'tmp'}"
    asked = f"resources: {tmpdir}, runtime=60, gpu=0, mem_mb=4096, mem=4.1 GB, mem_mib=3907"
    assert listed.count(asked) == 1 + counts["evaluate_data"], listed  # the merge and the evaluations
    asked_more = f"resources: {tmpdir}, runtime=60, gpu=0, mem_mb=8192, mem=8.19 GB, mem_mib=7813"
    assert listed.count(asked_more) == TRIALS, listed
    assert all(line.startswith(f"resources: {tmpdir}") for line in listed) and len(listed) == jobs, listed

    calls = report["calls"]
    assert calls["register_in_globals"] == 1, calls  # for the Snakefile; not for tmpdir=system_tmpdir
    assert calls.get("expand_params", 0) == 0, calls  # no job's params (its spec) is needed to list it
    assert calls["expand_log"] == jobs, calls  # once per job, not again for the check
    # Resources that are functions (tmpdir and mem_mb of data_pool_manipulation) per job, tmpdir once for each
    # other rule; the plain values (threads, runtime...) as they are.
    assert calls["evaluate"] == 2 * counts["data_pool_manipulation"] + len(counts) - 1, calls
    assert calls.get("expand_group", 0) == 0, calls  # no rule has a group: nothing to expand, three times a job
    # One asyncio task group per job (Snakemake's needrun check), none for asking if an output is write-protected.
    assert calls["task groups"] <= jobs + 1, calls
    # Built per job for the rule with a function, else once per rule: the other jobs get copies.
    assert calls["ResourceList"] <= counts["data_pool_manipulation"] + len(counts) < jobs + len(counts) - 1, calls
    read = {name: count for name, count in calls.items() if name.startswith("signature of ")}
    assert read and max(read.values()) == 1, read  # once per function, not two or three times per job
    matched = {name: count for name, count in calls.items() if name.startswith("producers of ")}
    assert len(matched) == jobs - 1 and max(matched.values()) == 1, matched  # every output but rule all's, once
