"""The 000 guide's single-file form: every combination of its six sandbox keys plans into upstream's default
pipeline, or stops with one line naming the keys (planner only, no jobs run)."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path

import pytest

from sandflow.config.errors import ConfigError
from sandflow.config.load import load_config
from sandflow.plan.model import Job
from sandflow.plan.planner import plan_config

RECIPE = {
    "project_name": "t",
    "dataset_path": "data/in.jsonl",
    "export_path": "./out/processed.jsonl",
    "np": 1,
    "process": [{"text_length_filter": {"min_len": 5, "max_len": 500}}],
}
VALUES = {
    "path_k_sigma_recipe": "./out/k_sigma.yaml",
    "path_model_feedback_recipe": "./out/model_feedback.yaml",
    "model_infer_config": {"type": "huggingface", "model": "some/model", "export_path": "./out/infer/"},
    "model_train_config": {"type": "huggingface", "model_config": {"architecture": "gpt2"}, "export_path": "./m/"},
    "data_eval_config": {"type": "dj_text_quality_classifier"},
    "model_eval_config": {"type": "perplexity", "dataset_path": "data/in.jsonl", "export_path": "./out/eval/"},
}
COMBINATIONS = [keys for n in range(len(VALUES) + 1) for keys in itertools.combinations(VALUES, n)]

# Upstream's register_default_jobs, in its order: (label, hook, meta_name, the key that adds it or None: always).
DEFAULT_JOBS = [
    ("analysis_ori_data", "ProbeViaAnalyzerHook", "analysis_ori_data", None),
    ("analysis_ori_model", "ProbeViaModelInferHook", "analysis_ori_model", "model_infer_config"),
    ("k_sigma", "RefineRecipeViaKSigmaHook", "analysis_ori_data", "path_k_sigma_recipe"),
    ("model_feedback", "RefineRecipeViaModelFeedbackHook", "refine_via_model_feedback", "path_model_feedback_recipe"),
    ("process_data", "ProcessDataHook", "process_data", None),
    ("train_model", "TrainModelHook", "train_model", "model_train_config"),
    ("analysis_processed_data", "ProbeViaAnalyzerHook", "analysis_processed_data", None),
    ("analysis_trained_model", "ProbeViaModelInferHook", "analysis_trained_model", "model_infer_config"),
    ("eval_data", "EvaluateDataHook", "eval_data", "data_eval_config"),
    ("eval_model", "EvaluateModelHook", "eval_model", "model_eval_config"),
]


def expected_edges(keys: set[str]) -> set[tuple[str, str, str]]:
    """(producer, consumer, what the consumer reads): the graph the guide's four steps describe."""
    ks, mf = "path_k_sigma_recipe" in keys, "path_model_feedback_recipe" in keys
    edges = {
        ("process_data", "analysis_processed_data", "dj_configs.dataset_path"),
        ("process_data", "train_model", "extra_configs.dataset_path"),
        ("analysis_ori_data", "analysis_ori_model", "dj_configs.dataset_path"),
        ("analysis_ori_data", "k_sigma", "analysis"),
        ("analysis_ori_model", "model_feedback", "extra_configs.dataset_path"),
        ("k_sigma", "model_feedback", "dj_configs"),
        ("model_feedback" if mf else "k_sigma", "process_data", "dj_configs"),
        ("process_data", "analysis_trained_model", "dj_configs.dataset_path"),
        ("train_model", "analysis_trained_model", "extra_configs.model"),
        ("process_data", "eval_data", "extra_configs.dataset_path"),
        ("train_model", "eval_model", "extra_configs.ckpt_paths"),
    }
    present = {label for label, _, _, key in DEFAULT_JOBS if key is None or key in keys}
    if not ks and not mf:
        edges = {e for e in edges if e[1] != "process_data"}
    return {(a, b, what) for a, b, what in edges if a in present and b in present}


@pytest.fixture(autouse=True)
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data/in.jsonl").write_text('{"text": "hello world"}\n')
    return tmp_path


def plan_legacy(keys, values=VALUES):
    data = dict(copy.deepcopy(RECIPE), **{key: copy.deepcopy(values[key]) for key in keys})
    return plan_config(load_config(data, source="legacy.yaml"))


def graph(jobs: list[Job]) -> tuple[list[tuple[str, str]], set[tuple[str, str, str]]]:
    """The jobs' (hook, meta_name) in order, and every edge as (producer, consumer, what the consumer reads)."""
    labels = {(hook, meta): label for label, hook, meta, _ in DEFAULT_JOBS}
    name = {id(job): labels[(job.hook.name, job.cfg.meta_name)] for job in jobs}
    edges = set()
    for job in jobs:
        reads = [(ref.job, ".".join(map(str, ref.target))) for ref in job.refs]
        reads += [(source, section) for section, src in job.section_sources.items() for source in src.jobs]
        reads += [(source, link) for link, source in job.linked.items()]
        reads += [(c.job, ".".join(map(str, r.target))) for r in job.path_reads for c in r.candidates]
        edges |= {(name[id(source)], name[id(job)], what) for source, what in reads}
        # no edge beyond these: a job waits for exactly the jobs it reads
        assert {id(dep) for dep in job.deps} == {id(source) for source, _ in reads}, name[id(job)]
    return [(job.hook.name, job.cfg.meta_name) for job in jobs], edges


@pytest.mark.parametrize("keys", COMBINATIONS, ids=lambda keys: "+".join(keys) or "recipe_only")
def test_every_combination_plans_into_the_default_pipeline_or_names_the_missing_key(keys):
    keys = set(keys)
    if "path_model_feedback_recipe" in keys and "model_infer_config" not in keys:
        with pytest.raises(ConfigError) as info:
            plan_legacy(keys)
        assert str(info.value) == (
            "path_model_feedback_recipe: needs model_infer_config: the model-feedback refinement reads the "
            "model's answers on the probe sample (ProbeViaModelInferHook); without a model there is no feedback"
        )
        return
    jobs, edges = graph(plan_legacy(keys).jobs)
    assert jobs == [(hook, meta) for _, hook, meta, key in DEFAULT_JOBS if key is None or key in keys]
    assert edges == expected_edges(keys)


def test_both_recipes_chain_and_the_model_feedback_job_gets_the_models_answers():
    """The issue's case: k-sigma's recipe is refined again by model feedback, and process runs the last one."""
    jobs = {job.cfg.meta_name: job for job in plan_legacy(VALUES).jobs if job.hook.name != "ProbeViaAnalyzerHook"}
    feedback, process = jobs["refine_via_model_feedback"], jobs["process_data"]
    assert feedback.section_sources["dj_configs"].job.hook.name == "RefineRecipeViaKSigmaHook"
    assert [ref.text for ref in feedback.refs] == ["anonymous.analysis_ori_model.inference_result_path"]
    assert process.section_sources["dj_configs"].job is feedback
    # the model probe answers the analysed data, so each answer carries the stats model feedback reads
    analyser = plan_legacy(VALUES).jobs[0]
    assert analyser.cfg.dj_configs["export_original_dataset"] is True


def test_the_component_type_picks_the_key_its_dataset_goes_to(workspace: Path):
    """accuracy / mse compare a predicted dataset; ModelScope's trainer takes train_dataset (upstream's name);
    a component config may be a file, as in the guide."""
    (workspace / "eval.yaml").write_text("type: accuracy\npredicted_label_key: label\n")
    values = dict(VALUES, data_eval_config="eval.yaml", model_train_config={"type": "modelscope", "model_name": "m"})
    jobs = {job.cfg.meta_name: job for job in plan_legacy(["data_eval_config", "model_train_config"], values).jobs}
    assert [ref.target for ref in jobs["eval_data"].refs] == [("extra_configs", "predicted_dataset_path")]
    assert [ref.target for ref in jobs["train_model"].refs] == [("extra_configs", "train_dataset")]


def test_a_model_evaluated_without_training_keeps_its_own_checkpoint():
    jobs = plan_legacy(["model_eval_config"]).jobs
    assert jobs[-1].cfg.meta_name == "eval_model" and jobs[-1].refs == [] and jobs[-1].deps == []
    assert jobs[-1].cfg.extra_configs == VALUES["model_eval_config"]


def test_an_api_model_is_not_replaced_by_the_trained_checkpoint():
    api = {"type": "api", "model": "gpt-x", "api_key_env": "K", "export_path": "./out/i/"}
    values = dict(VALUES, model_infer_config=api)
    jobs = plan_legacy(["model_infer_config", "model_train_config"], values).jobs
    trained = next(job for job in jobs if job.cfg.meta_name == "analysis_trained_model")
    assert [ref.text for ref in trained.refs] == ["anonymous.process_data.processed_dataset_path"]


def test_a_bad_combination_writes_nothing(workspace: Path):
    with pytest.raises(ConfigError):
        plan_legacy(["path_k_sigma_recipe", "path_model_feedback_recipe"])
    assert sorted(p.name for p in workspace.iterdir()) == ["data"]
    assert json.loads((workspace / "data/in.jsonl").read_text()) == {"text": "hello world"}
