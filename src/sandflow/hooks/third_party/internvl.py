"""EvaluateModelHook ``internvl_coco_caption`` runs ``GPUS=<num_gpus> bash evaluate.sh <checkpoint>
caption-coco --dynamic`` in ``<internvl_home>/internvl_chat`` for each of ``ckpt_paths``, as upstream,
keeps the tool's output as ``eval_log.txt`` (in the job directory, not the checkpoint's: a finished
job's directory is never written to) and returns, per checkpoint, the scores the log reports
(Bleu_1..4, METEOR, ROUGE_L, CIDEr) and their mean as ``avg_score``.

TrainModelHook ``internvl_coco_caption`` runs upstream's ``torchrun internvl/train/internvl_chat_finetune.py
...`` (its fixed arguments and 512-sample batch arithmetic) once per ``meta_paths`` entry, into
``<job_dir>/output/<meta stem>_<model name>``, and turns the Trainer's log lines into ``train_log.json``.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from sandflow.hooks.base import JobRun
from sandflow.hooks.hf.launch import TORCHRUN_LOGS
from sandflow.hooks.third_party.tools import env_prefix, environment_problems, gpu_count, logged

CAPTION_SCORES = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")


def internvl_home_problems(config: dict[str, Any], script: str) -> list[str]:
    """What is wrong with extra_configs.internvl_home, for a job that runs internvl_chat/<script>."""
    home = config.get("internvl_home")
    if isinstance(home, str) and (Path(home) / "internvl_chat" / script).is_file():
        return []
    return [
        f"InternVL is not at extra_configs.internvl_home ({home!r}, no internvl_chat/{script}): "
        "clone https://github.com/OpenGVLab/InternVL and set internvl_home to it"
    ]


def internvl_requirements(dj_configs: Any, extra_configs: Any) -> list[str]:
    config = extra_configs if isinstance(extra_configs, dict) else {}
    return internvl_home_problems(config, "evaluate.sh") + environment_problems(config, "internvl.yaml")


def caption_scores(log_text: str) -> dict[str, float]:
    """The scores InternVL's caption evaluation prints ("CIDEr: 1.05"), and their mean, as upstream."""
    scores = {}
    for name in CAPTION_SCORES:
        found = re.findall(rf"{name}: (.*?)\n", log_text)
        if found:
            scores[name] = float(found[0])
    if scores:
        scores["avg_score"] = sum(scores.values()) / len(scores)
    return scores


def internvl_coco_caption_eval(job: JobRun) -> list[dict[str, float]]:
    config = job.extra_configs or {}
    chat_dir = Path(config["internvl_home"]).resolve() / "internvl_chat"
    paths = config.get("ckpt_paths") or []
    results = []
    for number, checkpoint in enumerate([paths] if isinstance(paths, str) else paths):
        if not os.path.exists(checkpoint):
            raise ValueError(f"extra_configs.ckpt_paths[{number}]: no such checkpoint: {checkpoint}")
        argv = [
            *env_prefix(config, "internvl"),
            "bash",
            str(chat_dir / "evaluate.sh"),
            os.path.relpath(checkpoint, chat_dir),
            "caption-coco",
            "--dynamic",
        ]
        env = {**os.environ, "GPUS": str(config.get("num_gpus") or gpu_count())}
        job.log.info("running %s (GPUS=%s)", argv, env["GPUS"])
        log_path = job.job_dir / f"eval_log_{number}.txt"
        for _ in logged(argv, chat_dir, env, job, copy=log_path):
            pass
        results.append(caption_scores(log_path.read_text()))
    return results


# InternVL COCO caption training ---------------------------------------------------------------

# Upstream's scale -> conversation style of InternVL's chat models; a style itself is accepted too.
INTERNVL_CONV_STYLES = {
    "1B": "Hermes-2",
    "2B": "internlm2-chat",
    "4B": "phi3-chat",
    "8B": "internlm2-chat",
    "26B": "internlm2-chat",
    "40B": "Hermes-2",
    "76B": "internlm2-chat",
}
INTERNVL_TOTAL_BATCH_SIZE = 512
INTERNVL_FINETUNE = "internvl/train/internvl_chat_finetune.py"
# The fixed arguments of upstream's training script (LoRA on the LLM, everything else frozen, one epoch).
INTERNVL_FIXED_ARGS = (
    "--overwrite_output_dir",
    "True",
    "--force_image_size",
    "448",
    "--max_dynamic_patch",
    "6",
    "--down_sample_ratio",
    "0.5",
    "--drop_path_rate",
    "0.0",
    "--freeze_llm",
    "True",
    "--freeze_mlp",
    "True",
    "--freeze_backbone",
    "True",
    "--use_llm_lora",
    "128",
    "--vision_select_layer",
    "-1",
    "--dataloader_num_workers",
    "4",
    "--bf16",
    "True",
    "--num_train_epochs",
    "1",
    "--evaluation_strategy",
    "no",
    "--save_strategy",
    "steps",
    "--save_steps",
    "200",
    "--save_total_limit",
    "1",
    "--learning_rate",
    "4e-5",
    "--weight_decay",
    "0.01",
    "--warmup_ratio",
    "0.03",
    "--lr_scheduler_type",
    "cosine",
    "--logging_steps",
    "1",
    "--max_seq_length",
    "4096",
    "--do_train",
    "True",
    "--grad_checkpoint",
    "True",
    "--group_by_length",
    "True",
    "--dynamic_image_size",
    "True",
    "--use_thumbnail",
    "True",
    "--ps_version",
    "v2",
    "--deepspeed",
    "zero_stage1_config.json",
    "--report_to",
    "tensorboard",
)
# transformers' Trainer log line: "{'loss': 2.055, 'learning_rate': 3.0000000000000004e-05, 'epoch': 0.02}"
TRAINER_LOG = re.compile(r"^\{'loss': (.*?), 'learning_rate': (.*?), 'epoch': (.*?)\}$")


def internvl_train_requirements(dj_configs: Any, extra_configs: Any) -> list[str]:
    config = extra_configs if isinstance(extra_configs, dict) else {}
    missing = internvl_home_problems(config, INTERNVL_FINETUNE)
    style = config.get("conv_style_or_scale")
    if style not in INTERNVL_CONV_STYLES and style not in INTERNVL_CONV_STYLES.values():
        missing.append(
            f"extra_configs.conv_style_or_scale={style!r} is none of InternVL's scales "
            f"({', '.join(INTERNVL_CONV_STYLES)}) or conversation styles"
        )
    if not isinstance(config.get("model_name_or_path"), str):
        missing.append("extra_configs.model_name_or_path is missing: InternVL fine-tunes that model")
    per_device = config.get("batch_size_per_device", 4)
    if not isinstance(per_device, int) or isinstance(per_device, bool) or per_device <= 0:
        missing.append(f"extra_configs.batch_size_per_device must be a positive integer, got {per_device!r}")
    return missing + environment_problems(config, "internvl.yaml")


def internvl_training_argv(
    config: dict[str, Any], gpus: int, output_dir: Path, meta_path: str, log_dir: Path
) -> list[str]:
    """Upstream's torchrun command for one meta file, with its batch arithmetic (512 samples per step). With a log
    directory of the job's: without one torch leaves a torchelastic_* directory in $TMPDIR. (``--log_dir``: the
    spelling every torchrun since torch 1.10 takes.)"""
    per_device = int(config.get("batch_size_per_device", 4))
    if INTERNVL_TOTAL_BATCH_SIZE % (gpus * per_device):
        raise ValueError(
            f"num_gpus x batch_size_per_device = {gpus * per_device} does not divide InternVL's "
            f"total batch size {INTERNVL_TOTAL_BATCH_SIZE}"
        )
    style = config["conv_style_or_scale"]
    return [
        *env_prefix(config, "internvl"),
        "torchrun",
        "--nnodes=1",
        "--node_rank=0",
        "--master_addr=127.0.0.1",
        f"--nproc_per_node={gpus}",
        f"--master_port={config.get('master_port', 34229)}",
        f"--log_dir={log_dir}",
        INTERNVL_FINETUNE,
        "--model_name_or_path",
        str(config["model_name_or_path"]),
        "--conv_style",
        INTERNVL_CONV_STYLES.get(style, style),
        "--output_dir",
        str(output_dir),
        "--meta_path",
        meta_path,
        *INTERNVL_FIXED_ARGS,
        "--per_device_train_batch_size",
        str(per_device),
        "--gradient_accumulation_steps",
        str(INTERNVL_TOTAL_BATCH_SIZE // per_device // gpus),
    ]


def internvl_coco_caption_train(job: JobRun) -> list[str]:
    """One fine-tuning run per meta file, in order, as upstream; returns their output directories."""
    config = job.extra_configs or {}
    chat_dir = Path(config["internvl_home"]).resolve() / "internvl_chat"
    available = gpu_count()
    gpus = min(int(config.get("num_gpus") or available), available)
    meta_paths = config.get("meta_paths") or []
    outputs = []
    for number, meta_path in enumerate([meta_paths] if isinstance(meta_paths, str) else meta_paths):
        if not os.path.isfile(meta_path):
            raise ValueError(f"extra_configs.meta_paths[{number}]: no such meta file: {meta_path}")
        # upstream's output name: <meta file stem>_<base model name>, here under the job's directory
        name = f"{Path(meta_path).stem}_{Path(str(config['model_name_or_path'])).stem}"
        output_dir = job.job_dir / "output" / name
        output_dir.mkdir(parents=True)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(chat_dir)])),
            "MASTER_PORT": str(config.get("master_port", 34229)),
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "LAUNCHER": "pytorch",
        }
        steps = []
        # torchrun's log directory is removed once it has ended, as data-parallel training's (hooks/hf/launch.py).
        with tempfile.TemporaryDirectory(
            prefix=f"{TORCHRUN_LOGS}-", dir=job.job_dir, ignore_cleanup_errors=True
        ) as logs:
            argv = internvl_training_argv(config, gpus, output_dir, os.path.abspath(meta_path), Path(logs))
            job.log.info("running %s", argv)
            for line in logged(
                argv, chat_dir, env, job, "InternVL training (torchrun)", output_dir / "training_log.txt"
            ):
                found = TRAINER_LOG.match(line.strip())
                if found:
                    loss, rate, epoch = (float(value) for value in found.groups())
                    steps.append({"step": len(steps) + 1, "epoch": epoch, "loss": loss, "learning_rate": rate})
        (output_dir / "train_log.json").write_text(json.dumps(steps, indent=2) + "\n")
        outputs.append(str(output_dir))
    return outputs
