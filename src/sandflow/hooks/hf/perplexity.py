"""EvaluateModelHook type 'perplexity': token-weighted perplexity of causal LMs on held-out jsonl texts.

sandflow's own evaluator (DJ-Sandbox's only model evaluator runs InternVL's
COCO-caption scripts). Its extra_configs:

* ``ckpt_paths`` — a checkpoint directory or a list of them (DJ-Sandbox's key
  for the checkpoints an EvaluateModelHook reads): save_pretrained directories
  or LoRA adapter directories of TrainModelHook type 'huggingface';
* ``dataset_path`` — a jsonl file or a list of them (concatenated in order),
  ``text_key`` (default ``text``);
* ``seq_len`` (default min(128, the model's positions)),
  ``per_device_eval_batch_size`` (8);
* ``precision`` — ``fp32`` (default), ``bf16`` or ``fp16`` (CUDA only): the
  dtype the models are cast to;
* ``export_path`` — the directory for ``eval.json``.

Models run on CUDA when the job sees a GPU, else on the CPU (hf/devices.py);
``device.json`` in the job directory records which, and the precision.

Texts are packed as for training (each followed by EOS, cut into seq_len
blocks). ``loss`` is the mean negative log-likelihood over every predicted
token (every block token but the first), ``perplexity`` is exp(loss),
``num_tokens`` the number of predicted tokens. Perplexities are comparable only
between models sharing a tokenizer and a seq_len.

Result shape follows ``ckpt_paths``: one checkpoint path -> one dict
``{"loss", "num_tokens", "perplexity", "token_accuracy"}``; a list -> a list of such dicts in
the same order, as DJ-Sandbox's evaluators return one result per checkpoint
(a one-element list becomes its element under DJ-Sandbox's output rule).
``eval.json`` holds exactly the returned value.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Any

from sandflow.core.atomic import write_text_atomic
from sandflow.hooks.base import JobRun
from sandflow.hooks.hf.devices import Placement, job_placement, write_device_record
from sandflow.hooks.hf.models import (
    check_known_keys,
    collate_blocks,
    dataset_paths,
    int_setting,
    load_checkpoint,
    local_model_dir,
    pack_blocks,
    pad_id_of,
    read_texts,
    seq_len_setting,
    text_key_setting,
)
from sandflow.hooks.hf.train import export_dir, single_thread
from sandflow.hooks.hf.workers import map_models

__all__ = ["evaluate_perplexity", "perplexity_of", "EVAL_JSON"]

EVAL_JSON = "eval.json"

PERPLEXITY_KEYS = frozenset(
    {
        "type",
        "export_path",
        "ckpt_paths",
        "dataset_path",
        "text_key",
        "seq_len",
        "per_device_eval_batch_size",
        "precision",
    }
)


def perplexity_of(
    model: Any, tokenizer: Any, texts: list[str], seq_len: int, batch_size: int, device: str = "cpu"
) -> dict[str, Any]:
    """{"loss": mean NLL per predicted token, "num_tokens": predicted tokens, "perplexity": exp(loss),
    "token_accuracy": share of predicted tokens that are the model's top-1 guess}, with the model on device."""
    import torch
    import torch.nn.functional as F

    blocks = pack_blocks(texts, tokenizer, seq_len)
    if not blocks:
        raise ValueError("extra_configs.dataset_path holds no text to evaluate on (every text is empty)")
    pad_id = pad_id_of(tokenizer)
    total_nll = 0.0
    num_tokens = 0
    num_correct = 0
    model.eval()
    with torch.no_grad(), single_thread():
        for start in range(0, len(blocks), batch_size):
            batch = {
                name: tensor.to(device)
                for name, tensor in collate_blocks(blocks[start : start + batch_size], pad_id).items()
            }
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            # Position i predicts token i + 1.
            targets = batch["labels"][:, 1:]
            predicted = logits[:, :-1].float()
            total_nll += F.cross_entropy(
                predicted.reshape(-1, predicted.shape[-1]), targets.reshape(-1), ignore_index=-100, reduction="sum"
            ).item()
            counted = targets != -100
            num_tokens += int(counted.sum())
            num_correct += int(((predicted.argmax(dim=-1) == targets) & counted).sum())
    loss = total_nll / num_tokens
    return {
        "loss": loss,
        "num_tokens": num_tokens,
        "perplexity": math.exp(loss),
        "token_accuracy": num_correct / num_tokens,
    }


def evaluate_checkpoint(
    job: JobRun, texts: list[str], batch_size: int, placement: Placement, model_dir: Path
) -> dict[str, Any]:
    """Perplexity metrics of one checkpoint on texts: a worker process's unit of work."""
    model, tokenizer = load_checkpoint(model_dir)
    model.to(device=placement.device, dtype=placement.torch_dtype)
    seq_len = seq_len_setting(job.extra_configs or {}, model, "extra_configs")
    metrics = perplexity_of(model, tokenizer, texts, seq_len, batch_size, placement.device)
    job.log.info(
        "%s: perplexity %.4f, next-token accuracy %.4f (loss %.4f over %d tokens)",
        model_dir,
        metrics["perplexity"],
        metrics["token_accuracy"],
        metrics["loss"],
        metrics["num_tokens"],
    )
    return metrics


def evaluate_perplexity(job: JobRun) -> dict[str, Any] | list[dict[str, Any]]:
    """EvaluateModelHook type 'perplexity': one result per checkpoint, also written to <export_path>/eval.json."""
    cfg = job.extra_configs or {}
    where = "extra_configs"
    check_known_keys(cfg, PERPLEXITY_KEYS, where)
    ckpt_paths = cfg.get("ckpt_paths")
    checkpoints = [ckpt_paths] if isinstance(ckpt_paths, str) else ckpt_paths
    if not isinstance(checkpoints, list) or not checkpoints:
        raise ValueError(
            f"{where}.ckpt_paths must be a checkpoint directory or a non-empty list of them, got {ckpt_paths!r}"
        )
    model_dirs = [local_model_dir(path, f"{where}.ckpt_paths") for path in checkpoints]
    texts = read_texts(dataset_paths(cfg, "dataset_path", where), text_key_setting(cfg, where))
    batch_size = int_setting(cfg, "per_device_eval_batch_size", 8, where)
    export = export_dir(cfg)
    placement = job_placement(cfg, where)

    evaluate = functools.partial(evaluate_checkpoint, job, texts, batch_size, placement)
    # On CPU one worker process per model; a GPU is taken by one model at a time.
    results = map_models(job, evaluate, model_dirs) if placement.device == "cpu" else list(map(evaluate, model_dirs))
    write_device_record(job.job_dir, placement)
    value = results[0] if isinstance(ckpt_paths, str) else results
    write_text_atomic(export / EVAL_JSON, json.dumps(value, indent=2, sort_keys=True) + "\n")
    return value
