"""hpo_config in Data-Juicer's own format: parameters named <op>.<arg> (or <op>[i].<arg>) set recipe op
arguments, a metric named by a plain output name; and a bayes file under plain snakemake.

configs/hpo/dj_format.yaml is the example: a grid over text_length_filter.min_len of the recipe
configs/hpo/dj_format_process.yaml, scored by the job output named grade_mse.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from sandflow.cli import main
from sandflow.config.hpo_spec import OpArgument, load_hpo, trials
from sandflow.config.load import load_config
from sandflow.core.jsonl import read_objects
from sandflow.plan.model import Plan
from sandflow.plan.planner import plan_config

from helpers.paths import copy_from_repo
from helpers.snakemake import job_counts, snakemake

CONFIG = "configs/hpo/dj_format.yaml"
SEARCH = "configs/hpo/dj_format_search.yaml"
RECIPE = "configs/hpo/dj_format_process.yaml"
WORK = Path("outputs/hpo-dj-format")
MIN_LEN = "text_length_filter.min_len"
ANNOTATIONS = ("configs/data/hpo/careful.jsonl", "configs/data/hpo/hasty.jsonl")


@pytest.fixture
def copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the configs and their data as the working directory."""
    copy_from_repo(tmp_path, "configs/hpo", "configs/data/hpo")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def raw_config(**changes) -> dict:
    return {**yaml.safe_load(Path(CONFIG).read_text()), "work_dir": "work", **changes}


def raw_search(**changes) -> dict:
    return {**yaml.safe_load(Path(SEARCH).read_text()), **changes}


def plan_of(raw: dict) -> Plan:
    return plan_config(load_config(raw, source="dj_format.yaml"))


def recipes(plan: Plan, meta_name: str) -> dict[int, list]:
    """trial -> the planned process list of that trial's job named meta_name."""
    return {job.trial: job.sections["dj_configs"]["process"] for job in plan.jobs if job.cfg.meta_name == meta_name}


# --- reading ---------------------------------------------------------------------------------------


def test_data_juicers_own_hpo_file_loads_with_op_parameters_and_a_plain_metric(copy: Path):
    # The shape of Data-Juicer's tools/hpo/configs/quality_score_hpo.yaml: sweep_name, op arguments as
    # parameter names, a plain metric, and early_terminate (accepted, and said to stop no trial).
    hpo = load_hpo(
        {
            "sweep_name": "hpo_for_data-juicer",
            "sweep_max_count": 20,
            "method": "bayes",
            "metric": {"name": "quality_score", "goal": "maximize"},
            "parameters": {
                "character_repetition_filter.rep_len": {"values": [2, 4, 8, 16]},
                "text_length_filter.min_len": {"distribution": "q_log_uniform_values", "min": 256, "max": 8192},
                "text_length_filter[-1].max_len": {"values": [5000]},
            },
            "early_terminate": {"type": "hyperband", "max_iter": 27, "s": 2},
        }
    )
    assert hpo.metric == "quality_score" and hpo.method == "bayes"
    assert hpo.notes == (
        "hpo_config.early_terminate (hyperband) stops no trial: a trial reports its metric once, when its jobs "
        "are done, so there is no intermediate value to stop on; metric.target or sweep_max_count bound a search",
    )
    assert [p.op for p in hpo.parameters] == [
        OpArgument("character_repetition_filter", None, "rep_len"),
        OpArgument("text_length_filter", None, "min_len"),
        OpArgument("text_length_filter", -1, "max_len"),
    ]
    assert all(p.pipeline is None and p.local is None for p in hpo.parameters)
    precise = load_hpo(yaml.safe_load(Path("configs/hpo/search.yaml").read_text())).parameters[0]
    assert (precise.pipeline, precise.meta_name, precise.local, precise.op) == (
        "sample_search",
        "draw_sample",
        "extra_configs.target_num_samples",
        None,
    )


# --- planning --------------------------------------------------------------------------------------


def test_each_trial_plans_the_recipe_with_its_op_argument(copy: Path):
    plan = plan_of(raw_config())
    assert [t.values for t in plan.search.trials] == [{MIN_LEN: n} for n in (10, 15, 16, 17)]
    assert recipes(plan, "clean_annotations") == {
        trial: [{"text_length_filter": {"min_len": n, "max_len": 1000}}]
        for trial, n in zip((1, 2, 3, 4), (10, 15, 16, 17))
    }
    # The plain metric is score_cleaned's second output in every trial; the merge is shared by all four.
    assert {(t.metric_job.cfg.meta_name, t.metric_index) for t in plan.search.trials} == {("score_cleaned", 1)}
    assert len({j.key for j in plan.jobs if j.cfg.meta_name == "merge_annotators"}) == 1
    assert len({j.key for j in plan.jobs if j.cfg.meta_name == "clean_annotations"}) == 4
    # A trial whose value is the recipe's own is the job the config plans without a search.
    alone = plan_of(raw_config(hpo_config=None))
    (unsearched,) = [j.key for j in alone.jobs if j.cfg.meta_name == "clean_annotations"]
    assert [j.key for j in plan.jobs if j.cfg.meta_name == "clean_annotations" and j.trial == 1] == [unsearched]


def test_an_op_argument_reaches_every_recipe_with_the_op_and_an_index_picks_one_occurrence(copy: Path):
    """A second cleaning job with an inline recipe holding text_length_filter twice; the recipe file has it once."""
    raw = raw_config()
    inline = {
        "hook": "ProcessDataHook",
        "meta_name": "clean_inline",
        "input": {"dj_configs.dataset_path": "anonymous.merge_annotators.merged"},
        "output": "cleaned_inline",
        "dj_configs": {
            "dataset_path": "<replaced>",
            "export_path": "./outputs/inline/cleaned.jsonl",
            "process": [
                {"text_length_filter": {"min_len": 1}},
                {"words_num_filter": None},
                {"text_length_filter": None},
            ],
        },
    }
    raw["evaluation_job_configs"].append(inline)  # last: the scorer reads -1.cleaned
    parameters = {
        "text_length_filter.max_len": {"values": [500]},  # every occurrence in both recipes
        "text_length_filter[1].min_len": {"values": [14]},  # the second occurrence: only the inline recipe has one
        "words_num_filter.min_num": {"values": [2]},  # `- words_num_filter:` without arguments
        "anonymous.clean_inline.dj_configs.np": {"values": [1]},  # the precise form alongside
    }
    plan = plan_of({**raw, "hpo_config": raw_search(parameters=parameters, sweep_max_count=None)})
    assert recipes(plan, "clean_annotations") == {1: [{"text_length_filter": {"min_len": 10, "max_len": 500}}]}
    assert recipes(plan, "clean_inline") == {
        1: [
            {"text_length_filter": {"min_len": 1, "max_len": 500}},
            {"words_num_filter": {"min_num": 2}},
            {"text_length_filter": {"max_len": 500, "min_len": 14}},
        ]
    }
    (inline_job,) = [j for j in plan.jobs if j.cfg.meta_name == "clean_inline"]
    assert inline_job.sections["dj_configs"]["np"] == 1
    assert raw["evaluation_job_configs"][-1]["dj_configs"]["process"][2] == {"text_length_filter": None}  # not mutated
    # [-1] is each recipe's last occurrence: the one Data-Juicer's merge_config sets.
    last = plan_of({**raw, "hpo_config": raw_search(parameters={"text_length_filter[-1].min_len": {"values": [3]}})})
    assert recipes(last, "clean_annotations")[1] == [{"text_length_filter": {"min_len": 3, "max_len": 1000}}]
    assert [entry.get("text_length_filter") for entry in recipes(last, "clean_inline")[1]] == [
        {"min_len": 1},
        None,
        {"min_len": 3},
    ]


def test_trials_that_hpo_search_lists_for_a_bayes_file_plan_with_op_parameters(copy: Path):
    """python -m sandflow.hpo_search runs each bayes batch as explicit trials through snakemake."""
    search = raw_search(method="bayes", parameters={MIN_LEN: {"min": 5, "max": 20}}, sweep_max_count=3)
    listed = [{MIN_LEN: 7}, {MIN_LEN: 19}]
    plan = plan_of(raw_config(hpo_config={**search, "trials": listed}))
    assert recipes(plan, "clean_annotations") == {
        1: [{"text_length_filter": {"min_len": 7, "max_len": 1000}}],
        2: [{"text_length_filter": {"min_len": 19, "max_len": 1000}}],
    }


# --- errors: one line naming the place, exit 2, nothing written -------------------------------------


def second_scorer(raw: dict) -> dict:
    """The config with another evaluator that also names an output grade_mse."""
    scorer = dict(raw["evaluation_job_configs"][0], meta_name="score_merged")
    scorer["input"] = {"extra_configs.predicted_dataset_path": "anonymous.merge_annotators.merged"}
    raw["evaluation_job_configs"].append(scorer)
    return raw


@pytest.mark.parametrize(
    "raw, line",
    [
        (
            lambda: raw_config(hpo_config=raw_search(parameters={"text_lenght_filter.min_len": {"values": [1]}})),
            "hpo_config.parameters.text_lenght_filter.min_len: no recipe of this config has the op "
            "text_lenght_filter (did you mean 'text_length_filter'?)",
        ),
        (
            lambda: raw_config(hpo_config=raw_search(parameters={"text_length_filter[1].min_len": {"values": [1]}})),
            "hpo_config.parameters.text_length_filter[1].min_len: no recipe of this config has the op "
            "text_length_filter (occurrence [1]) (did you mean 'text_length_filter'?)",
        ),
        (
            lambda: raw_config(hpo_config=raw_search(metric={"name": "quality_score", "goal": "maximize"})),
            "hpo_config.metric.name: no job has an output named 'quality_score' "
            "(known: cleaned, grade_mse, merged, results)",
        ),
        (
            lambda: second_scorer(raw_config()),
            "hpo_config.metric.name: 'grade_mse' is the output of 2 jobs: name one of "
            "anonymous.score_cleaned.grade_mse, anonymous.score_merged.grade_mse",
        ),
        (
            lambda: raw_config(hpo_config=raw_search(parameters={"clean_annotations.dj_configs.np": {"values": [1]}})),
            "hpo_config.parameters.clean_annotations.dj_configs.np: a parameter must be named <op>.<arg> or "
            "<op>[<i>].<arg> (a recipe op's argument), or <pipeline>.<meta_name>.<dj_configs|extra_configs>.<dotted key>",
        ),
        (
            lambda: raw_config(hpo_config=raw_search(method="bayes", sweep_max_count=4)),
            "hpo_config.method: a bayes search chooses each batch of trials from the results of the last, so "
            "snakemake cannot plan it: run python -m sandflow.hpo_search --configfile bad.yaml",
        ),
    ],
    ids=["op-absent", "occurrence-absent", "metric-unknown", "metric-ambiguous", "bad-name", "bayes"],
)
def test_sandflow_check_rejects_a_search_with_one_line_and_exit_2(
    raw, line: str, copy: Path, capsys: pytest.CaptureFixture
):
    Path("bad.yaml").write_text(yaml.safe_dump(raw(), sort_keys=False))
    assert main(["check", "bad.yaml"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == f"sandflow: error: bad.yaml: {line}\n"
    assert not (copy / "work").exists()


@pytest.mark.slow
def test_snakemake_stops_a_bayes_file_before_any_job_naming_hpo_search(copy: Path):
    """A bayes search needs results to pick trials; plain snakemake says which command runs it, and runs nothing."""
    bayes = raw_search(method="bayes", parameters={MIN_LEN: {"min": 5, "max": 20}}, sweep_max_count=4)
    Path("configs/hpo/bayes_dj.yaml").write_text(yaml.safe_dump(bayes))
    Path("bayes.yaml").write_text(yaml.safe_dump(raw_config(hpo_config="configs/hpo/bayes_dj.yaml")))
    before = sorted(str(p) for p in copy.rglob("*"))
    result = snakemake(copy, "bayes.yaml", check=False)
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1] == (
        "sandflow: error: bayes.yaml: hpo_config.method: a bayes search chooses each batch of trials from the "
        "results of the last, so snakemake cannot plan it: run python -m sandflow.hpo_search --configfile bayes.yaml"
    )
    assert [line for line in result.stderr.splitlines() if line.startswith("sandflow:")] == [
        result.stderr.strip().splitlines()[-1]
    ]
    assert sorted(str(p) for p in copy.rglob("*") if ".snakemake" not in p.parts) == before


# --- end to end ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_dj_format_search_runs_each_trial_with_its_recipe_and_finds_the_best(copy: Path):
    assert job_counts(snakemake(copy, CONFIG)) == {
        "data_pool_manipulation": 1,
        "process_data": 4,
        "evaluate_data": 4,
        "hpo_spec_record": 1,
        "publication_record": 1,
        "context_infos": 1,
        "hpo_summary": 1,
        "all": 1,
    }
    merged = [row for path in ANNOTATIONS for row in read_objects(copy / path)]
    mse = {}
    for trial, values in enumerate(trials(load_hpo(SEARCH)), 1):
        directory = copy / WORK / "hpo" / f"trial_{trial}" / "pipelines" / "anonymous" / "iter_1"
        (cleaned,) = (directory / "clean_annotations").rglob("cleaned.jsonl")
        kept = read_objects(cleaned)
        # Data-Juicer ran the trial's recipe: exactly the rows at least min_len characters long.
        assert [row["text"] for row in kept] == [row["text"] for row in merged if len(row["text"]) >= values[MIN_LEN]]
        mse[trial] = sum((row["grade"] - row["truth"]) ** 2 for row in kept) / len(kept)
    with (copy / WORK / "hpo" / "trials.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert [float(row["grade_mse"]) for row in table] == pytest.approx([mse[t] for t in (1, 2, 3, 4)])
    best = json.loads((copy / WORK / "hpo" / "best.json").read_text())
    assert best["trial"] == min(mse, key=mse.get) == 4 and best["params"] == {MIN_LEN: 17}
    assert job_counts(snakemake(copy, CONFIG)) == {}
