"""What the Hugging Face hooks share: reading their settings and texts, packing token blocks, loading and
creating models (a local checkpoint, a LoRA adapter with its base, a new tiny GPT-2)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sandflow.core.jsonl import BadData, numbered_json_lines
from sandflow.hooks.hf.tiny_lm import MIN_VOCAB_SIZE, tiny_gpt2, train_tokenizer

DEFAULT_SEQ_LEN = 128
LORA_KEYS = frozenset({"r", "alpha", "dropout", "target_modules"})
MODEL_CONFIG_DEFAULTS = {"n_layer": 2, "n_embd": 64, "n_head": 2, "n_positions": 128, "vocab_size": 512}
MODEL_CONFIG_KEYS = ("architecture", "n_layer", "n_embd", "n_head", "n_positions", "vocab_size")

BASE_MODEL_SUBDIR = "base_model"  # the LoRA base inside an adapter checkpoint


# --- reading settings ------------------------------------------------------------------------------------------


def check_known_keys(cfg: Mapping[str, Any], known: frozenset[str], where: str) -> None:
    """A misspelt setting would otherwise be ignored silently and train with its default."""
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise ValueError(f"{where}.{unknown[0]} is not a known setting (known: {', '.join(sorted(known))})")


def int_setting(cfg: Mapping[str, Any], key: str, default: int | None, where: str, minimum: int = 1) -> int | None:
    value = cfg.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{where}.{key} must be an integer >= {minimum}, got {value!r}")
    return value


def float_setting(cfg: Mapping[str, Any], key: str, default: float, where: str, *, positive: bool) -> float:
    value = cfg.get(key, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
        or (positive and value == 0)
    ):
        raise ValueError(f"{where}.{key} must be a {'positive' if positive else 'non-negative'} number, got {value!r}")
    return float(value)


def dataset_paths(cfg: Mapping[str, Any], key: str, where: str) -> list[Path]:
    """A jsonl path or a non-empty list of them; every one must be an existing file."""
    value = cfg.get(key)
    paths = [value] if isinstance(value, str) else value
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p for p in paths):
        raise ValueError(f"{where}.{key} must be a jsonl path or a non-empty list of them, got {value!r}")
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise ValueError(f"{where}.{key}: no such file {missing[0]}")
    return [Path(p) for p in paths]


def text_key_setting(cfg: Mapping[str, Any], where: str) -> str:
    text_key = cfg.get("text_key", "text")
    if not isinstance(text_key, str) or not text_key:
        raise ValueError(f"{where}.text_key must be a non-empty string, got {text_key!r}")
    return text_key


# --- texts and token blocks ------------------------------------------------------------------------------------


def read_texts(paths: list[Path], text_key: str) -> list[str]:
    """The text_key field of every jsonl row, files in order."""
    texts = []
    for path in paths:
        for number, row in numbered_json_lines(path):  # a line that is not JSON fails the job naming it
            text = row.get(text_key) if isinstance(row, dict) else None
            if not isinstance(text, str):
                raise BadData(path, number, f"has no string field {text_key!r} (extra_configs.text_key)")
            texts.append(text)
    if not texts:
        raise ValueError(f"no texts in {', '.join(map(str, paths))}")
    return texts


def pack_blocks(texts: list[str], tokenizer: Any, seq_len: int) -> list[list[int]]:
    """Texts tokenized, each followed by EOS, concatenated and cut into seq_len blocks (blocks of one token dropped:
    they predict nothing)."""
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    stream: list[int] = []
    # verbose=False: texts longer than the model's context are expected here (cut into blocks below).
    for ids in tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]:
        stream.extend(ids)
        stream.extend(eos)
    blocks = [stream[start : start + seq_len] for start in range(0, len(stream), seq_len)]
    return [block for block in blocks if len(block) > 1]


def collate_blocks(blocks: list[list[int]], pad_id: int) -> dict[str, Any]:
    """Right-padded input_ids, attention_mask and labels (-100 on padding: never predicted)."""
    import torch

    width = max(len(block) for block in blocks)
    input_ids = torch.full((len(blocks), width), pad_id, dtype=torch.long)
    labels = torch.full((len(blocks), width), -100, dtype=torch.long)
    attention_mask = torch.zeros((len(blocks), width), dtype=torch.long)
    for row, block in enumerate(blocks):
        input_ids[row, : len(block)] = torch.tensor(block)
        labels[row, : len(block)] = torch.tensor(block)
        attention_mask[row, : len(block)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def pad_id_of(tokenizer: Any) -> int:
    for token_id in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if token_id is not None:
            return token_id
    return 0  # masked out anyway


def max_positions(model: Any) -> int | None:
    config = model.config
    return getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)


def seq_len_setting(cfg: Mapping[str, Any], model: Any, where: str) -> int:
    limit = max_positions(model)
    default = min(DEFAULT_SEQ_LEN, limit) if limit else DEFAULT_SEQ_LEN
    seq_len = int_setting(cfg, "seq_len", default, where, minimum=2)
    if limit and seq_len > limit:
        raise ValueError(f"{where}.seq_len={seq_len} exceeds the model's {limit} positions")
    return seq_len


# --- models ----------------------------------------------------------------------------------------------------


def local_model_dir(value: Any, where: str) -> Path:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where} must be a local model directory, got {value!r}")
    path = Path(value)
    if not path.is_dir():
        raise ValueError(f"{where}: no such local model directory {value} (nothing is downloaded)")
    return path


def load_checkpoint(path: str | Path) -> tuple[Any, Any]:
    """(model, tokenizer) from a save_pretrained directory or a LoRA adapter directory of train_huggingface.

    An adapter's base is ``<path>/base_model`` when present, else its recorded base_model_name_or_path
    (relative to the adapter directory when relative); both are loaded explicitly from local files."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    adapter_config = path / "adapter_config.json"
    if not adapter_config.is_file():
        return AutoModelForCausalLM.from_pretrained(path, local_files_only=True), tokenizer
    from peft import PeftModel

    recorded = json.loads(adapter_config.read_text()).get("base_model_name_or_path") or BASE_MODEL_SUBDIR
    base_dir = path / BASE_MODEL_SUBDIR if (path / BASE_MODEL_SUBDIR).is_dir() else path / recorded
    if not base_dir.is_dir():
        raise ValueError(f"LoRA adapter {path} has no local base model ({base_dir} does not exist)")
    base = AutoModelForCausalLM.from_pretrained(base_dir, local_files_only=True)
    return PeftModel.from_pretrained(base, path, is_trainable=False), tokenizer


def new_model(model_config: Any, texts: list[str], seed: int) -> tuple[Any, Any]:
    """A seeded GPT-2 from model_config with a tokenizer trained on the training texts."""
    where = "extra_configs.model_config"
    if not isinstance(model_config, dict):
        raise ValueError(f"{where} must be a mapping of {', '.join(MODEL_CONFIG_KEYS)}")
    check_known_keys(model_config, frozenset(MODEL_CONFIG_KEYS), where)
    if model_config.get("architecture", "gpt2") != "gpt2":
        raise ValueError(f"{where}.architecture must be 'gpt2', got {model_config['architecture']!r}")
    sizes = {key: int_setting(model_config, key, default, where) for key, default in MODEL_CONFIG_DEFAULTS.items()}
    if sizes["vocab_size"] < MIN_VOCAB_SIZE:
        raise ValueError(
            f"{where}.vocab_size must be at least {MIN_VOCAB_SIZE} (the byte alphabet and EOS), "
            f"got {sizes['vocab_size']}"
        )
    if sizes["n_embd"] % sizes["n_head"]:
        raise ValueError(f"{where}.n_embd={sizes['n_embd']} must be a multiple of n_head={sizes['n_head']}")
    tokenizer = train_tokenizer(texts, sizes.pop("vocab_size"), sizes["n_positions"])
    model = tiny_gpt2(len(tokenizer), seed=seed, eos_token_id=tokenizer.eos_token_id, **sizes)
    return model, tokenizer


def lora_config(value: Any) -> Any:
    where = "extra_configs.lora"
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be a mapping of r, alpha, dropout, target_modules")
    check_known_keys(value, LORA_KEYS, where)
    targets = value.get("target_modules")
    if targets is not None and not (isinstance(targets, list) and targets and all(isinstance(t, str) for t in targets)):
        raise ValueError(f"{where}.target_modules must be a non-empty list of module names, got {targets!r}")
    dropout = float_setting(value, "dropout", 0.0, where, positive=False)
    if dropout >= 1:
        raise ValueError(f"{where}.dropout must be below 1, got {dropout}")
    from peft import LoraConfig

    return LoraConfig(
        task_type="CAUSAL_LM",
        r=int_setting(value, "r", 8, where),
        lora_alpha=float_setting(value, "alpha", 16, where, positive=True),
        lora_dropout=dropout,
        target_modules=targets,
    )
