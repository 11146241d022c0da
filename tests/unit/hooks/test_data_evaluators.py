"""EvaluateDataHook components: accuracy and mse on shipped datasets, the quality classifier's requirements.

tests/data/evaluators/ holds two grader inference results in the shape of
DJ-Sandbox's auto-prompt-optimization example (``grades`` answered by the
model as text, ``truth`` in the same file) and label datasets whose
predictions sit in a nested field.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import logging
import re
import stat
import sys
from pathlib import Path

import pytest

from sandflow.core.jobio import JobFailed
from sandflow.hooks import data_evaluators
from sandflow.hooks.base import JobRun
from sandflow.hooks.data_evaluators import (
    accuracy,
    accuracy_evaluator,
    lookup,
    mse,
    mse_evaluator,
    quality_classifier_requirements,
    read_samples,
    text_quality_evaluator,
)

from helpers.job_runs import job_run
from helpers.paths import TEST_DATA

DATA = TEST_DATA / "evaluators"
POOL_0 = str(DATA / "grader_pool_0_inference.jsonl")
POOL_1 = str(DATA / "grader_pool_1_inference.jsonl")
PRED_A = str(DATA / "labels_predicted_a.jsonl")
PRED_B = str(DATA / "labels_predicted_b.jsonl")
TRUTH = str(DATA / "labels_truth.jsonl")


def make_job(tmp_path: Path, extra_configs: dict | None) -> JobRun:
    job_dir = tmp_path / "job"
    job_dir.mkdir(exist_ok=True)
    return job_run(
        "EvaluateDataHook", job_dir, extra_configs=extra_configs, log=logging.getLogger("test_data_evaluators")
    )


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


# accuracy


def test_accuracy_compares_labels_by_position_per_predicted_dataset(tmp_path):
    results, best = accuracy_evaluator(
        make_job(
            tmp_path,
            {
                "type": "accuracy",
                "predicted_dataset_path": [PRED_A, PRED_B],
                "ground_truth_dataset_path": [TRUTH, TRUTH],
                "predicted_label_key": "meta.label",
                "ground_truth_label_key": "label",
            },
        )
    )
    # PRED_A: neg != pos at sample 2; the int 1 equals the string "1" as str, as upstream.
    assert results == [
        {"pred_path": PRED_A, "gt_path": TRUTH, "accuracy": 0.75},
        {"pred_path": PRED_B, "gt_path": TRUTH, "accuracy": 1.0},
    ]
    assert best == 1.0
    assert list(results[0]) == ["pred_path", "gt_path", "accuracy"]


def test_accuracy_reads_the_ground_truth_from_the_predicted_dataset_when_none_is_given(tmp_path):
    path = write_jsonl(tmp_path / "both.jsonl", [{"pred": "a", "gold": "a"}, {"pred": "b", "gold": "c"}])
    results, best = accuracy_evaluator(
        make_job(
            tmp_path,
            {
                "type": "accuracy",
                "predicted_dataset_path": path,
                "predicted_label_key": "pred",
                "ground_truth_label_key": "gold",
            },
        )
    )
    assert results == [{"pred_path": path, "gt_path": path, "accuracy": 0.5}]
    assert best == 0.5


def test_accuracy_plain_function_on_rows():
    assert accuracy([{"y": 1}, {"y": 2}, {"y": True}], [{"t": "1"}, {"t": 3}, {"t": "True"}], "y", "t") == 2 / 3
    with pytest.raises(ValueError, match=r"^predicted sample 2 has no key 'y'$"):
        accuracy([{"y": 1}, {"x": 2}], [{"t": 1}, {"t": 2}], "y", "t")


# mse


def test_mse_counts_unparsable_predictions_as_format_errors_and_ranks_by_the_lowest(tmp_path):
    results, best = mse_evaluator(
        make_job(
            tmp_path,
            {
                "type": "mse",
                "predicted_dataset_path": [POOL_0, POOL_1],
                "predicted_value_key": "grades",
                "ground_truth_value_key": "truth",
            },
        )
    )
    assert [list(r) for r in results] == [["pred_path", "gt_path", "mse", "format_error"]] * 2
    assert [(r["pred_path"], r["gt_path"], r["format_error"]) for r in results] == [
        (POOL_0, POOL_0, 1),
        (POOL_1, POOL_1, 0),
    ]
    # pool 0: (0.9-1)^2, (0.2-0)^2, "Score: 1" skipped, (1-1)^2; pool 1: 0.25, 0.25, (" 1.0\n" -> 1.0) 0.
    assert results[0]["mse"] == pytest.approx((0.01 + 0.04 + 0.0) / 3, rel=1e-12)
    assert results[1]["mse"] == pytest.approx(0.5 / 3, rel=1e-12)
    assert best == results[0]["mse"]
    json.dumps(results)  # outputs must be JSON-serialisable


def test_mse_plain_function_with_a_separate_ground_truth():
    error, format_errors = mse(
        [{"v": "3"}, {"v": None}, {"v": "nan"}, {"v": 1}], [{"g": 1}, {"g": 2}, {"g": 0}, {"g": 1.5}], "v", "g"
    )
    assert (error, format_errors) == (((3 - 1) ** 2 + 0.5**2) / 2, 2)


def test_mse_ground_truth_that_is_not_a_number_is_an_error_naming_file_and_line(tmp_path):
    path = write_jsonl(tmp_path / "bad_truth.jsonl", [{"grades": "1", "truth": 1}, {"grades": "1", "truth": "yes"}])
    with pytest.raises(ValueError, match=rf"^{path} line 2: 'truth' is 'yes', not a number$"):
        mse_evaluator(
            make_job(
                tmp_path,
                {"predicted_dataset_path": path, "predicted_value_key": "grades", "ground_truth_value_key": "truth"},
            )
        )


def test_mse_without_any_numeric_prediction_is_an_error(tmp_path):
    path = write_jsonl(tmp_path / "garbage.jsonl", [{"grades": "good", "truth": 1}, {"grades": [1], "truth": 0}])
    with pytest.raises(ValueError, match=r"^no 'grades' value in .*garbage.jsonl is a number \(2 format errors\)$"):
        mse_evaluator(
            make_job(
                tmp_path,
                {"predicted_dataset_path": [path], "predicted_value_key": "grades", "ground_truth_value_key": "truth"},
            )
        )


# errors shared by both


def test_missing_key_names_the_file_and_its_line_number(tmp_path):
    path = tmp_path / "gap.jsonl"
    path.write_text('{"grades": "1", "truth": 1}\n\n{"truth": 0}\n')
    with pytest.raises(ValueError, match=rf"^{path} line 3 has no key 'grades'$"):
        mse_evaluator(
            make_job(
                tmp_path,
                {
                    "predicted_dataset_path": str(path),
                    "predicted_value_key": "grades",
                    "ground_truth_value_key": "truth",
                },
            )
        )


def test_datasets_of_different_lengths_are_an_error(tmp_path):
    short = write_jsonl(tmp_path / "short.jsonl", [{"label": "pos"}])
    with pytest.raises(ValueError, match=rf"^{short} has 1 samples but {TRUTH} has 4: samples are matched by position"):
        accuracy_evaluator(
            make_job(
                tmp_path,
                {
                    "predicted_dataset_path": short,
                    "ground_truth_dataset_path": TRUTH,
                    "predicted_label_key": "label",
                    "ground_truth_label_key": "label",
                },
            )
        )


def test_an_empty_dataset_is_an_error(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(ValueError, match=rf"^{empty} has no samples to evaluate$"):
        accuracy_evaluator(
            make_job(
                tmp_path,
                {"predicted_dataset_path": str(empty), "predicted_label_key": "a", "ground_truth_label_key": "b"},
            )
        )


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            {"predicted_label_key": "a", "ground_truth_label_key": "b"},
            r"^extra_configs.predicted_dataset_path must be a dataset path or a non-empty list of them, got None$",
        ),
        (
            {
                "predicted_dataset_path": "/nonexistent/pred.jsonl",
                "predicted_label_key": "a",
                "ground_truth_label_key": "b",
            },
            r"^extra_configs.predicted_dataset_path: /nonexistent/pred.jsonl does not exist$",
        ),
        (
            {
                "predicted_dataset_path": [PRED_A, PRED_B],
                "ground_truth_dataset_path": TRUTH,
                "predicted_label_key": "a",
                "ground_truth_label_key": "b",
            },
            r"^extra_configs.ground_truth_dataset_path has 1 paths but extra_configs.predicted_dataset_path has 2",
        ),
        (
            {"predicted_dataset_path": PRED_A, "ground_truth_label_key": "b"},
            r"^extra_configs.predicted_label_key must name the field to compare, got None$",
        ),
    ],
)
def test_bad_accuracy_configs_name_the_config_key(tmp_path, extra, message):
    with pytest.raises(ValueError, match=message):
        accuracy_evaluator(make_job(tmp_path, {"type": "accuracy", **extra}))


def test_mse_needs_its_value_keys(tmp_path):
    with pytest.raises(ValueError, match=r"^extra_configs.ground_truth_value_key must name the field"):
        mse_evaluator(make_job(tmp_path, {"predicted_dataset_path": POOL_0, "predicted_value_key": "grades"}))


# reading and keys


def test_read_samples_reads_json_arrays_and_rejects_other_formats(tmp_path):
    array = tmp_path / "export.json"
    array.write_text('[{"a": 1}, {"a": 2}]')
    samples = read_samples(str(array))
    assert samples == [{"a": 1}, {"a": 2}] and samples.where(1) == f"{array} sample 2"
    (tmp_path / "x.parquet").write_bytes(b"PAR1")
    with pytest.raises(ValueError, match=r"only .jsonl and .json datasets can be read here$"):
        read_samples(str(tmp_path / "x.parquet"))
    (tmp_path / "scalars.jsonl").write_text('{"a": 1}\n3\n')
    with pytest.raises(ValueError, match=r"scalars.jsonl:2: not a JSON object$"):
        read_samples(str(tmp_path / "scalars.jsonl"))


def test_read_samples_keeps_line_separators_inside_strings(tmp_path):
    path = tmp_path / "raw.jsonl"
    path.write_text('{"text": "one\u2028two"}\r\n{"text": "three"}\n', encoding="utf-8")
    samples = read_samples(str(path))
    assert samples == [{"text": "one\u2028two"}, {"text": "three"}] and samples.lines == [1, 2]


def test_lookup_finds_flat_dotted_keys_and_nested_ones():
    assert lookup({"meta.label": "flat", "meta": {"label": "nested"}}, "meta.label") == "flat"
    assert lookup({"meta": {"label": "nested"}}, "meta.label") == "nested"
    assert lookup({"a": {"b.c": 1}}, "a.b.c") == 1
    assert lookup({"a": {"b": None}}, "a.b") is None
    assert lookup({"a": {"x": 1}}, "a.b") is data_evaluators.MISSING
    assert lookup({"a": 3}, "a.b") is data_evaluators.MISSING


# dj_text_quality_classifier


@pytest.fixture
def fake_java(tmp_path, monkeypatch):
    java_home = tmp_path / "jdk"
    (java_home / "bin").mkdir(parents=True)
    java = java_home / "bin" / "java"
    java.write_text("#!/bin/sh\n")
    java.chmod(java.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    monkeypatch.setenv("JAVA_HOME", str(java_home))
    return java_home


def module_missing(name: str) -> bool:
    return importlib.util.find_spec(name) is None


def test_quality_classifier_requirements_name_what_to_put_where(tmp_path, monkeypatch, fake_java):
    monkeypatch.setenv("DATA_JUICER_MODELS_CACHE", str(tmp_path / "models"))
    missing = quality_classifier_requirements(None, {"type": "dj_text_quality_classifier"})
    model = tmp_path / "models" / "gpt3_quality_model"
    assert missing[-1] == (
        f"dj_text_quality_classifier needs Data-Juicer's gpt3 quality classifier model at {model} "
        f"(extra_configs.model_path), which is missing: unzip {data_evaluators.QUALITY_MODEL_URL} "
        f"into {model.parent}"
    )
    assert (
        "dj_text_quality_classifier needs pyspark, which is not installed (pip install pyspark)" in missing
    ) == module_missing("pyspark")
    assert any(line.startswith("dj_text_quality_classifier needs fire,") for line in missing) == module_missing("fire")
    assert not any("Java" in line for line in missing)
    assert len(missing) == 1 + module_missing("pyspark") + module_missing("fire")


def test_quality_classifier_model_path_must_be_a_spark_pipeline_model(tmp_path, monkeypatch, fake_java):
    model = tmp_path / "my_model"
    model.mkdir()
    lines = quality_classifier_requirements(None, {"model_path": str(model)})
    assert (
        f"model at {model} (extra_configs.model_path), which is not a Spark PipelineModel directory (no metadata/)"
        in lines[-1]
    )
    (model / "metadata").mkdir()
    assert not any("model" in line for line in quality_classifier_requirements(None, {"model_path": str(model)}))
    assert (
        quality_classifier_requirements(None, {"model_path": 3})[-1]
        == "dj_text_quality_classifier: extra_configs.model_path must be a directory path, got 3"
    )


def test_quality_classifier_requirements_without_java(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    assert (
        "dj_text_quality_classifier needs a Java runtime for pyspark: no java on PATH or in $JAVA_HOME/bin"
        in quality_classifier_requirements(None, None)
    )


def test_quality_classifier_job_stops_at_the_first_missing_requirement(tmp_path, monkeypatch):
    dataset = write_jsonl(tmp_path / "data.jsonl", [{"text": "a sentence of text."}])
    extra = {"type": "dj_text_quality_classifier", "dataset_path": dataset, "model_path": str(tmp_path / "none")}
    first = quality_classifier_requirements(None, extra)[0]
    with pytest.raises(JobFailed, match="^" + re.escape(f"cannot run here: {first}") + "$"):
        text_quality_evaluator(make_job(tmp_path, extra))
    with pytest.raises(ValueError, match=r"^extra_configs.dataset_path must be an existing dataset file, got None$"):
        text_quality_evaluator(make_job(tmp_path, {"type": "dj_text_quality_classifier"}))


def _assigned_strings(path: Path) -> dict[str, str]:
    """Module-level NAME = "string" assignments of a source file (implicit concatenation included)."""
    values = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    values[target.id] = node.value.value
    return values


def test_constants_match_the_installed_data_juicer():
    """Read from Data-Juicer's sources (importing model_utils costs seconds)."""
    package = Path(importlib.util.find_spec("data_juicer").origin).parent
    model_utils = _assigned_strings(package / "utils" / "model_utils.py")
    assert data_evaluators.QUALITY_MODEL_URL == model_utils["MODEL_LINKS"] + "gpt3_quality_model.zip"
    qc_utils = (package / "tools" / "quality_classifier" / "qc_utils.py").read_text()
    assert 'model_name = "%s_quality_model" % model_name' in qc_utils  # -> gpt3_quality_model
    assert "def predict_score(" in (package / "tools" / "quality_classifier" / "predict.py").read_text()


@pytest.mark.slow
def test_quality_classifier_runs_data_juicers_pipeline_on_a_tiny_trained_model(tmp_path, monkeypatch):
    """Train a tiny model with Data-Juicer's own trainer, then score a dataset with it (pyspark and fire are pinned in
    requirements.txt, so this runs in make test; the gpt3 model itself is a download, which tests never make)."""
    # The Spark session is created here, before the evaluator would set it: its workers must run this interpreter.
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)
    from data_juicer.tools.quality_classifier.qc_utils import init_spark, predict, train
    from pyspark.ml import PipelineModel

    good = ["The committee published a detailed report on regional water supply."] * 10
    bad = ["click here buy now free free free !!!"] * 10
    spark = init_spark("1g", "1g", "512")
    frame = spark.createDataFrame([(t, 1) for t in good] + [(t, 0) for t in bad], ["text", "label"])
    model = tmp_path / "tiny_quality_model"
    train(str(model), frame)

    rows = [{"text": good[0], "id": 1}, {"text": bad[0], "id": 2}, {"text": "a report on water", "id": 3}]
    dataset = write_jsonl(tmp_path / "to_score.jsonl", rows)
    job = make_job(tmp_path, {"type": "dj_text_quality_classifier", "dataset_path": dataset, "model_path": str(model)})
    score = text_quality_evaluator(job)

    scored = predict(PipelineModel.load(str(model)), spark.createDataFrame([(r["text"],) for r in rows], ["text"]))
    doc_scores = [row.doc_score for row in scored.collect()]
    assert doc_scores[0] > 0.5 > doc_scores[1]
    assert score == pytest.approx(sum(doc_scores) / len(doc_scores), rel=1e-9)
    assert not (job.job_dir / data_evaluators.QUALITY_RESULT_DIR).exists()
