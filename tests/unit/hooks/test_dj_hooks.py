"""The Data-Juicer hooks run for real (py-data-juicer, offline) on a small generated dataset.

60 short English texts, two of them planted outliers (one very long, one made
of special characters): the probe analyses them, k-sigma refinement turns the
recipe's thresholds into mean -/+ 3 std, and processing with the refined
recipe drops exactly the two outliers.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import statistics
from pathlib import Path

import pytest
import yaml

from sandflow.hooks import dj_requirements, k_sigma
from sandflow.hooks.base import JobRun
from sandflow.hooks.dj_requirements import OFFLINE_OPS, missing_requirements

from helpers.env import OFFLINE_ENV, environ
from helpers.job_runs import file_logger, job_run

WORDS = (
    "the quick brown fox jumps over a lazy dog while data juicer cleans good text for small models every day and night"
).split()
LONG_TEXT = " ".join(["lengthy"] * 150) + "."
SPECIAL_TEXT = "wow!!! $$$ ### @@@ %%% ^^^ &&& *** ((( ))) ~~~ ||| <<< >>> ???"

RECIPE = {
    "project_name": "test-dj-hooks",
    "np": 1,
    "process": [
        {"text_length_filter": {"min_len": 1, "max_len": 100000}},
        {"words_num_filter": {"lang": "en", "tokenization": False, "min_num": 1}},  # max_num left at its default
        {"special_characters_filter": {"min_ratio": 0.0, "max_ratio": 1.0}},
    ],
}


def make_texts() -> list[str]:
    rng = random.Random(7)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 16))) + "." for _ in range(58)]
    texts.insert(20, LONG_TEXT)
    texts.insert(40, SPECIAL_TEXT)
    return texts


def make_job(
    root: Path, name: str, dj_configs: dict | None, extra_configs: dict | None = None, linked_jobs: dict | None = None
) -> JobRun:
    job_dir = root / name
    job_dir.mkdir(parents=True)
    if dj_configs is not None:
        dj_configs = {**dj_configs, "export_path": str(job_dir / "export" / "data.jsonl")}
    return job_run(
        name,
        job_dir,
        dj_configs=dj_configs,
        extra_configs=extra_configs,
        key=name,
        linked_jobs=linked_jobs or {},
        log=file_logger(f"test_dj_hooks.{name}", root / f"{name}.log"),
    )


def read_jsonl(path: str | Path) -> list[dict]:
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


@pytest.fixture(scope="module")
def offline_env():
    with environ(OFFLINE_ENV):
        yield


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, offline_env) -> dict:
    root = tmp_path_factory.mktemp("dj_hooks")
    texts = make_texts()
    dataset = root / "data.jsonl"
    dataset.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return {"root": root, "texts": texts, "recipe": {**RECIPE, "dataset_path": str(dataset)}}


@pytest.fixture(scope="module")
def probed(workspace) -> dict:
    from sandflow.hooks.data_juicer import probe_via_analyzer

    job = make_job(workspace["root"], "probe", workspace["recipe"])
    return {"job": job, "result": probe_via_analyzer(job)}


@pytest.fixture(scope="module")
def refined(workspace, probed) -> dict:
    from sandflow.hooks.data_juicer import refine_recipe_via_k_sigma

    root = workspace["root"]
    target = root / "refine" / "published" / "k_sigma_recipe.yaml"
    job = make_job(
        root, "refine", workspace["recipe"], {"path_k_sigma_recipe": str(target)}, {"analysis": probed["job"].job_dir}
    )
    return {"job": job, "result": refine_recipe_via_k_sigma(job)}


def thresholds(summary: dict, stat: str, k: float = 3.0) -> tuple[float, float]:
    s = summary[stat]
    return max(s["mean"] - k * s["std"], s["min"]), min(s["mean"] + k * s["std"], s["max"])


# ---------------------------------------------------------------- probe


@pytest.mark.slow
def test_probe_returns_the_stats_file_and_summarises_it(workspace, probed):
    job, result = probed["job"], probed["result"]
    # export_original_dataset is false: Data-Juicer 1.6.1 writes only <base>_stats.jsonl, which we return.
    assert result == str(job.job_dir / "export" / "data_stats.jsonl")
    assert os.path.isfile(result)
    assert not (job.job_dir / "export" / "data.jsonl").exists()
    rows = read_jsonl(result)
    assert len(rows) == len(workspace["texts"])
    stats = [row["__dj__stats__"] for row in rows]
    assert [s["text_len"] for s in stats] == [len(t) for t in workspace["texts"]]

    summary = json.loads((job.job_dir / "stats_summary.json").read_text())
    assert set(summary) == {"text_len", "num_words", "special_char_ratio"}
    for stat, got in summary.items():
        values = [s[stat] for s in stats]
        assert got["count"] == len(values)
        assert got["mean"] == pytest.approx(statistics.fmean(values), rel=1e-12)
        assert got["std"] == pytest.approx(statistics.stdev(values), rel=1e-12)  # sample std, like pandas
        assert (got["min"], got["max"]) == (min(values), max(values))

    # Data-Juicer's own overall table (pandas describe) agrees, and lives inside the job directory.
    with open(job.job_dir / "dj_work" / "analysis" / "overall.csv") as handle:
        table = {row[""]: row for row in csv.DictReader(handle)}
    for stat, got in summary.items():
        assert float(table["mean"][stat]) == pytest.approx(got["mean"], rel=1e-9)
        assert float(table["std"][stat]) == pytest.approx(got["std"], rel=1e-9)
    # The Hugging Face datasets cache DJ loaded the input through was inside the job and is gone.
    assert not (job.job_dir / "dj_work" / "scratch").exists()
    # Data-Juicer's loguru output went to the job's log.
    assert "[data_juicer]" in (workspace["root"] / "probe.log").read_text()


@pytest.mark.slow
def test_probe_with_original_dataset_returns_the_dataset_with_stats(workspace, probed):
    from sandflow.hooks.data_juicer import probe_via_analyzer

    recipe = {**workspace["recipe"], "export_original_dataset": True, "process": [RECIPE["process"][0]]}
    job = make_job(workspace["root"], "probe_original", recipe)
    result = probe_via_analyzer(job)
    assert result == job.dj_configs["export_path"]
    rows = read_jsonl(result)
    assert [r["text"] for r in rows] == workspace["texts"]
    assert all("text_len" in r["__dj__stats__"] for r in rows)


# ---------------------------------------------------------------- k-sigma


@pytest.mark.slow
def test_k_sigma_rewrites_exactly_the_thresholds(workspace, probed, refined):
    job, result = refined["job"], refined["result"]
    assert result == job.extra_configs["path_k_sigma_recipe"]
    recipe = yaml.safe_load(Path(result).read_text())
    summary = json.loads((probed["job"].job_dir / "stats_summary.json").read_text())

    low, high = thresholds(summary, "text_len")
    length = recipe["process"][0]["text_length_filter"]
    assert length == {"min_len": math.floor(low), "max_len": math.ceil(high)}
    assert all(type(v) is int for v in length.values())
    # clipped: mean - 3 std lies below the shortest text, so min_len is the observed minimum
    assert summary["text_len"]["mean"] - 3 * summary["text_len"]["std"] < summary["text_len"]["min"]
    assert length["min_len"] == summary["text_len"]["min"]
    assert length["max_len"] < len(LONG_TEXT)

    low, high = thresholds(summary, "num_words")
    words = recipe["process"][1]["words_num_filter"]
    # max_num was not in the recipe: it is set too
    assert words == {"lang": "en", "tokenization": False, "min_num": math.floor(low), "max_num": math.ceil(high)}
    assert type(words["min_num"]) is int and type(words["max_num"]) is int

    low, high = thresholds(summary, "special_char_ratio")
    special = recipe["process"][2]["special_characters_filter"]
    assert special["min_ratio"] == pytest.approx(low, rel=1e-12)
    assert special["max_ratio"] == pytest.approx(high, rel=1e-12)
    assert type(special["min_ratio"]) is float

    expected_rest = {k: v for k, v in job.dj_configs.items() if k != "process"}
    assert {k: v for k, v in recipe.items() if k not in ("process", "skip_op_error")} == expected_rest
    assert recipe["skip_op_error"] is False

    with open(job.job_dir / "k_sigma_changes.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["op"], r["argument"]) for r in rows] == [
        ("text_length_filter", "min_len"),
        ("text_length_filter", "max_len"),
        ("words_num_filter", "min_num"),
        ("words_num_filter", "max_num"),
        ("special_characters_filter", "min_ratio"),
        ("special_characters_filter", "max_ratio"),
    ]
    assert rows[0]["before"] == "1" and rows[0]["after"] == str(length["min_len"])
    assert rows[3]["before"].endswith("(default)")
    assert "| words_num_filter | max_num |" in (job.job_dir / "k_sigma_changes.md").read_text()


def test_k_sigma_rule_on_a_given_summary(tmp_path):
    summary = {
        "text_len": {"count": 10, "mean": 50.0, "std": 10.0, "min": 5.0, "max": 70.0},
        "avg_line_length": {"count": 10, "mean": 20.25, "std": 0.5, "min": 18.0, "max": 30.0},
        "alnum_ratio": {"count": 10, "mean": 0.5, "std": 0.1, "min": 0.1, "max": 0.95},
        "lang_score": {"count": 1, "mean": 0.9, "std": None, "min": 0.9, "max": 0.9},
    }
    recipe = {
        "process": [
            {"text_length_filter": {"min_len": 10, "max_len": 1000}},
            {"average_line_length_filter": None},
            {"alphanumeric_filter": {"tokenization": False, "min_ratio": 0.2}},
            {"alphanumeric_filter": {"tokenization": True, "min_ratio": 0.2}},  # alpha_token_ratio: not analysed
            {"language_id_score_filter": {"min_score": 0.5}},  # std undefined
            {"text_length_filter": {"min_len": 10, "reversed_range": True}},
            {"clean_email_mapper": None},
        ],
        "np": 2,
    }
    refined, changes = k_sigma.refine_recipe(recipe, summary, k=2)
    ops = refined["process"]
    assert ops[0] == {"text_length_filter": {"min_len": 30, "max_len": 70}}  # 50+20 clipped to 70
    assert ops[1] == {"average_line_length_filter": {"min_len": 19, "max_len": 22}}  # floor(19.25), ceil(21.25)
    assert ops[2]["alphanumeric_filter"] == {
        "tokenization": False,
        "min_ratio": pytest.approx(0.3),
        "max_ratio": pytest.approx(0.7),
    }
    assert ops[3:] == recipe["process"][3:]
    assert refined["np"] == 2 and refined["skip_op_error"] is False
    assert recipe["process"][1] == {"average_line_length_filter": None}  # the input is not modified
    notes = {(c.op_index, c.arg): c.note for c in changes}
    assert "not in the analysis" in notes[(3, "min_ratio")]
    assert "std undefined" in notes[(4, "min_score")]
    assert "left unchanged" in notes[(5, "max_len")]


@pytest.mark.slow
def test_k_sigma_table_matches_data_juicer(offline_env):
    import inspect

    from data_juicer.ops import OPERATORS
    from data_juicer.utils.constant import StatsKeysConstant

    for op_name, entries in k_sigma.THRESHOLDS.items():
        op_class = OPERATORS.modules[op_name]
        parameters = inspect.signature(op_class.__init__).parameters
        # with the classes it inherits its stats from (video_motion_score_raft_filter: video_motion_score_filter's)
        source = "".join(inspect.getsource(c) for c in op_class.__mro__ if c.__module__.startswith("data_juicer.ops."))
        for entry in entries:
            assert getattr(StatsKeysConstant, entry.stat) == entry.stat, (op_name, entry.stat)
            assert f"StatsKeys.{entry.stat}" in source, (op_name, entry.stat)
            parameter = parameters[entry.arg]
            assert parameter.default == entry.default, (op_name, entry.arg)
            annotation = getattr(parameter.annotation, "__origin__", parameter.annotation)
            assert (annotation is int) == entry.integer, (op_name, entry.arg, parameter.annotation)


# ---------------------------------------------------------------- process


@pytest.mark.slow
def test_process_with_the_refined_recipe_drops_exactly_the_outliers(workspace, probed, refined):
    from sandflow.hooks.data_juicer import process_data

    recipe = yaml.safe_load(Path(refined["result"]).read_text())
    job = make_job(workspace["root"], "process", recipe)
    result = process_data(job)
    assert result == job.dj_configs["export_path"] and os.path.isfile(result)
    kept = [row["text"] for row in read_jsonl(result)]

    # by hand: a sample stays when each of its stats lies inside its op's [min, max]
    stats = [row["__dj__stats__"] for row in read_jsonl(probed["result"])]
    length, words, special = (next(iter(op.values())) for op in recipe["process"])
    bounds = {
        "text_len": (length["min_len"], length["max_len"]),
        "num_words": (words["min_num"], words["max_num"]),
        "special_char_ratio": (special["min_ratio"], special["max_ratio"]),
    }
    expected = [
        text
        for text, s in zip(workspace["texts"], stats)
        if all(low <= s[stat] <= high for stat, (low, high) in bounds.items())
    ]
    assert kept == expected
    assert set(workspace["texts"]) - set(kept) == {LONG_TEXT, SPECIAL_TEXT}


@pytest.mark.slow
def test_process_export_exists_when_nothing_survives(workspace):
    from sandflow.hooks.data_juicer import process_data

    recipe = {**workspace["recipe"], "process": [{"text_length_filter": {"min_len": 100000}}]}
    job = make_job(workspace["root"], "process_empty", recipe)
    result = process_data(job)
    assert os.path.isfile(result) and read_jsonl(result) == []


@pytest.mark.slow
def test_data_juicers_messages_go_to_the_job_log_not_the_console(workspace, capfd):
    from sandflow.hooks.data_juicer import process_data

    job = make_job(
        workspace["root"], "process_quiet", {**workspace["recipe"], "process": [{"text_length_filter": {"min_len": 1}}]}
    )
    capfd.readouterr()
    process_data(job)
    console = capfd.readouterr().err
    log = (workspace["root"] / "process_quiet.log").read_text()
    assert "[data_juicer] data_juicer.core.executor" in log
    assert "data_juicer.core.executor" not in console and "| INFO     |" not in console


@pytest.mark.slow
def test_a_failing_op_fails_the_job(workspace):
    """Data-Juicer's default (skip_op_error) would drop every sample and succeed; we raise."""
    from sandflow.hooks.data_juicer import process_data

    words = workspace["root"] / "words"
    words.mkdir()
    (words / "stopwords.json").write_text(json.dumps({"en": ["the", "a", "over"]}))
    # no French word list: the op raises KeyError on every sample (the recipe leaves skip_op_error out)
    recipe = {
        **workspace["recipe"],
        "process": [{"stopwords_filter": {"lang": "fr", "stopwords_dir": str(words), "min_ratio": 0.0}}],
    }
    with pytest.raises(KeyError, match="fr"):
        process_data(make_job(workspace["root"], "process_failing", recipe))

    recipe = {**workspace["recipe"], "process": [{"no_such_filter": {"min_len": 1}}]}
    with pytest.raises(Exception, match="no_such_filter"):
        process_data(make_job(workspace["root"], "process_unknown_op", recipe))


# ---------------------------------------------------------------- requirements


@pytest.fixture
def empty_caches(tmp_path, monkeypatch) -> Path:
    for name in (
        "CACHE_HOME",
        "DATA_JUICER_MODELS_CACHE",
        "DATA_JUICER_ASSETS_CACHE",
        "DATA_JUICER_EXTERNAL_MODELS_HOME",
        "HF_HOME",
        "HUGGINGFACE_HUB_CACHE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATA_JUICER_CACHE_HOME", str(tmp_path / "dj"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.chdir(tmp_path)  # Data-Juicer also looks for a model file under its bare name
    return tmp_path


def test_requirements_name_what_to_put_where(empty_caches):
    models = empty_caches / "dj" / "models"
    recipe = {"process": [{"text_length_filter": {"min_len": 5}}, {"language_id_score_filter": {"lang": "en"}}]}
    [line] = missing_requirements(recipe)
    assert "process[1] language_id_score_filter" in line and "lid.176.bin" in line and str(models) in line

    models.mkdir(parents=True)
    (models / "lid.176.bin").write_bytes(b"model")
    assert missing_requirements(recipe) == []

    lines = missing_requirements({"process": [{"perplexity_filter": {"lang": "de"}}]})
    assert [("de.sp.model" in line, "de.arpa.bin" in line) for line in lines] == [(True, False), (False, True)]

    words = empty_caches / "words"
    words.mkdir()
    stopwords = {"process": [{"stopwords_filter": {"stopwords_dir": str(words)}}]}
    assert "stopwords" in missing_requirements(stopwords)[0]
    (words / "my_stopwords.json").write_text('{"en": ["the"]}')
    assert missing_requirements(stopwords) == []
    assert "flagged_words" in missing_requirements({"process": [{"flagged_words_filter": None}]})[0]

    # a Hugging Face model from the op's default arguments (read from Data-Juicer's source, not imported)
    [line] = missing_requirements({"process": [{"token_num_filter": {"max_num": 100}}]})
    assert "EleutherAI/pythia-6.9b-deduped" in line and str(empty_caches / "hf") in line
    snapshot = empty_caches / "hf" / "models--EleutherAI--pythia-6.9b-deduped" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "tokenizer.json").write_text("{}")
    assert missing_requirements({"process": [{"token_num_filter": None}]}) == []


def test_offline_ops_need_nothing(empty_caches):
    recipe = {"process": [{name: None} for name in sorted(OFFLINE_OPS)]}
    assert missing_requirements(recipe) == []
    assert missing_requirements(None) == [] and missing_requirements({"dataset_path": "x"}) == []
    # tokenization turns words_num_filter into a sentencepiece user
    [line] = missing_requirements({"process": [{"words_num_filter": {"tokenization": True, "lang": "zh"}}]})
    assert "zh.sp.model" in line


def test_requirements_do_not_import_data_juicer():
    import subprocess
    import sys

    code = (
        "import sys; from sandflow.hooks.dj_requirements import missing_requirements as m; "
        "m({'process': [{'token_num_filter': None}, {'language_id_score_filter': None}]}); "
        "assert 'data_juicer' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert dj_requirements.op_defaults("token_num_filter")["hf_tokenizer"] == "EleutherAI/pythia-6.9b-deduped"


def test_a_job_leaves_os_environ_the_object_a_block_around_it_restores(tmp_path):
    """Data-Juicer's load runs a Hugging Face map in a pool of one process, which assigns a copy to os.environ:
    after the job os.environ is the object it was, so a variable set around the job is gone after the block (it
    was left set, and turned the stats cache off for every later test in the process)."""
    from sandflow.hooks.dj_stats_cache import OFF_VARIABLE

    from helpers.dj_jobs import process_recipe, run_dj_job

    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"text": f"sample number {index}"}) + "\n" for index in range(10)))
    before = os.environ
    with environ(OFFLINE_ENV):
        job = run_dj_job(tmp_path / "work", "ProcessDataHook", "off", process_recipe(data, RECIPE["process"]), False)
    assert "stats cache off: SANDFLOW_STATS_CACHE=off" in job.log  # the job ran with the variable set
    assert os.environ is before and OFF_VARIABLE not in os.environ
