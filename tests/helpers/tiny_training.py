"""What the training tests share: a corpus of template sentences, a tiny GPT-2's shape and a short training run,
and a TrainModelHook job run in a directory of its own."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

from sandflow.hooks.base import JobRun

from helpers.job_runs import job_run

COLOURS = "red green blue brown black white".split()
ANIMALS = "cat dog fox bird cow horse".split()
VERBS = "sees chases likes follows watches".split()
TINY = {"n_layer": 2, "n_embd": 32, "n_head": 2, "n_positions": 64}
TRAINING = {"max_steps": 20, "per_device_train_batch_size": 8, "learning_rate": 5e-3, "seq_len": 32, "logging_steps": 5}


def template_texts(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [
        f"the {rng.choice(COLOURS)} {rng.choice(ANIMALS)} {rng.choice(VERBS)} the "
        f"{rng.choice(COLOURS)} {rng.choice(ANIMALS)}."
        for _ in range(count)
    ]


def write_jsonl(path: Path, texts: list[str], key: str = "text") -> Path:
    path.write_text("".join(json.dumps({key: text, "meta": index}) + "\n" for index, text in enumerate(texts)))
    return path


def make_job(
    root: Path,
    name: str,
    extra_configs: dict,
    hook: str = "TrainModelHook",
    kind: str = "huggingface",
    threads: int = 1,
) -> JobRun:
    job_dir = root / name
    (job_dir / "extra_configs.export_path").mkdir(parents=True)
    extra = {"type": kind, **extra_configs, "export_path": str(job_dir / "extra_configs.export_path")}
    log = logging.getLogger(f"test.{name}")
    return job_run(hook, job_dir, extra_configs=extra, key=name, meta_name=name, log=log, threads=threads)
