"""The GPU paths for real: HF training and inference on CUDA, 2-GPU data-parallel training, vllm inference.

Every test here is marked ``gpu`` and skips, saying why, where torch sees no CUDA device (or vllm is missing);
``tests/gpu/run.sh`` builds the GPU environment (requirements-gpu.txt) and runs just these.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandflow.hooks.hf.devices import DEVICE_JSON
from sandflow.hooks.hf.models import load_checkpoint
from sandflow.hooks.hf.perplexity import evaluate_perplexity
from sandflow.hooks.hf.tiny_lm import build_tiny_causal_lm
from sandflow.hooks.hf.train import train_huggingface
from sandflow.hooks.llm.infer import infer_model

from helpers.tiny_training import TRAINING, make_job, template_texts, write_jsonl


def cuda_devices() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(cuda_devices() == 0, reason="needs a CUDA GPU, and torch sees none (tests/gpu/run.sh)"),
]

# head size 64 (128 wide, 2 heads): a size every vllm attention backend has kernels for.
GPU_TINY = {"n_layer": 2, "n_embd": 128, "n_head": 2, "n_positions": 128}
CHAT_TEMPLATE = "{% for message in messages %}{{ message['content'] }}\n{% endfor %}"
# Looser than on CPU (5e-3, tests/workflow/test_hf_devices.py): GPU kernels round differently per batch shape.
LOSS_TOLERANCE = 1e-2


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("gpu") / "train.jsonl", template_texts(400, 1))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GPT-2 without dropout, its tokenizer with a plain chat template (vllm's chat needs one)."""
    directory = tmp_path_factory.mktemp("model") / "model"
    build_tiny_causal_lm(directory, template_texts(400, 1), vocab_size=300, **GPU_TINY)
    config = json.loads((directory / "config.json").read_text())
    config.update(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    (directory / "config.json").write_text(json.dumps(config))
    _, tokenizer = load_checkpoint(directory)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(directory)
    return directory


def precision() -> str:
    import torch

    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def losses(job_dir: Path) -> list[float]:
    return [row["loss"] for row in json.loads((job_dir / "extra_configs.export_path" / "train_log.json").read_text())]


def test_training_perplexity_and_hf_inference_run_on_cuda(model_dir: Path, corpus: Path, tmp_path: Path) -> None:
    train = make_job(tmp_path, "train", {"model_path": str(model_dir), "dataset_path": str(corpus), **TRAINING,
                                         "num_processes": 1, "precision": precision()})  # fmt: skip
    train_huggingface(train)
    record = json.loads((train.job_dir / DEVICE_JSON).read_text())
    assert record["device"] == "cuda" and record["precision"] == precision() and record["num_processes"] == 1
    assert record["device_names"]
    trained = losses(train.job_dir)
    assert trained[-1] < trained[0]
    checkpoint = train.job_dir / "extra_configs.export_path"

    evaluate = make_job(tmp_path, "ppl", {"ckpt_paths": str(checkpoint), "dataset_path": str(corpus)},
                        hook="EvaluateModelHook", kind="perplexity")  # fmt: skip
    assert evaluate_perplexity(evaluate)["perplexity"] < 300
    assert json.loads((evaluate.job_dir / DEVICE_JSON).read_text())["device"] == "cuda"

    prompts = write_jsonl(tmp_path / "prompts.jsonl", ["the red cat", "the blue dog"])
    infer = make_job(tmp_path, "infer", {"model": str(model_dir), "dataset_path": str(prompts),
                                         "sampling_params": {"max_new_tokens": 8}}, hook="InferModelHook")  # fmt: skip
    (result,) = infer_model(infer)
    rows = [json.loads(line) for line in Path(result).read_text().splitlines()]
    assert [row["text"] for row in rows] == ["the red cat", "the blue dog"]
    assert all(isinstance(row["response"], str) for row in rows)
    assert json.loads((infer.job_dir / DEVICE_JSON).read_text())["device"] == "cuda"


@pytest.mark.skipif(cuda_devices() < 2, reason="needs 2 CUDA GPUs for data-parallel training")
def test_two_gpus_train_as_one_with_the_same_global_batch(model_dir: Path, corpus: Path, tmp_path: Path) -> None:
    common = {"model_path": str(model_dir), "dataset_path": str(corpus), **TRAINING, "logging_steps": 2}
    one = make_job(tmp_path, "one", {**common, "per_device_train_batch_size": 8, "num_processes": 1})
    two = make_job(tmp_path, "two", {**common, "per_device_train_batch_size": 4, "num_processes": 2})
    train_huggingface(one)
    train_huggingface(two)
    assert json.loads((two.job_dir / DEVICE_JSON).read_text())["num_processes"] == 2
    single, parallel = losses(one.job_dir), losses(two.job_dir)
    assert len(single) == len(parallel) == 10
    assert max(abs(a - b) for a, b in zip(single, parallel)) <= LOSS_TOLERANCE, (single, parallel)
    load_checkpoint(two.job_dir / "extra_configs.export_path")


def test_vllm_answers_on_the_gpu(model_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("vllm", reason="vllm is not installed (tests/gpu/run.sh installs requirements-gpu.txt)")
    prompts = write_jsonl(tmp_path / "prompts.jsonl", ["the red cat", "the blue dog", "the green fox"])
    settings = {
        "model": str(model_dir),
        "dataset_path": str(prompts),
        "sampling_params": {"max_tokens": 8, "temperature": 0},
        # A small share of a shared GPU; no CUDA graphs to capture: the model answers three prompts.
        "model_params": {
            "gpu_memory_utilization": 0.3,
            "enforce_eager": True,
            "max_model_len": 128,
            "tensor_parallel_size": 1,
        },
    }
    job = make_job(tmp_path, "vllm", settings, hook="InferModelHook", kind="vllm")
    (path,) = infer_model(job)
    rows = [json.loads(line) for line in Path(path).read_text().splitlines()]
    assert [row["text"] for row in rows] == ["the red cat", "the blue dog", "the green fox"]
    assert all(isinstance(row["response"], str) for row in rows)  # a random tiny model may answer EOS at once
    assert json.loads((job.job_dir / DEVICE_JSON).read_text())["device"] == "cuda"
