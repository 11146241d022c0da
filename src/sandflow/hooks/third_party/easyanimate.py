"""EasyAnimate training and inference, run as its own scripts.

As in DJ-Sandbox, the job's extra_configs is the tool's config (e.g. upstream's
configs/easyanimate_text_to_video/model_train.yaml) and the tool is a source tree, by default
``thirdparty/models/EasyAnimate`` under the directory the run starts in (``extra_configs.home``
names another). The job runs the tool's own script with the arguments upstream passes, in order:

* TrainModelHook ``easyanimate``: ``bash train_lora.sh <14 arguments>`` from ``train.*``;
* InferModelHook ``easyanimate``: ``bash infer_lora.sh <11 arguments>`` from ``train.*`` (upstream reads
  the inference settings from that section too).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from sandflow.hooks.base import JobRun
from sandflow.hooks.third_party.tools import ENV_MANAGERS, env_prefix, environment_problems, stream

DEFAULT_HOME = "thirdparty/models/EasyAnimate"
PROGRESS = re.compile(r"(\d+)/\d+ \[[^\]]*?step_loss=([-+\d.eE]+|nan), lr=([-+\d.eE]+)")

TRAIN_ARGS = (
    "model_path.pretrained_model_name_or_path",
    "model_path.transformer_path",
    "dataset_path.dataset_name",
    "dataset_path.dataset_meta_name",
    "training_config.sample_size",
    "training_config.mixed_precision",
    "training_config.batch_size_per_gpu",
    "training_config.gradient_accumulation_steps",
    "training_config.num_train_epochs",
    "training_config.dataloader_num_workers",
    "training_config.seed",
    "<output>",
    "tracker_config.project_name",
    "tracker_config.experiment_name",
)
INFER_ARGS = (
    "model_path.pretrained_model_name_or_path",
    "model_path.transformer_path",
    "model_path.lora_path",
    "infer_config.image_size",
    "infer_config.prompt_info_path",
    "infer_config.gpu_num",
    "infer_config.batch_size",
    "infer_config.mixed_precision",
    "infer_config.video_num_per_prompt",
    "infer_config.seed",
    "<output>",
)


def tool_home(config: dict[str, Any]) -> Path:
    return Path(config.get("home") or DEFAULT_HOME).resolve()


def easyanimate_requirements(script: str) -> Any:
    """The requirement check of one EasyAnimate script (train_lora.sh or infer_lora.sh)."""

    def requirements(dj_configs: Any, extra_configs: Any) -> list[str]:
        config = extra_configs if isinstance(extra_configs, dict) else {}
        missing = []
        if config.get("env_manager", "conda") not in ENV_MANAGERS:
            return environment_problems(config, "easyanimate.yaml")
        if not isinstance(config.get("train"), dict):
            missing.append("extra_configs.train is missing: EasyAnimate reads its settings from that section")
        home = tool_home(config)
        if not (home / script).is_file():
            missing.append(
                f"EasyAnimate is not at {home} (no {script}): clone it there with DJ-Sandbox's "
                "thirdparty/models/setup_easyanimate.sh, or set extra_configs.home"
            )
        return missing + environment_problems(config, "easyanimate.yaml")

    return requirements


def argument(config: dict[str, Any], dotted: str, output: Path) -> str:
    if dotted == "<output>":
        return str(output)
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ValueError(f"extra_configs.train.{dotted} is missing: EasyAnimate's script takes it as an argument")
        node = node[part]
    return str(node)


def run_tool(job: JobRun, script: str, arguments: tuple[str, ...]) -> tuple[Path, list[dict[str, Any]]]:
    """Run the script in the tool's tree and environment; (its output directory, the parsed progress)."""
    config = job.extra_configs or {}
    output = job.job_dir / "output"
    output.mkdir()
    argv = [
        *env_prefix(config, "easyanimate"),
        "bash",
        str(tool_home(config) / script),
        *(argument(config["train"], dotted, output) for dotted in arguments),
    ]
    job.log.info("running %s", argv)
    progress: dict[int, dict[str, Any]] = {}
    for line in stream(argv, tool_home(config), None, job):
        match = PROGRESS.search(line)
        if match:
            step = int(match.group(1))
            if step not in progress:  # tqdm repeats a step while it waits: keep its first report
                job.log.info("%s", line.strip())
            progress[step] = {"step": step, "loss": float(match.group(2)), "learning_rate": float(match.group(3))}
        else:
            job.log.info("%s", line.rstrip())
    return output, [progress[step] for step in sorted(progress)]


def easyanimate_train(job: JobRun) -> str:
    output, progress = run_tool(job, "train_lora.sh", TRAIN_ARGS)
    (job.job_dir / "train_log.json").write_text(json.dumps(progress, indent=2) + "\n")
    return str(output)


def easyanimate_infer(job: JobRun) -> str:
    output, _ = run_tool(job, "infer_lora.sh", INFER_ARGS)
    return str(output)
