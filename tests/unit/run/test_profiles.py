"""Where jobs run: the profiles, and each job's resources, conda env and container image as Snakemake plans them.

The envs/ files themselves: tests/unit/test_envs.py; the table of it all and a dry run through profiles/slurm:
tests/workflow/test_resources_table.py.
"""

from __future__ import annotations

import contextlib
import gc
import re
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from sandflow.config.load import load_config_file
from sandflow.hooks.registry import HOOKS
from sandflow.hooks.user_hooks import USER_HOOK_RULE
from sandflow.plan.model import Job
from sandflow.plan.planner import plan_config
from sandflow.run.resources import (
    CONTAINER_IMAGES,
    FAMILY_ENVS,
    FAMILY_RESOURCES,
    RuleResources,
    conda_env_file,
    container_image,
    family_of,
    job_resources,
)

from helpers.every_hook import EVERY_HOOK
from helpers.paths import REPO, SNAKEFILE

PROFILES = REPO / "profiles"
ENVS = REPO / "envs"
RULES = REPO / "rules"


def profile(name: str) -> dict:
    return yaml.safe_load((PROFILES / name / "config.yaml").read_text())


@contextlib.contextmanager
def outside_the_checkout(directory: Path) -> Iterator[None]:
    """Run in ``directory`` without the checkout on sys.path; sys.path as it was after.

    Importing Snakemake collects plugins by listing every directory on sys.path and its subdirectories;
    `python -m pytest` puts the checkout there, so its outputs/ would be listed. Loading a workflow also
    puts the Snakefile's directory on sys.path, and tunes the garbage collector for Snakemake's process
    (run/per_job.py): as it was after, for the tests that run next in this one."""
    threshold = gc.get_threshold()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(directory)
        patch.setattr(sys, "path", [entry for entry in sys.path if Path(entry or ".").resolve() != REPO])
        try:
            yield
        finally:
            gc.unfreeze()
            gc.set_threshold(*threshold)


@pytest.fixture(scope="module")
def snakemake_options(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    with outside_the_checkout(tmp_path_factory.mktemp("parser")):
        from snakemake.cli import get_argument_parser

        parser = get_argument_parser()
    return {s[2:] for action in parser._actions for s in action.option_strings if s.startswith("--")}


@dataclass(frozen=True)
class ReportedRule:
    """What Snakemake reports of one rule of the loaded workflow."""

    snakefile: Path
    script: str | None
    conda: Any  # as declared: an env file relative to the snakefile, a callable, or None


@dataclass(frozen=True)
class ReportedJob:
    """A planned job as Snakemake would run it: the rules that produce its output, its resources and env file."""

    job: Job
    producers: list[str]
    resources: dict[str, Any]
    conda_env: Path | None
    container: str | None


@pytest.fixture(scope="module")
def every_hook_workflow(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, ReportedRule], list[ReportedJob]]:
    """The Snakefile loaded by Snakemake's API with EVERY_HOOK: its rules, and each planned job as Snakemake
    expands it (wildcards from the job's output, then threads, resources and conda env for them)."""
    directory = tmp_path_factory.mktemp("every-hook")
    (directory / "data.jsonl").write_text('{"text": "a"}\n')
    (directory / "sandbox.yaml").write_text(yaml.safe_dump(EVERY_HOOK))
    with outside_the_checkout(directory):
        from snakemake.api import SnakemakeApi
        from snakemake.iocontainers import InputFiles, Wildcards
        from snakemake.settings.types import ConfigSettings, ResourceSettings

        with SnakemakeApi() as api:
            config = ConfigSettings(configfiles=[directory / "sandbox.yaml"])
            workflow = api.workflow(ResourceSettings(), config, snakefile=SNAKEFILE)._workflow
            rules = {
                rule.name: ReportedRule(Path(rule.snakefile), rule.script, rule.conda_env) for rule in workflow.rules
            }
            jobs = []
            for job in workflow.globals["SANDFLOW"].jobs.by_key.values():
                producers = [rule for rule in workflow.rules if rule.is_producer(job.context_path)]
                resources, env, image = {}, None, None
                if len(producers) == 1:  # else the test says so
                    wildcards = Wildcards(fromdict=producers[0].get_wildcards(job.context_path))
                    resources = dict(producers[0].expand_resources(wildcards, InputFiles(), attempt=1).items())
                    env = Path(producers[0].expand_conda_env(wildcards).file)
                    image = producers[0].expand_container_img(wildcards)
                jobs.append(ReportedJob(job, [rule.name for rule in producers], resources, env, image))
    return rules, jobs


# --- profiles ---------------------------------------------------------------------------------


@pytest.mark.slow  # building Snakemake's parser imports every plugin: ~7 s of CPU
@pytest.mark.parametrize("name", ["default", "local", "slurm", "slurm-ci"])
def test_every_profile_key_is_a_snakemake_option(name: str, snakemake_options: set[str]):
    unknown = sorted(set(profile(name)) - snakemake_options)
    assert not unknown, f"profiles/{name}: not snakemake options: {unknown}"


def test_local_profile_runs_in_the_venv_with_the_workflow_profiles_rerun_settings():
    local = profile("local")
    assert local["cores"] == "all"
    assert "software-deployment-method" not in local and "executor" not in local
    # profiles/default is read on every run, --profile or not: the rerun settings live there once.
    default = profile("default")
    assert default["rerun-triggers"] == ["mtime", "input", "software-env"]
    assert default["rerun-incomplete"] is True
    assert not set(local) & set(default)


def test_slurm_profile_uses_the_executor_the_venv_by_default_and_leaves_account_and_partition_to_the_user():
    slurm = profile("slurm")
    assert slurm["executor"] == "slurm"
    # no conda unless --sdm conda (a cluster without conda plans and runs in the venv); --nv for --sdm apptainer
    assert "software-deployment-method" not in slurm and "use-conda" not in slurm
    assert slurm["apptainer-args"] == "--nv"
    assert slurm["default-resources"]["mem_mb"] > 0 and slurm["default-resources"]["runtime"] > 0
    text = (PROFILES / "slurm" / "config.yaml").read_text()
    assert re.search(r"^\s*# slurm_account: .*EDIT", text, re.M)
    assert re.search(r"^\s*# slurm_partition: .*EDIT", text, re.M)


def test_slurm_ci_profile_has_the_settings_a_cluster_without_accounting_needs():
    ci = profile("slurm-ci")
    assert ci["executor"] == "slurm"
    assert ci["slurm-status-command"] == "squeue"  # sacct waits forever without accounting
    assert ci["slurm-no-account"] is True
    assert 1 <= ci["slurm-init-seconds-before-status-checks"] <= 10
    assert ci["latency-wait"] >= 5
    assert ci["default-resources"]["mem_mb"] > 0 and ci["default-resources"]["runtime"] > 0
    assert "software-deployment-method" not in ci  # jobs run in the project's venv
    assert ci["max-threads"] <= 2


def test_slurm_ci_runs_every_rule_that_may_ask_for_a_gpu_without_one(every_hook_workflow):
    """The one-machine cluster has no GPU: a job asking for one would wait forever."""
    rules, jobs = every_hook_workflow
    gpu_hooks = {
        name
        for name, hook in HOOKS.items()
        if any(job_resources(name, kind, {}).gpu for kind in [None, *(hook.components or ())])
    }
    gpu_rules = {
        producer for reported in jobs if reported.job.hook.name in gpu_hooks for producer in reported.producers
    }
    assert {"train_model", "infer_model", "evaluate_model"} <= gpu_rules <= set(rules)
    overrides = profile("slurm-ci")["set-resources"]
    assert {rule for rule in gpu_rules if overrides.get(rule, {}).get("gpu") == 0} == gpu_rules


# --- rules, resources and envs per job --------------------------------------------------------


def test_every_hook_has_one_rule_named_in_the_registry_and_made_by_its_stages_file(every_hook_workflow):
    rules, jobs = every_hook_workflow
    assert {reported.job.hook.name for reported in jobs} == set(HOOKS)  # EVERY_HOOK has them all
    for reported in jobs:
        hook = reported.job.hook
        assert reported.producers == [hook.rule], hook.name
        assert rules[hook.rule].snakefile == RULES / f"{hook.stage}.smk", hook.name
    # and no other rule runs a job
    assert {name for name, rule in rules.items() if rule.script == "../scripts/run_job.py"} == {
        hook.rule for hook in HOOKS.values()
    } | {USER_HOOK_RULE}  # and user hooks' (hooks/user_hooks.py)


def test_every_rule_that_runs_code_names_a_conda_env_file(every_hook_workflow):
    """Snakefile's `rule all` only collects; every rule in rules/ runs a script."""
    rules, _ = every_hook_workflow
    assert {name for name, rule in rules.items() if rule.snakefile == SNAKEFILE} == {"all"}
    for name, rule in rules.items():
        if name == "all":
            continue
        assert rule.script and rule.conda, name
        if isinstance(rule.conda, str):
            assert (rule.snakefile.parent / rule.conda).is_file(), (name, rule.conda)


def test_every_hook_rule_takes_threads_resources_conda_env_and_image_from_its_job(every_hook_workflow):
    rules, jobs = every_hook_workflow
    for reported in jobs:
        job = reported.job
        asked = job_resources(job.hook.name, job.component, job.cfg.resources)
        gpu_only = {"gpu_model": asked.gpu_model, "cpus_per_gpu": asked.cpus_per_gpu} if asked.gpu else {}
        expected = {"_cores": asked.threads, "mem_mb": asked.mem_mb, "runtime": asked.runtime, "gpu": asked.gpu}
        given = {name: reported.resources.get(name) for name in [*expected, "gpu_model", "cpus_per_gpu"]}
        assert given == {"gpu_model": None, "cpus_per_gpu": None, **expected, **gpu_only}, job.cfg.where
        env = RULES / conda_env_file(job.hook.name, job.component)
        assert reported.conda_env and reported.conda_env.resolve() == env.resolve(), job.cfg.where
        assert reported.container == container_image(job.hook.name, job.component), job.cfg.where
    # the two TrainModelHook jobs ask differently: the rule gives each its own
    trained = {reported.job.component: reported for reported in jobs if reported.job.hook.name == "TrainModelHook"}
    assert (trained["trinity-rft"].resources["gpu"], trained["huggingface"].resources["gpu"]) == (2, 0)
    assert trained["huggingface"].resources["_cores"] == 2 and "gpu_model" not in trained["huggingface"].resources
    assert callable(rules["train_model"].conda) and rules["process_data"].conda == "../envs/data-juicer.yaml"
    assert trained["trinity-rft"].container == CONTAINER_IMAGES["trinity"]
    assert all(r.container == CONTAINER_IMAGES["data-juicer"] for r in jobs if r.job.hook.name == "ProcessDataHook")


def test_every_hook_and_component_names_an_existing_env_file():
    for hook in HOOKS.values():
        for kind in [None, *(hook.components or ())]:
            env = conda_env_file(hook.name, kind)
            assert (RULES / env).resolve().parent == ENVS, env
            assert (RULES / env).is_file(), f"{hook.name} {kind}: {env}"
    # plus sandflow.yaml for the assembly rules of rules/context.smk
    assert {f.stem for f in ENVS.glob("*.yaml")} == {*FAMILY_ENVS.values(), "sandflow"}


def test_components_pick_their_own_family():
    assert family_of("ProcessDataHook", None) == "data-juicer"
    assert family_of("TrainModelHook", "huggingface") == "training"
    assert family_of("TrainModelHook", "easyanimate") == "easyanimate"
    assert family_of("TrainModelHook", "trinity-rft") == "trinity"
    assert family_of("InferModelHook", "vllm") == "vllm"
    assert family_of("EvaluateDataHook", "vbench_video_evaluator") == "vbench"
    assert family_of("EvaluateDataHook", "accuracy") == "data-juicer"
    assert family_of("EvaluateModelHook", "internvl_coco_caption") == "internvl"
    # what each runs: a local model (GPU), a remote API (CPU), CPU evaluation
    assert (
        family_of("InferModelHook", "huggingface") == family_of("ProbeViaModelInferHook", "modelscope") == "inference"
    )
    assert family_of("InferModelHook", "api") == family_of("ProbeViaModelInferHook", "api") == "api"
    assert family_of("EvaluateModelHook", "perplexity") == family_of("EvaluateDataHook", "coco_caption") == "evaluation"
    assert [FAMILY_RESOURCES[family].gpu for family in ("inference", "api", "evaluation")] == [1, 0, 0]
    # they run in the training env (torch, transformers, the caption metrics' packages), not in one of their own
    assert conda_env_file("EvaluateModelHook", "perplexity") == "../envs/training.yaml"
    assert container_image("InferModelHook", "api") == CONTAINER_IMAGES["training"]


def test_a_jobs_own_resources_override_its_familys_defaults():
    assert job_resources("ProcessDataHook", None, {}) == FAMILY_RESOURCES["data-juicer"]
    assert FAMILY_RESOURCES["data-juicer"].gpu == 0
    trained = job_resources("TrainModelHook", "huggingface", {"gpu": 4, "gpu_model": "a100", "runtime": 2880})
    assert (trained.gpu, trained.gpu_model, trained.runtime) == (4, "a100", 2880)
    assert trained.mem_mb == FAMILY_RESOURCES["training"].mem_mb


def fake_jobs(**jobs: tuple[str, str | None, dict]) -> dict:
    return {
        key: SimpleNamespace(hook=SimpleNamespace(name=hook), component=kind, cfg=SimpleNamespace(resources=asked))
        for key, (hook, kind, asked) in jobs.items()
    }


def test_rules_get_callables_per_job_when_jobs_differ_and_leave_gpu_settings_out_of_cpu_jobs():
    resources = RuleResources(
        fake_jobs(
            a=("ProcessDataHook", None, {"threads": 2}),
            b=("TrainModelHook", "huggingface", {"gpu_model": "h100"}),
            c=("TrainModelHook", "huggingface", {"gpu": 0, "gpu_model": "h100"}),
        ),
        final=True,
    )
    a, b, c = (SimpleNamespace(key=key) for key in "abc")
    # one ProcessDataHook job: plain values
    assert resources.threads_of("ProcessDataHook") == 2
    assert resources.conda_env_of("ProcessDataHook") == "../envs/data-juicer.yaml"
    assert resources.resources_of("ProcessDataHook") == {"mem_mb": 4096, "runtime": 60, "gpu": 0}
    # two TrainModelHook jobs that differ in their GPU: per job where they differ
    train = resources.resources_of("TrainModelHook")
    assert (train["mem_mb"], resources.threads_of("TrainModelHook")) == (65536, 8)
    assert (train["gpu"](b), train["gpu_model"](b), train["cpus_per_gpu"](b)) == (1, "h100", 8)
    # gpu 0: no --gpus=<model>:1 and no --cpus-per-gpu from the SLURM executor
    assert (train["gpu"](c), train["gpu_model"](c), train["cpus_per_gpu"](c)) == (0, None, None)
    assert resources.conda_env_of("TrainModelHook") == "../envs/training.yaml"
    assert resources.container_of("TrainModelHook") == CONTAINER_IMAGES["training"]


def test_a_plan_that_grows_at_run_time_always_gets_callables():
    jobs = fake_jobs(a=("ProcessDataHook", None, {}))
    resources = RuleResources(jobs, final=False)
    threads = resources.threads_of("ProcessDataHook")
    jobs.update(fake_jobs(b=("ProcessDataHook", None, {"threads": 4})))  # a later iteration
    assert (threads(SimpleNamespace(key="a")), threads(SimpleNamespace(key="b"))) == (1, 4)


def test_planned_jobs_get_their_resources_by_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    shutil.copytree(REPO / "tests" / "data" / "slurm", tmp_path / "tests" / "data" / "slurm")
    monkeypatch.chdir(tmp_path)
    plan = plan_config(load_config_file("tests/data/slurm/sandbox.yaml"))
    (job,) = plan.unique_jobs()
    resources = RuleResources(plan.by_key, final=True)
    assert resources.conda_env_of(job.hook.name) == "../envs/data-juicer.yaml"
    assert resources.threads_of(job.hook.name) == 1 and resources.resources_of(job.hook.name)["gpu"] == 0


def test_every_family_the_registry_names_has_resources_and_an_env():
    from sandflow.hooks.registry import HOOKS

    named = {hook.family for hook in HOOKS.values()}
    named |= {c.family for hook in HOOKS.values() for c in (hook.components or {}).values() if c.family}
    assert named == set(FAMILY_RESOURCES) == set(FAMILY_ENVS)
    assert set(FAMILY_ENVS.values()) == set(CONTAINER_IMAGES) <= {f.stem for f in ENVS.glob("*.yaml")}
