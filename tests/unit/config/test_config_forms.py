"""The readable config forms (docs/config-forms.md): variables, the iterate block and jobs.<meta_name> refs plan
exactly what the config written out plans. Their bad-input cases are in tests/data/bad_configs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from sandflow.config.errors import ConfigError
from sandflow.config.load import load_config
from sandflow.config.schema import schema_error
from sandflow.core.layout import decision_path
from sandflow.plan.planner import Planner

from helpers.paths import REPO, copy_from_repo

DOC = REPO / "docs" / "config-forms.md"
WRITTEN_OUT = "# written out"


@pytest.fixture
def configs_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    copy_from_repo(tmp_path, "configs/iterate", "configs/apo", "configs/data/apo", "configs/demo", "configs/data/demo")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DEMO_DATA_DIR", "configs/data/demo")  # the ${env:...} example in the doc
    return tmp_path


def plan_of(raw: dict) -> Planner:
    """The planner after planning: its iterations and schedule, and the plan's jobs."""
    planner = Planner(load_config(raw, source="test.yaml"))
    planner.plan()
    return planner


def keys(plan: Planner) -> list[list[str]]:
    return [[job.key for job in jobs] for jobs in plan.iterations]


def go_on(plan: Planner, iteration: int) -> None:
    """The decision file that says iteration N missed its targets, so N+1 is planned."""
    path = Path(decision_path(plan.work_dir, iteration, plan.schedule.digest(iteration)))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"next_iteration": True}))


# --- the twin of configs/iterate/sandbox.yaml --------------------------------------------------------------


def test_the_readable_twin_of_the_iterate_config_plans_the_same_keys_and_decisions(configs_copy: Path):
    def planned(name: str) -> Planner:
        raw = yaml.safe_load((configs_copy / "configs/iterate" / name).read_text())
        return plan_of(raw)

    original, readable = planned("sandbox.yaml"), planned("sandbox_readable.yaml")
    assert "${" in (configs_copy / "configs/iterate/sandbox_readable.yaml").read_text()
    assert keys(original) == keys(readable) and len(keys(original)[0]) == 7
    assert original.schedule.digest(1) == readable.schedule.digest(1)
    assert original.schedule.spec(1) == readable.schedule.spec(1)
    # Iteration 2, where the update reaches the generation job, and its decision too.
    go_on(original, 1)  # the same file for both: the digests are equal
    original, readable = planned("sandbox.yaml"), planned("sandbox_readable.yaml")
    assert [len(k) for k in keys(readable)] == [7, 7] and keys(original) == keys(readable)
    assert original.schedule.digest(2) == readable.schedule.digest(2)
    assert [ref.text for ref in readable.iterations[1][0].refs] == [
        "select_and_merge_data_pools.merge_single_prompt_data_pools.merged_top_prompt_dataset"
    ]
    assert readable.config.variables == {
        "out": "./outputs/iterate",
        "model_server": "http://127.0.0.1:8766/v1",
        "key_variable": "ITERATE_API_KEY",
    }


# --- every example in docs/config-forms.md --------------------------------------------------------------------


def doc_examples() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)


def test_the_doc_has_examples_of_each_form_and_pairs_to_compare():
    examples = doc_examples()
    assert len(examples) >= 6
    assert sum(example.startswith(WRITTEN_OUT) for example in examples) >= 2
    for form in ("variables:", "iterate:", "jobs.", "${env:"):
        assert any(form in example for example in examples), form


@pytest.mark.parametrize("position", range(len(doc_examples())))
def test_each_doc_example_plans_and_each_written_out_pair_plans_the_same(configs_copy: Path, position: int):
    examples = doc_examples()
    plan = plan_of(yaml.safe_load(examples[position]))
    assert plan.jobs and all(job.key for job in plan.jobs)
    if examples[position].startswith(WRITTEN_OUT):
        sugar = plan_of(yaml.safe_load(examples[position - 1]))
        assert "${" in examples[position - 1] and keys(sugar) == keys(plan)
        assert [job.where for job in sugar.jobs] == [job.where for job in plan.jobs]
        if plan.config.iter_targets:
            assert sugar.schedule.digest(1) == plan.schedule.digest(1)
            assert (sugar.config.iter_targets, sugar.config.iter_updater) == (
                plan.config.iter_targets,
                plan.config.iter_updater,
            )


# --- variables ---------------------------------------------------------------------------------------------------


def process_job(dj_configs: dict | str) -> dict:
    return {"work_dir": "./work", "execution_job_configs": [{"hook": "ProcessDataHook", "dj_configs": dj_configs}]}


RECIPE = {
    "dataset_path": "configs/data/demo/demo-dataset.jsonl",
    "export_path": "./out/data.jsonl",
    "np": 1,
    "process": [{"text_length_filter": {"min_len": 40}}],
}


def test_a_whole_value_keeps_its_type_text_is_spliced_escapes_stay_literal(configs_copy: Path):
    raw = process_job(
        {
            **RECIPE,
            "export_path": "${out}/data-${n}.jsonl",
            "np": "${n}",
            "text_keys": "$${not_a_variable} and ${flag}",
        }
    )
    raw["variables"] = {"out": "./out", "n": 2, "flag": True, "nested": "${out}/more"}
    config = load_config(raw)
    sections = config.jobs()[0].dj_configs
    assert sections["np"] == 2 and sections["export_path"] == "./out/data-2.jsonl"
    assert sections["text_keys"] == "${not_a_variable} and true"
    assert config.variables == {"out": "./out", "n": 2, "flag": True, "nested": "./out/more"}


def test_recipe_files_and_job_files_are_substituted_and_the_env_values_are_recorded(
    configs_copy: Path, monkeypatch: pytest.MonkeyPatch
):
    Path("recipe.yaml").write_text(yaml.safe_dump({**RECIPE, "dataset_path": "${env:DEMO_DATA_DIR}/${name}"}))
    Path("job.yaml").write_text(yaml.safe_dump({"hook": "ProcessDataHook", "dj_configs": "${recipe}"}))
    raw = {"work_dir": "./work", "variables": {"recipe": "recipe.yaml", "name": "demo-dataset.jsonl"}}
    plan = plan_of({**raw, "execution_job_configs": ["job.yaml"]})
    written_out = plan_of(process_job(RECIPE))
    assert plan.jobs[0].sections["dj_configs"]["dataset_path"] == "configs/data/demo/demo-dataset.jsonl"
    assert plan.jobs[0].key == written_out.jobs[0].key
    assert plan.config.variables["env:DEMO_DATA_DIR"] == "configs/data/demo"
    # A changed environment is a changed plan: the key follows the file the value names.
    Path("elsewhere").mkdir()
    Path("elsewhere/demo-dataset.jsonl").write_text('{"text": "another dataset entirely"}\n')
    monkeypatch.setenv("DEMO_DATA_DIR", "elsewhere")
    assert plan_of({**raw, "execution_job_configs": ["job.yaml"]}).jobs[0].key != plan.jobs[0].key


@pytest.mark.parametrize(
    "variables, value, where, message",
    [
        ({"a": "${b}", "b": "x"}, "x", "variables.a", "undefined variable ${b} (no `variables:` defined)"),
        ({"a": ["x"]}, "x", "variables.a", "must be a string, number or boolean, got a list"),
        ({"2a": "x"}, "x", "variables.2a", "a variable's name is letters, digits and _"),
        ({}, "${a b}", "execution_job_configs[0].dj_configs.export_path", "${a b} is not a variable"),
        ({}, "${env:HF_TOKEN}", "execution_job_configs[0].dj_configs.export_path", "looks like a secret"),
    ],
)
def test_bad_variables_name_their_place(configs_copy: Path, variables: dict, value: str, where: str, message: str):
    with pytest.raises(ConfigError) as error:
        load_config({**process_job({**RECIPE, "export_path": value}), "variables": variables})
    assert error.value.where == where and message in error.value.message


def test_the_schema_accepts_the_new_top_level_keys():
    raw = {**process_job(RECIPE), "variables": {"a": "x", "n": 1}, "iterate": {"until": ["a.b.c <= 1"], "mode": "any"}}
    assert schema_error(raw) is None
    assert schema_error({**raw, "iterate": {"max_iterations": 0}}).where == "iterate.max_iterations"


# --- the iterate block and jobs. refs --------------------------------------------------------------------------------


def two_pipelines(ref: str) -> dict:
    job = {"hook": "ProcessDataHook", "meta_name": "process", "output": "out", "dj_configs": RECIPE}
    reader = {**job, "meta_name": "read", "input": {"dj_configs.dataset_path": ref}}
    return {
        "work_dir": "./work",
        "pipelines": {"p1": {"execution_job_configs": [job]}, "p2": {"execution_job_configs": [reader]}},
    }


def test_a_jobs_ref_is_the_long_ref_and_a_pipeline_named_jobs_keeps_the_upstream_meaning(configs_copy: Path):
    short, long = plan_of(two_pipelines("jobs.process.out")), plan_of(two_pipelines("p1.process.out"))
    assert keys(short) == keys(long) and short.jobs[1].refs[0].job is short.jobs[0]
    raw = two_pipelines("jobs.process.out")
    raw["pipelines"] = {"jobs": raw["pipelines"]["p1"], "p2": raw["pipelines"]["p2"]}
    assert load_config(raw).jobs()[1].inputs == {"dj_configs.dataset_path": "jobs.process.out"}


def test_iterate_errors_found_when_planning_name_the_place_written(configs_copy: Path):
    raw = {**two_pipelines("jobs.process.out"), "iterate": {"until": ["jobs.read.out <= 1", "jobs.read.nope <= 1"]}}
    with pytest.raises(ConfigError) as error:
        plan_of(raw)
    assert error.value.where == "iterate.until[1]" and "has no output 'nope'" in error.value.message
    update = {"source": "jobs.read.out", "target": "jobs.process.dataset_path"}
    with pytest.raises(ConfigError) as error:
        plan_of({**raw, "iterate": {"max_iterations": 2, "update": [update]}})
    assert error.value.where == "iterate.update[0]" and "must be <pipeline>.<meta_name>" in error.value.message
    twice = [{**update, "target": "jobs.process.dj_configs.a"}, {**update, "target": "jobs.process.dj_configs.b"}]
    with pytest.raises(ConfigError) as error:
        plan_of({**raw, "iterate": {"max_iterations": 2, "update": twice}})
    assert error.value.where == "iterate.update[1].source" and "already the source of update[0]" in error.value.message
