"""TrainModelHook type 'huggingface' and the tiny GPT-2 builder, run for real on CPU (no hub).

A tiny GPT-2 (2 layers, 32 wide) built from a generated corpus of
template sentences is fine-tuned for 20 steps: loss falls, two runs give
byte-identical checkpoints, LoRA saves adapter + base, model_config trains a
new model with a tokenizer of its own; bad settings fail naming the key.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from sandflow.hooks.hf import models as hf_models
from sandflow.hooks.hf import train as hf_train
from sandflow.hooks.hf.tiny_lm import build_tiny_causal_lm
from sandflow.hooks.hf.train import huggingface_train_requirements, train_huggingface

from helpers.tiny_training import TINY, TRAINING, make_job, template_texts, write_jsonl


def tree_sha256(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def new_model_config(corpus: dict[str, Path], max_steps: int) -> dict:
    """extra_configs training a new tiny GPT-2 (model_config, its own tokenizer) on the corpus's train split."""
    return {
        "model_config": {"architecture": "gpt2", **TINY, "vocab_size": 300},
        "dataset_path": str(corpus["train"]),
        **TRAINING,
        "max_steps": max_steps,
    }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("corpus")
    texts = template_texts(200, seed=1)
    return {
        "root": root,
        "train": write_jsonl(root / "train.jsonl", texts),
        "base": build_tiny_causal_lm(root / "base", texts, vocab_size=300, **TINY),
    }


@pytest.fixture(scope="module")
def two_runs(corpus: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("runs")
    checkpoints = []
    for name in ("first", "second"):
        # Each run reads its own copy of the inputs: no input path may leak into the checkpoint.
        inputs = root / f"{name}-inputs"
        shutil.copytree(corpus["base"], inputs / "base")
        shutil.copy(corpus["train"], inputs / "train.jsonl")
        config = {"model_path": str(inputs / "base"), "dataset_path": str(inputs / "train.jsonl"), **TRAINING}
        checkpoints.append(Path(train_huggingface(make_job(root, name, config))))
    return checkpoints


def test_tiny_lm_build_is_deterministic_and_loadable(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    texts = template_texts(50, seed=3)
    first = build_tiny_causal_lm(tmp_path / "a", texts, vocab_size=300, **TINY)
    second = build_tiny_causal_lm(tmp_path / "b", texts, vocab_size=300, **TINY)
    assert first == tmp_path / "a"
    assert {p.name for p in first.iterdir()} == {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    }
    assert tree_sha256(first) == tree_sha256(second)
    other_seed = build_tiny_causal_lm(tmp_path / "c", texts, vocab_size=300, seed=7, **TINY)
    assert (other_seed / "model.safetensors").read_bytes() != (first / "model.safetensors").read_bytes()

    tokenizer = AutoTokenizer.from_pretrained(first, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(first, local_files_only=True)
    assert len(tokenizer) <= 300 and model.config.vocab_size == len(tokenizer)
    assert model.config.n_positions == 64 and model.config.n_layer == 2
    assert tokenizer.eos_token == tokenizer.pad_token == "<|endoftext|>"
    unseen = "Zebra ünïcode ✓"  # byte-level: every byte stays encodable
    assert tokenizer.decode(tokenizer(unseen)["input_ids"]) == unseen


@pytest.mark.slow
def test_training_lowers_loss_and_writes_logs(two_runs: list[Path]) -> None:
    checkpoint = two_runs[0]
    assert checkpoint.name == "extra_configs.export_path"
    assert {p.name for p in checkpoint.iterdir()} == {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "train_log.json",
        "train_log.csv",
        "metrics.json",
    }
    log = json.loads((checkpoint / "train_log.json").read_text())
    assert [row["step"] for row in log] == [5, 10, 15, 20]
    assert log[-1]["loss"] < 0.8 * log[0]["loss"]
    with open(checkpoint / "train_log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["step", "epoch", "loss", "grad_norm", "learning_rate"]
    assert [float(row["loss"]) for row in rows] == [row["loss"] for row in log]
    metrics = json.loads((checkpoint / "metrics.json").read_text())
    assert metrics["global_step"] == 20 and metrics["seq_len"] == 32 and metrics["num_texts"] == 200
    assert metrics["trainable_parameters"] == metrics["total_parameters"] > 0
    assert not any("runtime" in key for key in metrics)
    assert not list(checkpoint.parent.glob(hf_train.TRAINER_SCRATCH + "*"))


@pytest.mark.slow
def test_two_runs_give_identical_checkpoints(two_runs: list[Path], corpus: dict[str, Path]) -> None:
    assert tree_sha256(two_runs[0]) == tree_sha256(two_runs[1])
    # ... and training changed the weights.
    assert (two_runs[0] / "model.safetensors").read_bytes() != (corpus["base"] / "model.safetensors").read_bytes()


@pytest.mark.slow
def test_lora_saves_adapter_and_base(two_runs: list[Path], tmp_path: Path, corpus: dict[str, Path]) -> None:
    config = {
        "model_path": str(two_runs[0]),
        "dataset_path": str(corpus["train"]),
        **TRAINING,
        "max_steps": 5,
        "lora": {"r": 4, "alpha": 8, "target_modules": ["c_attn"]},
    }
    checkpoint = Path(train_huggingface(make_job(tmp_path, "lora", config)))
    names = {str(p.relative_to(checkpoint)) for p in checkpoint.rglob("*") if p.is_file()}
    assert {
        "adapter_config.json",
        "adapter_model.safetensors",
        "base_model/model.safetensors",
        "base_model/config.json",
        "tokenizer.json",
        "metrics.json",
    } <= names
    assert "model.safetensors" not in names and "README.md" not in names
    adapter = json.loads((checkpoint / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == "base_model" and adapter["r"] == 4
    # The base is saved untouched: the fine-tuned model it started from.
    assert (checkpoint / "base_model/model.safetensors").read_bytes() == (
        two_runs[0] / "model.safetensors"
    ).read_bytes()
    metrics = json.loads((checkpoint / "metrics.json").read_text())
    assert 0 < metrics["trainable_parameters"] < metrics["total_parameters"]

    for path in checkpoint.rglob("*"):
        if path.is_file():
            assert str(two_runs[0]).encode() not in path.read_bytes(), f"{path.name} names the base's location"

    model, _ = hf_models.load_checkpoint(checkpoint)
    assert type(model).__name__ == "PeftModelForCausalLM"

    # Training on from an adapter checkpoint trains the merged model.
    merged = Path(
        train_huggingface(
            make_job(tmp_path, "on", {**config, "model_path": str(checkpoint), "max_steps": 2, "lora": None})
        )
    )
    from safetensors import safe_open

    with safe_open(merged / "model.safetensors", "pt") as weights:
        assert "transformer.h.0.attn.c_attn.weight" in weights.keys()
        assert not any("lora" in name or "base_layer" in name for name in weights.keys())


@pytest.mark.slow
def test_model_config_trains_new_model_with_own_tokenizer(tmp_path: Path, corpus: dict[str, Path]) -> None:
    config = new_model_config(corpus, max_steps=10)
    checkpoint = Path(train_huggingface(make_job(tmp_path, "new", config)))
    model_config = json.loads((checkpoint / "config.json").read_text())
    assert model_config["n_embd"] == 32 and model_config["vocab_size"] <= 300
    log = json.loads((checkpoint / "train_log.json").read_text())
    assert log[-1]["loss"] < log[0]["loss"]


def test_read_texts_reads_files_in_order(tmp_path: Path) -> None:
    first = write_jsonl(tmp_path / "a.jsonl", ["one", "two"])
    second = write_jsonl(tmp_path / "b.jsonl", ["three"], key="content")
    with pytest.raises(ValueError, match=r"b\.jsonl:1: has no string field 'text' \(extra_configs\.text_key\)"):
        hf_models.read_texts([first, second], "text")
    write_jsonl(second, ["three"])
    assert hf_models.read_texts([first, second], "text") == ["one", "two", "three"]


@pytest.mark.slow
def test_a_list_of_pools_trains_one_model_per_pool(tmp_path: Path, corpus: dict[str, Path]) -> None:
    texts = template_texts(60, seed=3)
    pools = [
        write_jsonl(tmp_path / "pool_low.jsonl", texts[:30]),
        write_jsonl(tmp_path / "pool_high.jsonl", texts[30:]),
    ]
    config = {"model_path": str(corpus["base"]), **TRAINING, "max_steps": 3}
    # Two threads: the two models train at once, in two worker processes.
    job = make_job(tmp_path, "pools", {**config, "dataset_path": [str(p) for p in pools]}, threads=2)
    checkpoints = train_huggingface(job)
    export = Path(job.extra_configs["export_path"])
    assert checkpoints == [str(export / "pool_low"), str(export / "pool_high")]
    # Each is exactly the model trained on that pool alone, in the job's own process.
    alone = Path(train_huggingface(make_job(tmp_path, "alone", {**config, "dataset_path": str(pools[1])})))
    assert tree_sha256(Path(checkpoints[1])) == tree_sha256(alone) != tree_sha256(Path(checkpoints[0]))
    # Each model had its own Trainer scratch (one removing a shared one under the other failed CI), all gone.
    scratches = {hf_train.trainer_scratch(Path(job.job_dir), Path(c)) for c in checkpoints}
    assert len(scratches) == 2 and not any(path.exists() for path in scratches)
    same_name = make_job(tmp_path, "clash", {**config, "dataset_path": [str(pools[0]), str(pools[0])]})
    with pytest.raises(ValueError, match=r"extra_configs\.dataset_path: two pools are named 'pool_low'"):
        train_huggingface(same_name)


def test_max_steps_0_saves_the_initial_model(tmp_path: Path, corpus: dict[str, Path]) -> None:
    config = new_model_config(corpus, max_steps=0)
    first = Path(train_huggingface(make_job(tmp_path, "init1", config)))
    second = Path(train_huggingface(make_job(tmp_path, "init2", config)))
    assert tree_sha256(first) == tree_sha256(second)
    metrics = json.loads((first / "metrics.json").read_text())
    assert metrics["global_step"] == 0 and metrics["train_loss"] is None
    assert json.loads((first / "train_log.json").read_text()) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model_path": None}, r"extra_configs needs exactly one of model_path .* and model_config"),
        ({"model_config": {"n_layer": 1}}, r"extra_configs needs exactly one of model_path"),
        ({"learning_rat": 0.1}, r"extra_configs\.learning_rat is not a known setting"),
        ({"max_steps": -1}, r"extra_configs\.max_steps must be an integer >= 0, got -1"),
        ({"learning_rate": "fast"}, r"extra_configs\.learning_rate must be a positive number, got 'fast'"),
        (
            {"dataset_path": "/nonexistent/train.jsonl"},
            r"extra_configs\.dataset_path: no such file /nonexistent/train\.jsonl",
        ),
        ({"dataset_path": []}, r"extra_configs\.dataset_path must be a jsonl path or a non-empty list"),
        ({"text_key": "body"}, r"has no string field 'body' \(extra_configs\.text_key\)"),
        (
            {"model_path": "/nonexistent/model"},
            r"extra_configs\.model_path: no such local model directory /nonexistent/model",
        ),
        ({"seq_len": 65}, r"extra_configs\.seq_len=65 exceeds the model's 64 positions"),
        ({"lora": {"rank": 4}}, r"extra_configs\.lora\.rank is not a known setting"),
    ],
)
def test_bad_config_names_the_key(change: dict, message: str, corpus: dict[str, Path], tmp_path: Path) -> None:
    config = {"model_path": str(corpus["base"]), "dataset_path": str(corpus["train"]), **TRAINING}
    config.update(change)
    config = {key: value for key, value in config.items() if value is not None}
    with pytest.raises(ValueError, match=message):
        train_huggingface(make_job(tmp_path, "bad", config))


def test_bad_model_config_names_the_key(corpus: dict[str, Path], tmp_path: Path) -> None:
    base = {"dataset_path": str(corpus["train"]), **TRAINING}
    with pytest.raises(ValueError, match=r"extra_configs\.model_config\.architecture must be 'gpt2', got 'llama'"):
        train_huggingface(make_job(tmp_path, "llama", {**base, "model_config": {"architecture": "llama"}}))
    with pytest.raises(ValueError, match=r"extra_configs\.model_config\.vocab_size must be at least 257"):
        train_huggingface(make_job(tmp_path, "small", {**base, "model_config": {"vocab_size": 100}}))
    with pytest.raises(ValueError, match=r"extra_configs\.model_config\.n_embd=30 must be a multiple of n_head=4"):
        train_huggingface(make_job(tmp_path, "odd", {**base, "model_config": {"n_embd": 30, "n_head": 4}}))


def test_requirements(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-model")
    assert huggingface_train_requirements(None, {"type": "huggingface", "model_path": missing}) == [
        f"TrainModelHook type 'huggingface' needs the local model directory {missing} "
        "(extra_configs.model_path; nothing is downloaded)"
    ]
    assert huggingface_train_requirements(None, {"type": "huggingface", "model_path": str(tmp_path)}) == []
    # Relative paths may be written by an earlier job: not checked here.
    assert huggingface_train_requirements(None, {"type": "huggingface", "model_path": "outputs/ckpt"}) == []
    assert huggingface_train_requirements(None, {"type": "huggingface", "model_config": {}}) == []
