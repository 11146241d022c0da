"""Config loading, validation and planning: forms, refs, edges, keys and errors (no jobs run)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from sandflow.config.errors import ConfigError
from sandflow.config.load import load_config
from sandflow.plan.planner import plan_config

from helpers.recipe import RECIPE


@pytest.fixture(autouse=True)
def workspace(plan_dir: Path) -> Path:
    (plan_dir / "recipe.yaml").write_text(json.dumps(RECIPE))
    return plan_dir


def demo_like() -> dict:
    return {
        "work_dir": "./work",
        "probe_job_configs": [
            {"hook": "ProbeViaAnalyzerHook", "meta_name": "analysis_ori_data", "dj_configs": "recipe.yaml"}
        ],
        "refine_recipe_job_configs": [
            {
                "hook": "RefineRecipeViaKSigmaHook",
                "meta_name": "analysis_ori_data",
                "output": "refined_recipe_path",
                "dj_configs": "recipe.yaml",
                "extra_configs": {"path_k_sigma_recipe": "./out/k_sigma.yaml"},
            }
        ],
        "execution_job_configs": [
            {
                "hook": "ProcessDataHook",
                "meta_name": "process",
                "output": "processed_dataset_path",
                "input": {"dj_configs": "-1.refined_recipe_path"},
                "dj_configs": "<replaced>",
            }
        ],
        "evaluation_job_configs": [
            {
                "hook": "ProbeViaAnalyzerHook",
                "meta_name": "analysis_processed_data",
                "input": {"dj_configs.dataset_path": "anonymous.process.processed_dataset_path"},
                "dj_configs": "recipe.yaml",
            }
        ],
    }


def plan(data: dict):
    return plan_config(load_config(copy.deepcopy(data), source="test.yaml"))


def error_of(data: dict) -> str:
    with pytest.raises(ConfigError) as info:
        plan(data)
    return str(info.value)


def keys(data: dict) -> list[str]:
    return [job.key for job in plan(data).jobs]


def test_single_form_is_the_anonymous_pipeline_in_sequential_order():
    result = plan(demo_like())
    assert [(j.cfg.pipeline, j.cfg.meta_name, j.hook.name) for j in result.jobs] == [
        ("anonymous", "analysis_ori_data", "ProbeViaAnalyzerHook"),
        ("anonymous", "analysis_ori_data", "RefineRecipeViaKSigmaHook"),
        ("anonymous", "process", "ProcessDataHook"),
        ("anonymous", "analysis_processed_data", "ProbeViaAnalyzerHook"),
    ]
    probe, refine, process, analyse = result.jobs
    assert refine.deps == [probe] and refine.linked == {"analysis": probe}
    assert process.deps == [refine] and process.section_sources["dj_configs"].index == 0
    assert analyse.deps == [process]
    assert len({j.key for j in result.jobs}) == 4 and all(len(k) == 16 for k in keys(demo_like()))


def test_both_pipeline_forms_give_the_same_jobs_and_keys():
    body = {k: v for k, v in demo_like().items() if k != "work_dir"}
    as_mapping = {"work_dir": "./work", "pipelines": {"anonymous": body}}
    as_list = {"work_dir": "./work", "pipelines": [{"anonymous": body}]}
    assert keys(as_mapping) == keys(as_list) == keys(demo_like())


def test_both_forms_at_once_is_an_error():
    data = demo_like()
    data["pipelines"] = {"p": {"probe_job_configs": data["probe_job_configs"]}}
    assert "both pipeline forms at once" in error_of(data)


def test_legacy_single_file_form_becomes_its_default_pipeline():
    legacy = dict(RECIPE, path_k_sigma_recipe="./out/k.yaml")
    hooks = [(j.hook.name, j.cfg.meta_name) for j in plan(legacy).jobs]
    assert hooks == [
        ("ProbeViaAnalyzerHook", "analysis_ori_data"),
        ("RefineRecipeViaKSigmaHook", "analysis_ori_data"),
        ("ProcessDataHook", "process_data"),
        ("ProbeViaAnalyzerHook", "analysis_processed_data"),
    ]


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (
            lambda d: d["probe_job_configs"][0].update(hook="ProbeViaAnalyserHook"),
            "probe_job_configs[0].hook: unknown hook 'ProbeViaAnalyserHook' (did you mean 'ProbeViaAnalyzerHook'?)",
        ),
        (
            lambda d: d["probe_job_configs"][0].update(hok="x"),
            "probe_job_configs[0].hok: unknown key (did you mean 'hook'?)",
        ),
        (
            lambda d: d["execution_job_configs"][0]["input"].update({"dj_configs": "-1.refined"}),
            "execution_job_configs[0].input['dj_configs']: job anonymous.analysis_ori_data (refine_recipe_job_configs[0], RefineRecipeViaKSigmaHook) has no output 'refined'",
        ),
        (
            lambda d: d["evaluation_job_configs"][0]["input"].update(
                {"dj_configs.dataset_path": "other.process.processed_dataset_path"}
            ),
            "evaluation_job_configs[0].input['dj_configs.dataset_path']: 'other.process.processed_dataset_path': no pipeline 'other'",
        ),
        (
            lambda d: d["execution_job_configs"][0]["input"].update(
                {"dj_configs": "anonymous.analysis_processed_data.0"}
            ),
            "runs after this one (evaluation_job_configs[0])",
        ),
        (
            lambda d: d["probe_job_configs"][0].update(input={"dj_configs.dataset_path": "-1.x"}),
            "probe_job_configs[0].input['dj_configs.dataset_path']: '-1.x': there is no job before this one",
        ),
        (
            lambda d: d["probe_job_configs"][0].update(dj_configs="missing.yaml"),
            "probe_job_configs[0].dj_configs: file not found: missing.yaml",
        ),
        (
            lambda d: d["execution_job_configs"][0]["input"].update({"dataset_path": "-1.refined_recipe_path"}),
            "target 'dataset_path' must be 'dj_configs' or 'extra_configs'",
        ),
        (lambda d: d.update(max_iter_num=0), "max_iter_num: 0 means 'until iter_targets are met'"),
        (lambda d: d.update(iter_targets=["anonymous.process.processed_dataset_path ~ 3"]), "iter_targets[0]: "),
        (lambda d: d.update(iter_targets=["anonymous.process.nothing >= 3"]), "iter_targets[0]: job anonymous.process"),
    ],
)
def test_bad_configs_name_their_place(mutate, expected):
    data = demo_like()
    mutate(data)
    assert expected in error_of(data)


def test_missing_dataset_names_the_key(workspace: Path):
    (workspace / "data/in.jsonl").unlink()
    message = error_of(demo_like())
    assert message.startswith("probe_job_configs[0].dj_configs.dataset_path: file not found: data/in.jsonl")


def test_unknown_component_type_and_output_count():
    data = demo_like()
    data["evaluation_job_configs"].append({"hook": "EvaluateDataHook", "extra_configs": {"type": "mes"}})
    assert "unknown EvaluateDataHook type 'mes' (did you mean 'mse'?)" in error_of(data)
    data["evaluation_job_configs"][-1] = {
        "hook": "EvaluateDataHook",
        "output": ["a", "b", "c"],
        "extra_configs": {"type": "mse"},
    }
    assert "evaluation_job_configs[1].output: names 3 output(s) but EvaluateDataHook 'mse' returns 2" in error_of(data)


def test_shared_meta_name_resolves_to_the_job_with_that_output_and_ambiguity_is_an_error():
    data = demo_like()
    data["evaluation_job_configs"].append(
        {
            "hook": "ProbeViaAnalyzerHook",
            "dj_configs": "recipe.yaml",
            "input": {"dj_configs.dataset_path": "anonymous.analysis_ori_data.refined_recipe_path"},
        }
    )
    assert plan(data).jobs[-1].refs[0].job.hook.name == "RefineRecipeViaKSigmaHook"
    data["execution_job_configs"].append(
        {
            "hook": "ProcessDataHook",
            "meta_name": "analysis_ori_data",
            "dj_configs": "recipe.yaml",
            "output": "refined_recipe_path",
        }
    )
    assert "is ambiguous: 2 jobs named anonymous.analysis_ori_data" in error_of(data)


def test_numeric_and_res_names_of_unnamed_outputs():
    data = demo_like()
    data["evaluation_job_configs"][0]["input"] = {"dj_configs.dataset_path": "anonymous.analysis_ori_data.res_1"}
    assert plan(data).jobs[-1].refs[0].index == 0
    data["evaluation_job_configs"][0]["input"] = {"dj_configs.dataset_path": "anonymous.analysis_ori_data.1"}
    assert "none of the 2 jobs named anonymous.analysis_ori_data has an output '1'" in error_of(data)


def test_key_ignores_publishing_and_runtime_settings_but_not_work():
    base = keys(demo_like())
    moved = demo_like()
    moved["work_dir"] = "./elsewhere"
    moved["refine_recipe_job_configs"][0]["extra_configs"]["path_k_sigma_recipe"] = "./other/place/k_sigma.yaml"
    assert keys(moved) == base
    recipe = dict(RECIPE, np=8, export_path="./another/dir/processed.jsonl")
    Path("recipe.yaml").write_text(json.dumps(recipe))
    assert keys(demo_like())[0] == base[0], "np and the export directory stay out of the probe's key"
    recipe["process"] = [{"text_length_filter": {"min_len": 6, "max_len": 500}}]
    Path("recipe.yaml").write_text(json.dumps(recipe))
    changed = keys(demo_like())
    assert all(a != b for a, b in zip(changed, base)), "a recipe change reaches every job downstream"


def test_dataset_content_is_in_the_key_and_only_downstream_keys_change():
    base = keys(demo_like())
    data = demo_like()
    data["evaluation_job_configs"][0]["local"] = {"dj_configs.process": [{"words_num_filter": {"min_num": 2}}]}
    changed = keys(data)
    assert changed[:3] == base[:3] and changed[3] != base[3]
    Path("data/in.jsonl").write_text('{"text": "other"}\n')
    assert keys(demo_like())[0] != base[0]


def test_literal_iter_path_is_an_edge_to_the_latest_writer():
    data = demo_like()
    data["evaluation_job_configs"] = [
        {
            "hook": "ProcessDataHook",
            "meta_name": "reprocess",
            "dj_configs": dict(RECIPE, dataset_path="./out/iter_1/processed.jsonl", export_path="./out/again.jsonl"),
        },
        {
            "hook": "ProcessDataHook",
            "meta_name": "raw_path",
            "dj_configs": dict(RECIPE, dataset_path="./out/again.jsonl", export_path="./out/third.jsonl"),
        },
    ]
    jobs = plan(data).jobs
    reprocess, raw_path = jobs[3], jobs[4]
    # The processed export is only known at run time (its recipe comes from k-sigma), so the
    # latest writer known now of ./out/processed.jsonl is the probe's export.
    assert [c.job for c in reprocess.path_reads[0].candidates] == [jobs[0]]
    assert reprocess.path_reads[0].candidates[0].slot == "dj_configs.export_path"
    assert [c.job for c in raw_path.path_reads[0].candidates] == [reprocess]


def test_static_iterations_share_keys():
    data = demo_like()
    data["max_iter_num"] = 2
    jobs = plan(data).jobs
    assert [j.iteration for j in jobs] == [1, 1, 1, 1, 2, 2, 2, 2]
    assert [j.key for j in jobs[:4]] == [j.key for j in jobs[4:]]


def test_a_user_function_file_is_in_the_key():
    """parse_output_func as module:function: editing that file reruns the inference (and what reads it)."""
    Path("mine").mkdir()
    Path("mine/parsers.py").write_text("def first(output, item, **kwargs):\n    return output[:1]\n")
    data = {
        "work_dir": "./work",
        "execution_job_configs": [
            {
                "hook": "InferModelHook",
                "meta_name": "infer",
                "output": "answers",
                "extra_configs": {
                    "type": "huggingface",
                    "model": "data",
                    "dataset_path": "data/in.jsonl",
                    "parse_output_func": "mine.parsers:first",
                    "export_path": "./out/",
                },
            }
        ],
    }
    before = keys(data)
    assert keys(data) == before
    Path("mine/parsers.py").write_text("def first(output, item, **kwargs):\n    return output[:2]\n")
    assert keys(data) != before
    # A built-in name and a module outside the working directory are taken as names.
    data["execution_job_configs"][0]["extra_configs"]["parse_output_func"] = "parse_output"
    named = keys(data)
    data["execution_job_configs"][0]["extra_configs"]["parse_output_func"] = "json:loads"
    assert keys(data) != named and keys(data) == keys(data)
