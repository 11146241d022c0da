"""EvaluateDataHook components: ``accuracy``, ``mse`` and ``dj_text_quality_classifier``.

``accuracy`` / ``mse`` (DJ-Sandbox's AccuracyEvaluator / MSEEvaluator) compare
a predicted dataset with a ground-truth dataset sample by sample, matched by
position (line order). Config (``extra_configs``):

* ``predicted_dataset_path``: one path or a list (e.g. one inference result per
  data pool); ``ground_truth_dataset_path``: as many paths, or none, in which
  case the ground truth is read from the predicted datasets themselves;
* ``predicted_label_key`` / ``ground_truth_label_key`` (accuracy) or
  ``predicted_value_key`` / ``ground_truth_value_key`` (mse); a dotted key
  reaches into nested fields (``meta.label``), as Data-Juicer's ``nested_query``.

Both return two outputs, as upstream: ``results`` (one dict per predicted
dataset, in order: ``pred_path``, ``gt_path``, ``accuracy`` or ``mse`` and
``format_error``) and the best score (max accuracy / min mse). Labels are
compared as ``str(value)``, as upstream. For mse a predicted value that is
not a number (an unparsed model answer) is counted in ``format_error`` and
skipped, as upstream; so is a non-finite one (upstream would return nan).

Differences from upstream, which silently skips missing datasets, truncates
to the shorter dataset, reads a missing key as ``None`` and divides by zero on
an empty dataset: here each of those is a one-line ValueError naming the file
and line, and so is a ground-truth value that is not a number (upstream counts
it as a format error of the model). Datasets are read as JSON lines or a JSON
array (``.jsonl`` / ``.json``, what the sandbox's jobs write) without
Data-Juicer, so no Arrow schema unification turns ``1`` into ``1.0``.

``dj_text_quality_classifier`` (Gpt3QualityEvaluator) runs Data-Juicer's own
quality classifier (``data_juicer.tools.quality_classifier.predict.predict_score``,
a PySpark pipeline) on ``dataset_path`` and returns the mean ``doc_score``.
Data-Juicer would download the ``gpt3`` model; here it is read from
``extra_configs.model_path`` (default: Data-Juicer's own cache,
``$DATA_JUICER_MODELS_CACHE/gpt3_quality_model``) and a missing model, pyspark,
fire or Java is reported by ``quality_classifier_requirements`` before any job
runs. Spark's scratch result goes to the job directory (upstream writes it
next to the input dataset, where parallel jobs would race) and is removed;
Spark's Python workers run this interpreter (``PYSPARK_PYTHON``, unless set), not
whatever ``python3`` is first on PATH.
"""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sandflow.core.jobio import JobFailed
from sandflow.core.jsonl import BadData, json_rows
from sandflow.hooks.base import JobRun
from sandflow.hooks.dj_requirements import dj_models_cache

__all__ = [
    "Samples",
    "read_samples",
    "dataset_paths",
    "lookup",
    "accuracy",
    "mse",
    "accuracy_evaluator",
    "mse_evaluator",
    "quality_classifier_requirements",
    "quality_model_path",
    "text_quality_evaluator",
]

QUALITY_MODEL_DIR = "gpt3_quality_model"  # Data-Juicer's name for the gpt3 model in its models cache
# data_juicer.utils.model_utils.MODEL_LINKS (py-data-juicer 1.6.1); a test checks it against Data-Juicer.
QUALITY_MODEL_URL = "https://dail-wlcb.oss-cn-wulanchabu.aliyuncs.com/data_juicer/models/gpt3_quality_model.zip"
QUALITY_RESULT_DIR = "quality_classifier_result.jsonl"  # Spark's output directory, removed after the run


class Samples(list):
    """The rows of one dataset file, remembering where each came from (for error messages)."""

    def __init__(self, rows: list[dict[str, Any]], path: str, lines: list[int] | None) -> None:
        super().__init__(rows)
        self.path = path
        self.lines = lines  # line numbers (JSON lines); None for a JSON array

    def where(self, index: int) -> str:
        if self.lines is not None:
            return f"{self.path} line {self.lines[index]}"
        return f"{self.path} sample {index + 1}"


def where(rows: Sequence[Any], index: int, role: str) -> str:
    return rows.where(index) if isinstance(rows, Samples) else f"{role} sample {index + 1}"


def read_samples(path: str) -> Samples:
    """A JSON-lines file or a JSON array of objects (Data-Juicer writes ``.json`` exports as an array)."""
    if Path(path).suffix.lower() not in (".json", ".jsonl"):
        raise ValueError(f"{path}: only .jsonl and .json datasets can be read here")
    rows, lines = json_rows(path)  # a bad line fails the job naming it
    samples = Samples(rows, path, lines)
    for index, row in enumerate(samples):
        if not isinstance(row, dict):
            raise BadData(
                path,
                lines[index] if lines else None,
                "not a JSON object" if lines else f"sample {index + 1} is not a JSON object",
            )
    return samples


MISSING = object()


def lookup(sample: Mapping[str, Any], key: str) -> Any:
    """``sample[key]`` where a dotted key may name a flat field ("a.b") or a nested one (a -> b); MISSING if neither."""
    parts = key.split(".")
    node: Any = sample
    for start in range(len(parts)):
        if not isinstance(node, Mapping):
            return MISSING
        rest = ".".join(parts[start:])
        if rest in node:
            return node[rest]
        if parts[start] not in node:
            return MISSING
        node = node[parts[start]]
    return MISSING


def _paired(pred_rows: Sequence[Any], truth_rows: Sequence[Any]) -> None:
    pred_name = pred_rows.path if isinstance(pred_rows, Samples) else "the predicted dataset"
    truth_name = truth_rows.path if isinstance(truth_rows, Samples) else "the ground truth dataset"
    if len(pred_rows) != len(truth_rows):
        raise ValueError(
            f"{pred_name} has {len(pred_rows)} samples but {truth_name} has {len(truth_rows)}: "
            f"samples are matched by position, so both must have the same number"
        )
    if not pred_rows:
        raise ValueError(f"{pred_name} has no samples to evaluate")


def _value(rows: Sequence[Mapping[str, Any]], index: int, key: str, role: str) -> Any:
    value = lookup(rows[index], key)
    if value is MISSING:
        raise ValueError(f"{where(rows, index, role)} has no key {key!r}")
    return value


def accuracy(
    pred_rows: Sequence[Mapping[str, Any]],
    truth_rows: Sequence[Mapping[str, Any]],
    predicted_label_key: str,
    ground_truth_label_key: str,
) -> float:
    """The share of samples whose predicted label equals the ground-truth label (both as ``str``), by position."""
    _paired(pred_rows, truth_rows)
    hits = sum(
        str(_value(pred_rows, i, predicted_label_key, "predicted"))
        == str(_value(truth_rows, i, ground_truth_label_key, "ground truth"))
        for i in range(len(pred_rows))
    )
    return hits / len(pred_rows)


def _number(value: Any) -> float | None:
    """float(value) as upstream (numbers, numeric strings, booleans); None when it is not a finite number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def mse(
    pred_rows: Sequence[Mapping[str, Any]],
    truth_rows: Sequence[Mapping[str, Any]],
    predicted_value_key: str,
    ground_truth_value_key: str,
) -> tuple[float, int]:
    """(mean squared error, number of predicted values that are not numbers and were skipped), by position."""
    _paired(pred_rows, truth_rows)
    squared, format_errors = [], 0
    for i in range(len(pred_rows)):
        truth_value = _value(truth_rows, i, ground_truth_value_key, "ground truth")
        truth = _number(truth_value)
        if truth is None:
            raise ValueError(
                f"{where(truth_rows, i, 'ground truth')}: {ground_truth_value_key!r} is {truth_value!r}, not a number"
            )
        predicted = _number(_value(pred_rows, i, predicted_value_key, "predicted"))
        if predicted is None:
            format_errors += 1
            continue
        squared.append((predicted - truth) ** 2)
    if not squared:
        name = pred_rows.path if isinstance(pred_rows, Samples) else "the predicted dataset"
        raise ValueError(f"no {predicted_value_key!r} value in {name} is a number ({format_errors} format errors)")
    return math.fsum(squared) / len(squared), format_errors


def dataset_paths(extra: Mapping[str, Any], key: str, required: bool = True) -> list[str]:
    """extra_configs.<key>: one existing file path or a list of them ([] when optional and unset)."""
    value = extra.get(key)
    if value in (None, "", []) and not required:
        return []
    paths = [value] if isinstance(value, str) else value
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p for p in paths):
        raise ValueError(f"extra_configs.{key} must be a dataset path or a non-empty list of them, got {value!r}")
    for path in paths:
        if not os.path.isfile(path):
            raise ValueError(f"extra_configs.{key}: {path} does not exist")
    return paths


def _required_key(extra: Mapping[str, Any], key: str) -> str:
    value = extra.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"extra_configs.{key} must name the field to compare, got {value!r}")
    return value


def _dataset_pairs(job: JobRun) -> list[tuple[str, str]]:
    extra = job.extra_configs or {}
    predicted = dataset_paths(extra, "predicted_dataset_path")
    truth = dataset_paths(extra, "ground_truth_dataset_path", required=False)
    if not truth:
        job.log.warning(
            "extra_configs.ground_truth_dataset_path is not set: the ground truth is read from the predicted datasets"
        )
        truth = predicted
    if len(truth) != len(predicted):
        raise ValueError(
            f"extra_configs.ground_truth_dataset_path has {len(truth)} paths but "
            f"extra_configs.predicted_dataset_path has {len(predicted)}: give one per predicted dataset"
        )
    return list(zip(predicted, truth))


def score_each(
    job: JobRun, pred_key_name: str, truth_key_name: str, score: Callable[[Samples, Samples, str, str], dict[str, Any]]
) -> list[dict[str, Any]]:
    """One result per (predicted, ground truth) dataset pair: their paths, then score(...)'s metrics."""
    extra = job.extra_configs or {}
    pred_key = _required_key(extra, pred_key_name)
    truth_key = _required_key(extra, truth_key_name)
    results = []
    for pred_path, truth_path in _dataset_pairs(job):
        pred_rows = read_samples(pred_path)
        truth_rows = pred_rows if truth_path == pred_path else read_samples(truth_path)
        metrics = score(pred_rows, truth_rows, pred_key, truth_key)
        job.log.info("%s against %s: %s", pred_path, truth_path, metrics)
        results.append({"pred_path": pred_path, "gt_path": truth_path, **metrics})
    return results


def accuracy_evaluator(job: JobRun) -> tuple[list[dict[str, Any]], float]:
    """EvaluateDataHook type 'accuracy': (one result per predicted dataset, the best accuracy)."""
    results = score_each(
        job, "predicted_label_key", "ground_truth_label_key", lambda *args: {"accuracy": accuracy(*args)}
    )
    return results, max(r["accuracy"] for r in results)


def mse_evaluator(job: JobRun) -> tuple[list[dict[str, Any]], float]:
    """EvaluateDataHook type 'mse': (one result per predicted dataset, the lowest mse)."""
    results = score_each(
        job,
        "predicted_value_key",
        "ground_truth_value_key",
        lambda *args: dict(zip(("mse", "format_error"), mse(*args))),
    )
    return results, min(r["mse"] for r in results)


def quality_model_path(extra_configs: Mapping[str, Any] | None) -> Path:
    """extra_configs.model_path, or where Data-Juicer keeps its downloaded gpt3 quality model."""
    value = (extra_configs or {}).get("model_path")
    return Path(os.path.expanduser(value)) if value else dj_models_cache() / QUALITY_MODEL_DIR


def _java_found() -> bool:
    java_home = os.environ.get("JAVA_HOME")
    return bool(shutil.which("java") or (java_home and os.access(os.path.join(java_home, "bin", "java"), os.X_OK)))


def quality_classifier_requirements(
    dj_configs: Mapping[str, Any] | None, extra_configs: Mapping[str, Any] | None
) -> list[str]:
    """What dj_text_quality_classifier lacks here, one line each (cheap: imports nothing)."""
    missing = []
    name = "dj_text_quality_classifier"
    if importlib.util.find_spec("pyspark") is None:
        missing.append(f"{name} needs pyspark, which is not installed (pip install pyspark)")
    if importlib.util.find_spec("fire") is None:
        missing.append(
            f"{name} needs fire, imported by Data-Juicer's quality_classifier.predict, which is not "
            f"installed (pip install fire)"
        )
    if not _java_found():
        missing.append(f"{name} needs a Java runtime for pyspark: no java on PATH or in $JAVA_HOME/bin")
    value = (extra_configs or {}).get("model_path")
    if value is not None and (not isinstance(value, str) or not value):
        return missing + [f"{name}: extra_configs.model_path must be a directory path, got {value!r}"]
    model = quality_model_path(extra_configs)
    if not (model / "metadata").is_dir():
        state = "is not a Spark PipelineModel directory (no metadata/)" if model.exists() else "is missing"
        missing.append(
            f"{name} needs Data-Juicer's gpt3 quality classifier model at {model} "
            f"(extra_configs.model_path), which {state}: unzip {QUALITY_MODEL_URL} into {model.parent}"
        )
    return missing


def text_quality_evaluator(job: JobRun) -> float:
    """EvaluateDataHook type 'dj_text_quality_classifier': the mean quality score of extra_configs.dataset_path."""
    extra = job.extra_configs or {}
    dataset_path = extra.get("dataset_path")
    if not isinstance(dataset_path, str) or not os.path.isfile(dataset_path):
        raise ValueError(f"extra_configs.dataset_path must be an existing dataset file, got {dataset_path!r}")
    if not dataset_path.endswith((".json", ".jsonl", ".parquet")):
        raise ValueError(
            f"extra_configs.dataset_path: {dataset_path}: the quality classifier reads only "
            f".json, .jsonl and .parquet files"
        )
    text_key = extra.get("text_key", "text")
    if not isinstance(text_key, str) or not text_key:
        raise ValueError(f"extra_configs.text_key must be a field name, got {text_key!r}")
    missing = quality_classifier_requirements(job.dj_configs, extra)
    if missing:
        raise JobFailed(f"cannot run here: {missing[0]}")
    model = quality_model_path(extra)
    result_dir = Path(job.job_dir) / QUALITY_RESULT_DIR

    from sandflow.hooks.data_juicer import dj_session

    # Spark's Python workers run "python3" from PATH unless told otherwise: make them use this interpreter (its
    # packages: pyarrow, numpy), as the driver does.
    for name in ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON"):
        os.environ.setdefault(name, sys.executable)
    with dj_session(job):
        from data_juicer.tools.quality_classifier.predict import predict_score

        job.log.info("scoring %s with the quality classifier in %s", dataset_path, model)
        # A model given as a path gets predict_score's gpt3 settings: Spark's standard tokenizer, keep_method gpt3.
        overall = predict_score(dataset_path, str(result_dir), model=str(model), text_key=text_key, overall_stats=True)
    shutil.rmtree(result_dir, ignore_errors=True)
    score = float(overall.loc["mean", "doc_score"])
    job.log.info("mean quality score: %s", score)
    return score
