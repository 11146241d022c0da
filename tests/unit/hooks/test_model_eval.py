"""EvaluateModelHook type 'perplexity' on real tiny GPT-2 checkpoints (CPU, no hub).

An untrained tiny GPT-2, the same model fine-tuned for 20 steps on template
sentences and a LoRA adapter trained on top of that are evaluated on held-out
sentences of the same template: fine-tuning lowers perplexity; the metric is
the token-weighted mean NLL (checked against the model's own loss and
invariant to batching/padding).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from sandflow.hooks.base import JobRun
from sandflow.hooks.hf.perplexity import EVAL_JSON, evaluate_perplexity, perplexity_of
from sandflow.hooks.hf.tiny_lm import build_tiny_causal_lm
from sandflow.hooks.hf.train import train_huggingface

from helpers.tiny_training import TINY, TRAINING, make_job, template_texts, write_jsonl

# Every test here reads the models the module fixture trains.
pytestmark = pytest.mark.slow


def eval_job(root: Path, name: str, extra_configs: dict, threads: int = 1) -> JobRun:
    return make_job(root, name, extra_configs, hook="EvaluateModelHook", kind="perplexity", threads=threads)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    train = write_jsonl(root / "train.jsonl", template_texts(200, seed=1))
    base = build_tiny_causal_lm(root / "base", template_texts(200, seed=1), vocab_size=300, **TINY)
    common = {"dataset_path": str(train), **TRAINING}
    trained = Path(train_huggingface(make_job(root, "trained", {"model_path": str(base), **common})))
    lora = Path(
        train_huggingface(
            make_job(
                root,
                "lora",
                {"model_path": str(trained), **common, "max_steps": 5, "lora": {"r": 4, "target_modules": ["c_attn"]}},
            )
        )
    )
    held_out = write_jsonl(root / "held_out.jsonl", template_texts(40, seed=2), key="content")
    return {"root": root, "base": base, "trained": trained, "lora": lora, "held_out": held_out}


def test_fine_tuning_lowers_perplexity(models: dict[str, Path], tmp_path: Path) -> None:
    config = {
        "ckpt_paths": [str(models["base"]), str(models["trained"]), str(models["lora"])],
        "dataset_path": str(models["held_out"]),
        "text_key": "content",
        "seq_len": 32,
    }
    job = eval_job(tmp_path, "eval", config, threads=2)  # three checkpoints on two worker processes
    untrained, trained, lora = evaluate_perplexity(job)
    assert json.loads((Path(job.extra_configs["export_path"]) / EVAL_JSON).read_text()) == [untrained, trained, lora]
    assert trained["perplexity"] < 0.5 * untrained["perplexity"]
    assert lora["perplexity"] < 0.5 * untrained["perplexity"]
    assert lora["perplexity"] != trained["perplexity"]  # the adapter was loaded and changes the model
    for result in (untrained, trained, lora):
        assert sorted(result) == ["loss", "num_tokens", "perplexity", "token_accuracy"]
        assert result["perplexity"] == pytest.approx(math.exp(result["loss"]))
    # Training teaches the model to guess the next token.
    assert trained["token_accuracy"] > untrained["token_accuracy"] + 0.1
    # One tokenizer for all three: the same tokens are predicted.
    assert untrained["num_tokens"] == trained["num_tokens"] == lora["num_tokens"] > 0


def test_single_checkpoint_gives_one_dict(models: dict[str, Path], tmp_path: Path) -> None:
    config = {
        "ckpt_paths": str(models["trained"]),
        "dataset_path": [str(models["held_out"])] * 2,
        "text_key": "content",
        "seq_len": 32,
        "per_device_eval_batch_size": 3,
    }
    job = eval_job(tmp_path, "one", config)
    result = evaluate_perplexity(job)
    assert isinstance(result, dict)
    assert json.loads((Path(job.extra_configs["export_path"]) / EVAL_JSON).read_text()) == result
    again = evaluate_perplexity(eval_job(tmp_path, "again", config))
    assert again == result  # deterministic, to the last bit
    # The same checkpoint evaluated in a worker process (of a list on two threads) gives the same numbers.
    in_workers = evaluate_perplexity(
        eval_job(tmp_path, "workers", {**config, "ckpt_paths": [str(models["trained"])] * 2}, threads=2)
    )
    assert in_workers == [result, result]


def test_perplexity_is_token_weighted_mean_nll(models: dict[str, Path]) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(models["trained"], local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(models["trained"], local_files_only=True)
    texts = template_texts(30, seed=5)
    # Blocks of unequal length (the last one is short): padding must not change the mean.
    per_block = perplexity_of(model, tokenizer, texts, seq_len=24, batch_size=1)
    batched = perplexity_of(model, tokenizer, texts, seq_len=24, batch_size=16)
    assert batched["num_tokens"] == per_block["num_tokens"]
    assert batched["loss"] == pytest.approx(per_block["loss"], rel=1e-5)

    # One full block: the model's own mean loss over its predicted tokens.
    ids = tokenizer(texts[0] + tokenizer.eos_token + texts[1], add_special_tokens=False)["input_ids"]
    one = perplexity_of(model, tokenizer, [texts[0], texts[1]], seq_len=len(ids) + 1, batch_size=1)
    with torch.no_grad():
        expected = model(
            input_ids=torch.tensor([ids + [tokenizer.eos_token_id]]),
            labels=torch.tensor([ids + [tokenizer.eos_token_id]]),
        ).loss.item()
    assert one["num_tokens"] == len(ids)
    assert one["loss"] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ckpt_paths": []}, r"extra_configs\.ckpt_paths must be a checkpoint directory or a non-empty list"),
        (
            {"ckpt_paths": "/nonexistent/ckpt"},
            r"extra_configs\.ckpt_paths: no such local model directory /nonexistent/ckpt",
        ),
        ({"dataset_path": None}, r"extra_configs\.dataset_path must be a jsonl path"),
        ({"text_key": "text"}, r"held_out\.jsonl:1: has no string field 'text' \(extra_configs\.text_key\)"),
        ({"per_device_eval_batch_size": 0}, r"extra_configs\.per_device_eval_batch_size must be an integer >= 1"),
        ({"seq_len": 1000}, r"extra_configs\.seq_len=1000 exceeds the model's 64 positions"),
        ({"batch_size": 4}, r"extra_configs\.batch_size is not a known setting"),
    ],
)
def test_bad_config_names_the_key(change: dict, message: str, models: dict[str, Path], tmp_path: Path) -> None:
    config = {"ckpt_paths": str(models["trained"]), "dataset_path": str(models["held_out"]), "text_key": "content"}
    config.update(change)
    with pytest.raises(ValueError, match=message):
        evaluate_perplexity(eval_job(tmp_path, "bad", config))
