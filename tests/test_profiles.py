"""Where jobs run: the profiles, each job's resources and conda env, and the envs/ files.

No conda channel is reachable here, so the environments are checked as specs:
each parses as a conda environment file, is named after its file, and pins what
requirements.txt pins to the same version unless the family's own stack differs.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from conftest import REPO

from sandflow.config.load import load_config_file
from sandflow.hooks.registry import HOOKS
from sandflow.plan.planner import plan_config
from sandflow.run.resources import FAMILY_RESOURCES, RuleResources, conda_env_file, family_of, job_resources

PROFILES = REPO / "profiles"
ENVS = REPO / "envs"
RULES = REPO / "rules"
PIN = re.compile(r"^([A-Za-z0-9_.-]+)(\[[A-Za-z0-9_,.-]+\])?==([A-Za-z0-9_.+-]+)$")
CONDA_SPEC = re.compile(r"^[A-Za-z0-9_.-]+(=[A-Za-z0-9_.*]+)?$")
# Packages a family pins differently from requirements.txt, because its upstream tool pins its
# own stack (see the header of each env file). internvl and vbench follow InternVL and VBench.
OWN_STACK = {"vllm": {"transformers"}}
FOLLOWS_ITS_TOOL = {"internvl", "vbench"}


def profile(name: str) -> dict:
    return yaml.safe_load((PROFILES / name / "config.yaml").read_text())


def requirement_pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        match = PIN.match(line.split("#")[0].strip())
        if match:
            pins[match.group(1).lower()] = match.group(3)
    return pins


def env_files() -> list[Path]:
    return sorted(ENVS.glob("*.yaml"))


def hook_rules() -> dict[str, str]:
    """rule name -> hook, for every rule that runs a sandflow job (scripts/run_job.py)."""
    return {
        rule: re.search(r'SANDFLOW\.job_output\("(\w+)"\)', body).group(1)
        for rule, body in rule_bodies().items()
        if "run_job.py" in body
    }


def rule_bodies() -> dict[str, str]:
    """rule name -> its text, for every rule in rules/*.smk."""
    bodies = {}
    for path in RULES.glob("*.smk"):
        for body in re.split(r"\n(?=rule )", path.read_text()):
            name = re.match(r"rule (\w+):", body)
            if name:
                bodies[name.group(1)] = body
    return bodies


@pytest.fixture(scope="module")
def snakemake_options(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    # Importing Snakemake's CLI collects plugins by listing every directory on sys.path and its subdirectories;
    # `python -m pytest` puts the checkout there, so its outputs/ would be listed: leave it out meanwhile.
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path_factory.mktemp("parser"))
        patch.setattr(sys, "path", [entry for entry in sys.path if Path(entry or ".").resolve() != REPO])
        from snakemake.cli import get_argument_parser

        parser = get_argument_parser()
    return {s[2:] for action in parser._actions for s in action.option_strings if s.startswith("--")}


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


def test_slurm_profile_uses_the_executor_conda_envs_and_leaves_account_and_partition_to_the_user():
    slurm = profile("slurm")
    assert slurm["executor"] == "slurm"
    assert slurm["software-deployment-method"] == "conda"
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


def test_slurm_ci_runs_every_rule_that_may_ask_for_a_gpu_without_one():
    """The one-machine cluster has no GPU: a job asking for one would wait forever."""
    gpu_rules = {
        rule
        for rule, hook in hook_rules().items()
        if any(job_resources(hook, kind, {}).gpu for kind in [None, *(HOOKS[hook].components or ())])
    }
    assert {"train_model", "infer_model", "evaluate_model"} <= gpu_rules
    overrides = profile("slurm-ci")["set-resources"]
    assert {rule for rule in gpu_rules if overrides.get(rule, {}).get("gpu") == 0} == gpu_rules


# --- rules, resources and envs per job --------------------------------------------------------


def test_every_rule_that_runs_code_names_a_conda_env_file():
    """Snakefile's `rule all` only collects; every rule in rules/ runs a script."""
    for rule, body in rule_bodies().items():
        env = re.search(r"conda:\n\s+(.+)\n", body)
        assert env, f"rule {rule} names no conda env"
        if env.group(1).startswith('"'):
            assert (RULES / env.group(1).strip('"')).is_file(), (rule, env.group(1))


def test_every_hook_rule_takes_threads_resources_and_conda_env_from_its_job():
    rules = hook_rules()
    assert set(rules.values()) == set(HOOKS)
    for rule, hook in rules.items():
        body = rule_bodies()[rule]
        assert f'threads: JOB_RESOURCES.threads_of("{hook}")' in body, rule
        assert f'resources:\n        **JOB_RESOURCES.resources_of("{hook}"),\n' in body, rule
        assert f'conda:\n        JOB_RESOURCES.conda_env_of("{hook}")\n' in body, rule


def test_every_hook_and_component_names_an_existing_env_file():
    for hook in HOOKS.values():
        for kind in [None, *(hook.components or ())]:
            env = conda_env_file(hook.name, kind)
            assert (RULES / env).resolve().parent == ENVS, env
            assert (RULES / env).is_file(), f"{hook.name} {kind}: {env}"
    # plus sandflow.yaml for the assembly rules of rules/context.smk
    assert {f.stem for f in env_files()} == {*FAMILY_RESOURCES, "sandflow"}


def test_components_pick_their_own_family():
    assert family_of("ProcessDataHook", None) == "data-juicer"
    assert family_of("TrainModelHook", "huggingface") == "training"
    assert family_of("TrainModelHook", "easyanimate") == "easyanimate"
    assert family_of("TrainModelHook", "trinity-rft") == "trinity"
    assert family_of("InferModelHook", "vllm") == "vllm"
    assert family_of("EvaluateDataHook", "vbench_video_evaluator") == "vbench"
    assert family_of("EvaluateDataHook", "accuracy") == "data-juicer"
    assert family_of("EvaluateModelHook", "internvl_coco_caption") == "internvl"


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


# --- envs/*.yaml ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", env_files(), ids=lambda p: p.stem)
def test_env_file_is_a_conda_environment_spec(path: Path):
    env = yaml.safe_load(path.read_text())
    assert set(env) == {"name", "channels", "dependencies"}, path.name
    assert env["name"] == path.stem
    assert env["channels"] and all(isinstance(c, str) for c in env["channels"])
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip_sections = [d for d in env["dependencies"] if isinstance(d, dict)]
    assert all(CONDA_SPEC.match(d) for d in conda), conda
    # The workflow's Python: the script: directive unpickles Snakemake's job object with it.
    assert "python=3.11" in conda and "pip" in conda
    assert len(pip_sections) == 1 and list(pip_sections[0]) == ["pip"]
    pip = pip_sections[0]["pip"]
    assert pip and all(isinstance(p, str) and PIN.match(p) for p in pip), [p for p in pip if not PIN.match(str(p))]
    names = [PIN.match(p).group(1).lower() for p in pip]
    assert len(names) == len(set(names)), f"{path.name} pins a package twice"


@pytest.mark.parametrize("path", [p for p in env_files() if p.stem not in FOLLOWS_ITS_TOOL], ids=lambda p: p.stem)
def test_env_pins_follow_requirements_txt(path: Path):
    env = yaml.safe_load(path.read_text())
    (pip_section,) = [d for d in env["dependencies"] if isinstance(d, dict)]
    required = requirement_pins()
    differing = {}
    for entry in pip_section["pip"]:
        name, _, version = PIN.match(entry).groups()
        if required.get(name.lower(), version) != version:
            differing[name] = (version, required[name.lower()])
    assert set(differing) <= OWN_STACK.get(path.stem, set()), f"{path.name} differs from requirements.txt: {differing}"


def test_every_family_the_registry_names_has_resources_and_an_env():
    from sandflow.hooks.registry import HOOKS

    named = {hook.family for hook in HOOKS.values()}
    named |= {c.family for hook in HOOKS.values() for c in (hook.components or {}).values() if c.family}
    assert named == set(FAMILY_RESOURCES)
    assert named <= {f.stem for f in env_files()}
