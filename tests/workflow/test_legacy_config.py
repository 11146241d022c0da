"""The 000 guide's single-file form: every combination of its six sandbox keys plans into upstream's default
pipeline (planner only, no jobs run); two slow tests run the model-feedback cases on the demo data."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from typing import NamedTuple

import pytest

from sandflow.config.load import load_config
from sandflow.core.jsonl import read_objects
from sandflow.plan.model import Job
from sandflow.plan.planner import plan_config

from helpers.recipe import RECIPE

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
        # model feedback reads the model's answers, or without a model the analysed original data
        (
            "analysis_ori_model" if "model_infer_config" in keys else "analysis_ori_data",
            "model_feedback",
            "extra_configs.dataset_path",
        ),
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
def workspace(plan_dir: Path) -> Path:
    return plan_dir


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
def test_every_combination_plans_into_the_default_pipeline(keys, workspace: Path):
    keys = set(keys)
    plan = plan_legacy(keys)
    jobs, edges = graph(plan.jobs)
    assert jobs == [(hook, meta) for _, hook, meta, key in DEFAULT_JOBS if key is None or key in keys]
    assert edges == expected_edges(keys)
    # the first analyser exports the analysed rows exactly when a job reads them, beside process's export
    exports = "model_infer_config" in keys or "path_model_feedback_recipe" in keys
    analyser = plan.jobs[0].cfg.dj_configs
    assert analyser.get("export_original_dataset", False) is exports
    assert analyser["export_path"] == ("./out/processed_analysed.jsonl" if exports else RECIPE["export_path"])
    assert sorted(p.name for p in workspace.iterdir()) == ["data"]  # planning writes nothing


@pytest.mark.parametrize(
    ("keys", "feedback_reads"),
    [
        (VALUES, "anonymous.analysis_ori_model.inference_result_path"),
        (["path_k_sigma_recipe", "path_model_feedback_recipe"], "anonymous.analysis_ori_data.analysed_dataset_path"),
    ],
    ids=["with_a_model", "issue_case_without_a_model"],
)
def test_both_recipes_chain_and_model_feedback_reads_rows_with_stats(keys, feedback_reads):
    """The issue's case: k-sigma's recipe is refined again by model feedback, and process runs the last one;
    model feedback reads the model's answers on the analysed rows, or without a model the analysed rows."""
    plan = plan_legacy(keys)
    jobs = {job.cfg.meta_name: job for job in plan.jobs if job.hook.name != "ProbeViaAnalyzerHook"}
    feedback, process = jobs["refine_via_model_feedback"], jobs["process_data"]
    assert feedback.section_sources["dj_configs"].job.hook.name == "RefineRecipeViaKSigmaHook"
    assert [ref.text for ref in feedback.refs] == [feedback_reads]
    assert process.section_sources["dj_configs"].job is feedback
    assert plan.jobs[0].cfg.dj_configs["export_original_dataset"] is True


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


def test_check_prints_what_model_feedback_reads_without_a_model(workspace: Path, capsys: pytest.CaptureFixture[str]):
    """`sandflow check` on the issue's case: model feedback reads the analyser's exported rows (job 1), which
    land beside process's export rather than on it; no model job appears."""
    from sandflow.cli import check

    data = dict(RECIPE, **{key: VALUES[key] for key in ("path_k_sigma_recipe", "path_model_feedback_recipe")})
    (workspace / "legacy.yaml").write_text(json.dumps(data))
    assert check("legacy.yaml") == 0
    out = capsys.readouterr().out
    assert "extra_configs.dataset_path <- output 0 of job 1 (anonymous.analysis_ori_data.analysed_dataset_path)" in out
    assert "writes ./out/iter_1/processed_analysed.jsonl" in out
    assert "Infer" not in out and "analysis_ori_model" not in out


class DemoRun(NamedTuple):
    recipe: dict  # the demo recipe as written
    jobs: dict[str, list[Path]]  # hook -> its job directories
    contexts: dict[str, list[dict]]  # hook -> the context.json of each of its jobs
    context: dict[str, dict]  # hook -> the context.json of its one job (hooks that ran once)
    k_sigma: dict  # the recipes the two refinements wrote
    feedback: dict


def run_both_recipes_on_the_demo_data(tmp_path: Path, **keys: object) -> DemoRun:
    """The guide's form with k-sigma, model feedback and these keys, run by snakemake on a copy of the demo data."""
    import yaml

    from helpers.paths import copy_from_repo
    from helpers.snakemake import finished_counts, snakemake

    copy_from_repo(tmp_path, "configs/demo", "configs/data/demo")
    recipe = yaml.safe_load((tmp_path / "configs/demo/process.yaml").read_text())
    config = dict(
        recipe,
        work_dir="./outputs/legacy",
        path_k_sigma_recipe="./outputs/legacy/k_sigma_recipe.yaml",
        path_model_feedback_recipe="./outputs/legacy/model_feedback_recipe.yaml",
        **keys,
    )
    (tmp_path / "legacy.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    assert finished_counts(snakemake(tmp_path, "legacy.yaml"))["context_infos"] == 1
    jobs = {hook.name: sorted(hook.iterdir()) for hook in (tmp_path / "outputs/legacy/jobs").iterdir() if hook.is_dir()}
    contexts = {hook: [json.loads((d / "context.json").read_text()) for d in dirs] for hook, dirs in jobs.items()}
    context = {hook: only for hook, (only, *more) in contexts.items() if not more}
    k_sigma, feedback = (
        yaml.safe_load((tmp_path / f"outputs/legacy/{name}_recipe.yaml").read_text())
        for name in ("k_sigma", "model_feedback")
    )
    # model feedback refined k-sigma's recipe, not the original one, and process ran model feedback's
    assert context["RefineRecipeViaModelFeedbackHook"]["config"]["dj_configs"]["process"] == k_sigma["process"]
    assert k_sigma["process"] != recipe["process"]
    assert context["ProcessDataHook"]["config"]["dj_configs"]["process"] == feedback["process"]
    return DemoRun(recipe, jobs, contexts, context, k_sigma, feedback)


@pytest.mark.slow
def test_both_recipes_run_on_the_demo_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The guide's form with k-sigma and model feedback: the model (a local stand-in for an API model) answers a
    probe sample of the analysed demo data; model feedback narrows k-sigma's recipe to that sample's stat ranges;
    process runs the result."""
    from helpers.chat import chat_server

    monkeypatch.setenv("SANDFLOW_TEST_LEGACY_KEY", "sk-test-legacy")
    with chat_server(lambda messages: "ok") as server:
        run = run_both_recipes_on_the_demo_data(
            tmp_path,
            data_probe_ratio=0.05,
            model_infer_config={
                "type": "api",
                "model": "stand-in",
                "model_params": {"base_url": server.url, "timeout": 10},
                "api_key_env": "SANDFLOW_TEST_LEGACY_KEY",
                "func_kwargs": {"query_key": "text"},
                "export_path": "./outputs/legacy/inference/",
            },
        )
        answered = len(server.requests)
    assert {hook: len(dirs) for hook, dirs in run.jobs.items()} == {
        "ProbeViaAnalyzerHook": 2,
        "ProbeViaModelInferHook": 2,
        "RefineRecipeViaKSigmaHook": 1,
        "RefineRecipeViaModelFeedbackHook": 1,
        "ProcessDataHook": 1,
    }
    # model feedback read the model's answers, which carry the stats of the analysed samples
    answers = read_objects(
        tmp_path / run.context["RefineRecipeViaModelFeedbackHook"]["config"]["extra_configs"]["dataset_path"]
    )
    assert 100 < len(answers) < 200 and all(row["response"] == "ok" for row in answers)  # 5 % of 3,000
    # the model was asked once per answer of the two probes (original and processed data)
    inference_files = [path for d in run.jobs["ProbeViaModelInferHook"] for path in d.glob("*/*_inference.jsonl")]
    assert answered == sum(len(path.read_text().splitlines()) for path in inference_files) > len(answers)
    lengths = [row["__dj__stats__"]["text_len"] for row in answers]
    assert run.feedback["process"][0]["text_length_filter"] == {"min_len": min(lengths), "max_len": max(lengths)}
    # the probe sample holds some planted noise: the lower bound tightens, the upper one widens (docs/legacy-config.md)
    before, after = run.k_sigma["process"][0]["text_length_filter"], run.feedback["process"][0]["text_length_filter"]
    assert after["min_len"] > before["min_len"] and after["max_len"] > before["max_len"]
    # every sample process kept is inside model feedback's text length range
    processed = read_objects(tmp_path / run.context["ProcessDataHook"]["values"][0])
    assert 0 < len(processed) < 3000
    assert all(min(lengths) <= len(row["text"]) <= max(lengths) for row in processed)


# The demo recipe's filters: op -> (stat, min argument, max argument).
DEMO_THRESHOLDS = {
    "text_length_filter": ("text_len", "min_len", "max_len"),
    "alphanumeric_filter": ("alnum_ratio", "min_ratio", "max_ratio"),
    "special_characters_filter": ("special_char_ratio", "min_ratio", "max_ratio"),
    "character_repetition_filter": ("char_rep_ratio", "min_ratio", "max_ratio"),
    "words_num_filter": ("num_words", "min_num", "max_num"),
}


@pytest.mark.slow
def test_the_issue_case_without_a_model_runs_on_the_demo_data(tmp_path: Path):
    """The issue's case, only path_k_sigma_recipe and path_model_feedback_recipe: model feedback reads the
    analysed original rows, so its thresholds are the data's observed stat ranges (no model signal), which
    widen k-sigma's back out: process runs that recipe and keeps every sample (docs/legacy-config.md)."""
    run = run_both_recipes_on_the_demo_data(tmp_path)
    assert {hook: len(dirs) for hook, dirs in run.jobs.items()} == {
        "ProbeViaAnalyzerHook": 2,
        "RefineRecipeViaKSigmaHook": 1,
        "RefineRecipeViaModelFeedbackHook": 1,
        "ProcessDataHook": 1,
    }
    analysed_path = run.context["RefineRecipeViaModelFeedbackHook"]["config"]["extra_configs"]["dataset_path"]
    # The first analyser is the one reading the original data (job directories sort by key, not by order).
    analysers = run.contexts["ProbeViaAnalyzerHook"]
    (first,) = [c for c in analysers if c["config"]["dj_configs"]["dataset_path"].endswith("demo-dataset.jsonl")]
    assert analysed_path == first["values"][0]
    analysed = read_objects(tmp_path / analysed_path)
    original = read_objects(tmp_path / "configs/data/demo/demo-dataset.jsonl")
    assert [row["text"] for row in analysed] == [row["text"] for row in original]
    # every threshold is its stat's observed [min, max] over the analysed rows
    for entry in run.feedback["process"]:
        ((op, args),) = entry.items()
        stat, low, high = DEMO_THRESHOLDS[op]
        values = [row["__dj__stats__"][stat] for row in analysed]
        assert (args[low], args[high]) == (min(values), max(values)), op
    texts = [len(row["text"]) for row in original]
    assert run.feedback["process"][0]["text_length_filter"] == {"min_len": min(texts), "max_len": max(texts)}
    # k-sigma's recipe would have dropped the planted noise; model feedback's keeps all of it
    cut = run.k_sigma["process"][0]["text_length_filter"]
    assert any(not cut["min_len"] <= n <= cut["max_len"] for n in texts)
    assert len(read_objects(tmp_path / run.context["ProcessDataHook"]["values"][0])) == len(original) == 3000
    # the analysed rows are published beside the processed data, not overwritten by it
    infos = json.loads((tmp_path / "outputs/legacy/context_infos.json").read_text())[0]["pipeline_infos"][0][
        "job_infos"
    ]
    published = {key: value for info in infos for key, value in info.items() if key.endswith("dataset_path")}
    assert published == {
        "analysed_dataset_path": "outputs/demo-process/iter_1/demo-processed_analysed.jsonl",
        "processed_dataset_path": "outputs/demo-process/iter_1/demo-processed.jsonl",
    }
    assert read_objects(tmp_path / published["analysed_dataset_path"]) == analysed
