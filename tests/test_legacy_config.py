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


@pytest.mark.slow
def test_both_recipes_run_on_the_demo_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The guide's form with k-sigma and model feedback: the model (a local stand-in for an API model) answers a
    probe sample of the analysed demo data; model feedback narrows k-sigma's recipe to that sample's stat ranges;
    process runs the result."""
    import yaml
    from conftest import chat_server, copy_from_repo, finished_counts, snakemake

    copy_from_repo(tmp_path, "configs/demo", "configs/data/demo")
    monkeypatch.setenv("SANDFLOW_TEST_LEGACY_KEY", "sk-test-legacy")
    recipe = yaml.safe_load((tmp_path / "configs/demo/process.yaml").read_text())
    with chat_server(lambda messages: "ok") as server:
        config = dict(
            recipe,
            work_dir="./outputs/legacy",
            data_probe_ratio=0.05,
            path_k_sigma_recipe="./outputs/legacy/k_sigma_recipe.yaml",
            path_model_feedback_recipe="./outputs/legacy/model_feedback_recipe.yaml",
            model_infer_config={
                "type": "api",
                "model": "stand-in",
                "model_params": {"base_url": server.url, "timeout": 10},
                "api_key_env": "SANDFLOW_TEST_LEGACY_KEY",
                "func_kwargs": {"query_key": "text"},
                "export_path": "./outputs/legacy/inference/",
            },
        )
        (tmp_path / "legacy.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        result = snakemake(tmp_path, "legacy.yaml")
        answered = len(server.requests)
    assert finished_counts(result)["context_infos"] == 1
    jobs = {hook.name: sorted(hook.iterdir()) for hook in (tmp_path / "outputs/legacy/jobs").iterdir() if hook.is_dir()}
    assert {hook: len(dirs) for hook, dirs in jobs.items()} == {
        "ProbeViaAnalyzerHook": 2,
        "ProbeViaModelInferHook": 2,
        "RefineRecipeViaKSigmaHook": 1,
        "RefineRecipeViaModelFeedbackHook": 1,
        "ProcessDataHook": 1,
    }
    context = {hook: json.loads((dirs[0] / "context.json").read_text()) for hook, dirs in jobs.items()}
    k_sigma = yaml.safe_load((tmp_path / "outputs/legacy/k_sigma_recipe.yaml").read_text())
    feedback = yaml.safe_load((tmp_path / "outputs/legacy/model_feedback_recipe.yaml").read_text())

    # model feedback read the model's answers, which carry the stats of the analysed samples
    feedback_config = context["RefineRecipeViaModelFeedbackHook"]["config"]
    answers_path = feedback_config["extra_configs"]["dataset_path"]
    answers = [json.loads(line) for line in (tmp_path / answers_path).read_text().splitlines()]
    assert 100 < len(answers) < 200 and all(row["response"] == "ok" for row in answers)  # 5 % of 3,000
    # the model was asked once per answer of the two probes (original and processed data)
    inference_files = [path for d in jobs["ProbeViaModelInferHook"] for path in d.glob("*/*_inference.jsonl")]
    assert answered == sum(len(path.read_text().splitlines()) for path in inference_files) > len(answers)
    lengths = [row["__dj__stats__"]["text_len"] for row in answers]
    assert feedback["process"][0]["text_length_filter"] == {"min_len": min(lengths), "max_len": max(lengths)}
    # ... starting from k-sigma's recipe, not the original one
    assert feedback_config["dj_configs"]["process"] == k_sigma["process"]
    assert k_sigma["process"] != recipe["process"]
    # the probe sample holds some planted noise: the lower bound tightens, the upper one widens (docs/legacy-config.md)
    before, after = k_sigma["process"][0]["text_length_filter"], feedback["process"][0]["text_length_filter"]
    assert after["min_len"] > before["min_len"] and after["max_len"] > before["max_len"]
    # process ran the model-feedback recipe, and every sample it kept is inside its text length range
    assert context["ProcessDataHook"]["config"]["dj_configs"]["process"] == feedback["process"]
    processed = (tmp_path / context["ProcessDataHook"]["values"][0]).read_text().splitlines()
    assert 0 < len(processed) < 3000
    assert all(min(lengths) <= len(json.loads(line)["text"]) <= max(lengths) for line in processed)
