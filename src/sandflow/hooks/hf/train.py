"""TrainModelHook type 'huggingface': causal-LM training with transformers' Trainer on the job's devices.

``type: huggingface`` is sandflow's own (DJ-Sandbox trains text models through
ModelScope only). Its extra_configs:

* the model, exactly one of
  ``model_path`` — a local model directory (a save_pretrained directory, e.g.
  an earlier job's checkpoint; a LoRA checkpoint is merged into its base
  first; nothing is downloaded), or
  ``model_config`` — ``{architecture: gpt2, n_layer, n_embd, n_head,
  n_positions, vocab_size}``: a new, seeded GPT-2 with a byte-level BPE
  tokenizer trained on the training texts (``sandflow.hooks.hf.tiny_lm``);
* ``dataset_path`` — a jsonl file or a list of them (read in order and
  concatenated), ``text_key`` (default ``text``);
* ``max_steps`` (wins when given) or ``num_train_epochs`` (default 1),
  ``per_device_train_batch_size`` (8), ``learning_rate`` (5e-4),
  ``weight_decay`` (0), ``warmup_steps`` (0), ``lr_scheduler_type``
  (``linear``), ``logging_steps`` (10), ``seq_len`` (min(128, the model's
  positions)), ``seed`` (42);
* ``lora`` — optional ``{r: 8, alpha: 16, dropout: 0.0, target_modules}``
  (peft; target_modules defaults to peft's choice for the architecture);
* ``precision`` — ``fp32`` (default), ``bf16`` or ``fp16`` (CUDA only);
* ``num_processes`` — data-parallel processes (default: one per visible CUDA
  device, else 1; on CPU, N > 1 runs N gloo processes): hf/launch.py;
* ``export_path`` — the checkpoint directory.

The job trains on CUDA when it sees a GPU, else on the CPU, and fails at once
when it was given a GPU that torch cannot see (hf/devices.py); ``device.json``
in the job directory records the device, precision and process count.

Texts are tokenized without special tokens, each followed by the EOS token,
concatenated and cut into ``seq_len`` blocks (transformers' run_clm packing;
the short last block is kept, padded and masked, so tiny datasets train).

The checkpoint directory holds the model and tokenizer (save_pretrained),
``train_log.json`` / ``train_log.csv`` (step, epoch, loss, grad_norm,
learning_rate at each logging step) and ``metrics.json`` (final mean train
loss, steps, epochs, block/token/text counts, parameter counts). Wall-clock
times go to the job log only, so the same inputs give a byte-identical
directory: training runs with ``full_determinism`` on one CPU thread (the
float reductions of several threads depend on their number). That holds for
one process on CPU; GPUs and several processes reduce floats in other orders.
With ``lora`` the directory holds the adapter (adapter_config.json,
adapter_model.safetensors) and the untouched base model in ``base_model/``;
adapter_config.json's ``base_model_name_or_path`` is ``base_model``, relative
to the adapter directory (an absolute path would be stale once the job
directory is renamed) — load it with ``load_checkpoint``.

Returns the checkpoint directory (one output), as DJ-Sandbox's trainers return
their work/output directory.

``type: modelscope`` is in src/sandflow/hooks/modelscope.py.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import hashlib
import io
import json
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from sandflow.core.atomic import write_text_atomic
from sandflow.hooks.base import JobRun
from sandflow.hooks.hf.devices import Placement, job_placement, write_device_record
from sandflow.hooks.hf.launch import process_count, train_data_parallel
from sandflow.hooks.hf.models import (
    BASE_MODEL_SUBDIR,
    check_known_keys,
    collate_blocks,
    dataset_paths,
    float_setting,
    int_setting,
    load_checkpoint,
    local_model_dir,
    lora_config,
    new_model,
    pack_blocks,
    pad_id_of,
    read_texts,
    seq_len_setting,
    text_key_setting,
)
from sandflow.hooks.hf.workers import map_models

__all__ = [
    "train_huggingface",
    "huggingface_train_requirements",
    "load_checkpoint",
    "read_texts",
    "pack_blocks",
    "collate_blocks",
]

TRAIN_LOG_JSON = "train_log.json"
TRAIN_LOG_CSV = "train_log.csv"
METRICS_JSON = "metrics.json"
LOG_COLUMNS = ("step", "epoch", "loss", "grad_norm", "learning_rate")
TRAINER_SCRATCH = "trainer_scratch"  # prefix of a Trainer's output_dir; removed after training

HF_KEYS = frozenset(
    {
        "type",
        "export_path",
        "model_path",
        "model_config",
        "dataset_path",
        "text_key",
        "max_steps",
        "num_train_epochs",
        "per_device_train_batch_size",
        "learning_rate",
        "weight_decay",
        "warmup_steps",
        "lr_scheduler_type",
        "logging_steps",
        "seq_len",
        "seed",
        "lora",
        "precision",
        "num_processes",
    }
)


# --- training --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """One intra-op thread: CPU float reductions split over threads sum in an order that depends on their number."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def progress_callback(job: JobRun) -> Any:
    from transformers import TrainerCallback

    class JobLogProgress(TrainerCallback):
        """Each logging step's loss to the job log (the Trainer's own printer and tqdm are off)."""

        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
        ) -> None:
            if logs and "loss" in logs:
                job.log.info(
                    "step %d/%d: loss %.4f, learning rate %.3g",
                    state.global_step,
                    state.max_steps,
                    logs["loss"],
                    logs.get("learning_rate", float("nan")),
                )

    return JobLogProgress()


def log_rows(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{column: entry.get(column) for column in LOG_COLUMNS} for entry in log_history if "loss" in entry]


def write_train_log(export: Path, rows: list[dict[str, Any]]) -> None:
    write_text_atomic(export / TRAIN_LOG_JSON, json.dumps(rows, indent=2) + "\n")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=LOG_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(export / TRAIN_LOG_CSV, buffer.getvalue())


def export_dir(cfg: Mapping[str, Any]) -> Path:
    value = cfg.get("export_path")
    if not isinstance(value, str) or not value:
        raise ValueError(f"extra_configs.export_path must be the checkpoint directory, got {value!r}")
    path = Path(value)
    path.mkdir(parents=True, exist_ok=True)
    return path


def train_huggingface(job: JobRun) -> str | list[str]:
    """TrainModelHook type 'huggingface': one causal LM per dataset; returns the checkpoint directory (or a list).

    ``dataset_path`` given as one path trains one model, saved in export_path. Given as a list (data pools, as
    pool jobs pass them on), it trains one model per pool, from the same starting point and settings, each saved
    in ``export_path/<pool file stem>``; the result is the list of those directories, in pool order. To train one
    model on several files, merge them first (DataPoolManipulationHook type data_pool_merging).
    """
    cfg = job.extra_configs or {}
    where = "extra_configs"
    check_known_keys(cfg, HF_KEYS, where)
    if ("model_path" in cfg) == ("model_config" in cfg):
        raise ValueError(f"{where} needs exactly one of model_path (a local model directory) and model_config")
    paths = dataset_paths(cfg, "dataset_path", where)
    text_key = text_key_setting(cfg, where)
    export = export_dir(cfg)
    placement = job_placement(cfg, where)
    placement = dataclasses.replace(placement, num_processes=process_count(cfg, where, placement.device))
    job.log.info(
        "device %s, precision %s, %d process(es)", placement.device, placement.precision, placement.num_processes
    )
    if isinstance(cfg["dataset_path"], str):
        train_on(job, paths, text_key, export, placement)
        write_device_record(job.job_dir, placement)
        return str(export)
    stems = [path.stem for path in paths]
    clash = next((stem for stem in stems if stems.count(stem) > 1), None)
    if clash is not None:
        raise ValueError(f"{where}.dataset_path: two pools are named {clash!r}; their models would share a directory")
    pools = [(number, path, export / stem) for number, (path, stem) in enumerate(zip(paths, stems), 1)]
    train_pool = functools.partial(train_pool_model, job, text_key, len(pools), placement)
    if placement.device == "cpu" and placement.num_processes == 1:
        map_models(job, train_pool, pools, cost=lambda pool: pool[1].stat().st_size)  # a bigger pool trains longer
    else:  # the job's devices are taken by one model at a time
        for pool in pools:
            train_pool(pool)
    write_device_record(job.job_dir, placement)
    return [str(export / stem) for stem in stems]


def train_pool_model(
    job: JobRun, text_key: str, count: int, placement: Placement, pool: tuple[int, Path, Path]
) -> None:
    """Train the model of one pool (number, dataset, checkpoint directory): a worker process's unit of work."""
    number, path, export = pool
    job.log.info("pool %d of %d: %s", number, count, path)
    train_on(job, [path], text_key, export, placement)


def train_on(job: JobRun, paths: list[Path], text_key: str, export: Path, placement: Placement) -> None:
    """One model on the texts of paths: in this process, or on placement.num_processes ranks."""
    if placement.num_processes > 1:
        train_data_parallel(job, paths, text_key, export, placement)
    else:
        train_one_model(job, read_texts(paths, text_key), export, placement)


def train_one_model(job: JobRun, texts: list[str], export: Path, placement: Placement) -> None:
    """Train (or, with max_steps 0, only initialise) one model on texts and save it with its logs in export.

    Under torchrun (placement.num_processes > 1) every rank runs this; rank 0 writes the files."""
    cfg = job.extra_configs or {}
    where = "extra_configs"
    seed = int_setting(cfg, "seed", 42, where, minimum=0)
    # max_steps 0 saves the starting model untrained: a shared initialisation for models that must compare.
    max_steps = int_setting(cfg, "max_steps", None, where, minimum=0)
    epochs = float_setting(cfg, "num_train_epochs", 1.0, where, positive=True)
    batch_size = int_setting(cfg, "per_device_train_batch_size", 8, where)
    learning_rate = float_setting(cfg, "learning_rate", 5e-4, where, positive=True)
    weight_decay = float_setting(cfg, "weight_decay", 0.0, where, positive=False)
    warmup_steps = int_setting(cfg, "warmup_steps", 0, where, minimum=0)
    logging_steps = int_setting(cfg, "logging_steps", 10, where)
    scheduler = cfg.get("lr_scheduler_type", "linear")
    if not isinstance(scheduler, str):
        raise ValueError(f"{where}.lr_scheduler_type must be a scheduler name, got {scheduler!r}")
    export.mkdir(parents=True, exist_ok=True)
    writes = int(os.environ.get("RANK", "0")) == 0

    from transformers import PrinterCallback, Trainer, TrainingArguments

    if "model_path" in cfg:
        model_dir = local_model_dir(cfg["model_path"], f"{where}.model_path")
        model, tokenizer = load_checkpoint(model_dir)
        if hasattr(model, "merge_and_unload"):  # an adapter checkpoint: train the adapted model
            model = model.merge_and_unload().requires_grad_(True)  # peft froze the base's weights
        job.log.info("model %s (%d parameters)", model_dir, model.num_parameters())
    else:
        model, tokenizer = new_model(cfg["model_config"], texts, seed)
        job.log.info(
            "new GPT-2 from model_config (%d parameters, vocabulary %d)", model.num_parameters(), len(tokenizer)
        )
    seq_len = seq_len_setting(cfg, model, where)
    blocks = pack_blocks(texts, tokenizer, seq_len)
    if not blocks:
        raise ValueError(f"{where}.dataset_path holds no text to train on (every text is empty)")
    base = model
    if cfg.get("lora") is not None:
        if "model_config" in cfg:
            job.log.warning("LoRA on a randomly initialised model learns little: train it fully first")
        from peft import get_peft_model

        peft_config = lora_config(cfg["lora"])
        # Saved now: get_peft_model rewrites the base's modules in place (LoRA layers around the targets).
        if writes:
            base.save_pretrained(export / BASE_MODEL_SUBDIR)
            tokenizer.save_pretrained(export / BASE_MODEL_SUBDIR)
        model = get_peft_model(base, peft_config)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    job.log.info(
        "%d texts -> %d blocks of <= %d tokens; %d of %d parameters trainable",
        len(texts),
        len(blocks),
        seq_len,
        trainable,
        total,
    )

    pad_id = pad_id_of(tokenizer)
    scratch = trainer_scratch(Path(job.job_dir), export)
    args = TrainingArguments(
        output_dir=str(scratch),
        use_cpu=placement.device == "cpu",
        bf16=placement.precision == "bf16",
        fp16=placement.precision == "fp16",
        ddp_backend=("nccl" if placement.device == "cuda" else "gloo") if placement.num_processes > 1 else None,
        ddp_find_unused_parameters=False,  # every parameter gets a gradient: spare DDP the extra graph walk
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        full_determinism=True,
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        max_steps=max_steps if max_steps is not None else -1,
        num_train_epochs=epochs,
        per_device_train_batch_size=batch_size,
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        warmup_steps=warmup_steps,
        lr_scheduler_type=scheduler,
        logging_strategy="steps",
        logging_steps=logging_steps,
        remove_unused_columns=False,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=blocks,
        data_collator=lambda batch: collate_blocks(batch, pad_id),
        callbacks=[progress_callback(job)],
    )
    trainer.remove_callback(PrinterCallback)
    train_loss, steps = None, 0
    if max_steps != 0:
        started = time.monotonic()
        with single_thread():
            result = trainer.train()
        train_loss, steps = result.training_loss, result.global_step
        job.log.info("trained %d steps in %.1f s, mean loss %.4f", steps, time.monotonic() - started, train_loss)
    if not writes:
        return
    shutil.rmtree(scratch, ignore_errors=True)

    model.save_pretrained(export)
    if model is not base:
        point_adapter_at_saved_base(export)
    tokenizer.save_pretrained(export)
    write_train_log(export, log_rows(trainer.state.log_history))
    metrics = {
        "train_loss": train_loss,
        "global_step": steps,
        "epochs": trainer.state.epoch or 0,
        "num_texts": len(texts),
        "num_blocks": len(blocks),
        "num_tokens": sum(len(block) for block in blocks),
        "seq_len": seq_len,
        "trainable_parameters": trainable,
        "total_parameters": total,
    }
    write_text_atomic(export / METRICS_JSON, json.dumps(metrics, indent=2, sort_keys=True) + "\n")


def trainer_scratch(job_dir: Path, export: Path) -> Path:
    """The Trainer's output_dir for the model saved in export: one per model, as pool models train at once
    in one job and a Trainer lists (and its owner removes) its own output_dir."""
    digest = hashlib.sha256(str(export).encode()).hexdigest()[:12]
    return job_dir / f"{TRAINER_SCRATCH}-{digest}"


def point_adapter_at_saved_base(export: Path) -> None:
    """Record the base as BASE_MODEL_SUBDIR (relative to the adapter), not by the absolute path it was loaded from:
    that path is stale once the job directory is renamed, and it would make the checkpoint differ per location."""
    adapter_config = export / "adapter_config.json"
    settings = json.loads(adapter_config.read_text())
    settings["base_model_name_or_path"] = BASE_MODEL_SUBDIR
    write_text_atomic(adapter_config, json.dumps(settings, indent=2, sort_keys=True))
    (export / "README.md").unlink(missing_ok=True)  # peft's blank model card, naming the absolute base path


def huggingface_train_requirements(
    dj_configs: Mapping[str, Any] | None, extra_configs: Mapping[str, Any] | None
) -> list[str]:
    """An absolute model_path that does not exist. Relative paths and refs are the planner's business: a path an
    earlier job writes does not exist before the run."""
    model_path = (extra_configs or {}).get("model_path")
    if isinstance(model_path, str) and os.path.isabs(model_path) and not os.path.isdir(model_path):
        return [
            f"TrainModelHook type 'huggingface' needs the local model directory {model_path} "
            "(extra_configs.model_path; nothing is downloaded)"
        ]
    return []
