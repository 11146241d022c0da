"""Third-party model systems run as the upstream tools themselves: EasyAnimate training and inference.

As in DJ-Sandbox, the job's extra_configs is the tool's config (e.g. upstream's
configs/easyanimate_text_to_video/model_train.yaml) and the tool is a source tree, by default
``thirdparty/models/EasyAnimate`` under the directory the run starts in (``extra_configs.home``
names another). The job runs the tool's own script with the arguments upstream passes, in order:

* TrainModelHook ``easyanimate``: ``bash train_lora.sh <14 arguments>`` from ``train.*``;
* InferModelHook ``easyanimate``: ``bash infer_lora.sh <11 arguments>`` from ``train.*`` (upstream reads
  the inference settings from that section too).

Differences from upstream, and why:

* The command is an argv list run in the tool's directory, never a shell string, so no config value
  can become a command; upstream builds ``cd ... && bash ... "<args>"`` and runs it through a shell.
* The environment is the conda environment ``env_name`` (default ``easyanimate``, built from
  envs/easyanimate.yaml), entered with ``conda run``/``mamba run`` (``env_manager``); ``none`` runs
  the script with the current environment. Upstream creates the environment and installs the tool
  inside the job; here that is set-up, done once (docs/third-party.md), and a job checks for it.
* The output directory is the job's own (``<job_dir>/output``), not ``saving_config.output_dir``:
  every job directory is content-addressed, and publishing copies it out as for any job.
* The tool's output is streamed to the job's log, and its progress lines (tqdm's ``step_loss`` and
  ``lr``) become ``train_log.json`` in the job directory, the format the report and wandb tracking
  read for every training job.

Before any job runs, ``easyanimate_requirements`` checks the tool tree and its script, the
environment manager and a GPU (``nvidia-smi -L``), and says what to install when one is missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Iterator

from sandflow.hooks.base import JobRun

DEFAULT_HOME = "thirdparty/models/EasyAnimate"
ENV_MANAGERS = ("conda", "mamba", "none")
# tqdm's postfix as EasyAnimate's train.py sets it: "... 12/100 [00:10<01:30, 1.2s/it, step_loss=0.091, lr=2e-05]"
PROGRESS = re.compile(r"(\d+)/\d+ \[[^\]]*?step_loss=([-+\d.eE]+|nan), lr=([-+\d.eE]+)")

TRAIN_ARGS = (
    "model_path.pretrained_model_name_or_path", "model_path.transformer_path", "dataset_path.dataset_name",
    "dataset_path.dataset_meta_name", "training_config.sample_size", "training_config.mixed_precision",
    "training_config.batch_size_per_gpu", "training_config.gradient_accumulation_steps",
    "training_config.num_train_epochs", "training_config.dataloader_num_workers", "training_config.seed",
    "<output>", "tracker_config.project_name", "tracker_config.experiment_name",
)
INFER_ARGS = (
    "model_path.pretrained_model_name_or_path", "model_path.transformer_path", "model_path.lora_path",
    "infer_config.image_size", "infer_config.prompt_info_path", "infer_config.gpu_num", "infer_config.batch_size",
    "infer_config.mixed_precision", "infer_config.video_num_per_prompt", "infer_config.seed", "<output>",
)


def tool_home(config: dict[str, Any]) -> Path:
    return Path(config.get("home") or DEFAULT_HOME).resolve()


def env_prefix(config: dict[str, Any]) -> list[str]:
    """The argv that runs a command inside the tool's environment."""
    manager = config.get("env_manager", "conda")
    if manager == "none":
        return []
    return [manager, "run", "--no-capture-output", "-n", str(config.get("env_name") or "easyanimate")]


def gpu_count() -> int:
    if not shutil.which("nvidia-smi"):
        return 0
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in listing.splitlines() if line.startswith("GPU "))


def easyanimate_requirements(script: str) -> Any:
    """The requirement check of one EasyAnimate script (train_lora.sh or infer_lora.sh)."""

    def requirements(dj_configs: Any, extra_configs: Any) -> list[str]:
        config = extra_configs if isinstance(extra_configs, dict) else {}
        missing = []
        manager = config.get("env_manager", "conda")
        if manager not in ENV_MANAGERS:
            return [f"extra_configs.env_manager must be one of {', '.join(ENV_MANAGERS)}, got {manager!r}"]
        if not isinstance(config.get("train"), dict):
            missing.append("extra_configs.train is missing: EasyAnimate reads its settings from that section")
        home = tool_home(config)
        if not (home / script).is_file():
            missing.append(f"EasyAnimate is not at {home} (no {script}): clone it there with DJ-Sandbox's "
                           "thirdparty/models/setup_easyanimate.sh, or set extra_configs.home")
        if manager != "none" and not shutil.which(manager):
            missing.append(f"{manager} is not on PATH: install it and create the environment with "
                           f"`{manager} env create -f envs/easyanimate.yaml`")
        if gpu_count() == 0:
            missing.append("EasyAnimate needs an NVIDIA GPU, and `nvidia-smi -L` lists none here")
        return missing

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


def lines_of(stream: Any) -> Iterator[str]:
    """Lines as a terminal shows them: tqdm redraws with carriage returns, so those end a line too."""
    buffer = ""
    for chunk in iter(lambda: stream.read(4096), ""):
        buffer += chunk
        *complete, buffer = re.split(r"\r\n|\r|\n", buffer)
        yield from (line for line in complete if line.strip())
    if buffer.strip():
        yield buffer


def run_tool(job: JobRun, script: str, arguments: tuple[str, ...]) -> tuple[Path, list[dict[str, Any]]]:
    """Run the script in the tool's tree and environment; (its output directory, the parsed progress)."""
    config = job.extra_configs or {}
    output = job.job_dir / "output"
    output.mkdir()
    argv = [*env_prefix(config), "bash", str(tool_home(config) / script),
            *(argument(config["train"], dotted, output) for dotted in arguments)]
    job.log.info("running %s", argv)
    progress: dict[int, dict[str, Any]] = {}
    process = subprocess.Popen(argv, cwd=tool_home(config), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in lines_of(process.stdout):
        match = PROGRESS.search(line)
        if match:
            step = int(match.group(1))
            if step not in progress:  # tqdm repeats a step while it waits: keep its first report
                job.log.info("%s", line.strip())
            progress[step] = {"step": step, "loss": float(match.group(2)), "learning_rate": float(match.group(3))}
        else:
            job.log.info("%s", line.rstrip())
    code = process.wait()
    if code:
        raise RuntimeError(f"EasyAnimate's {script} exited with code {code}; its output is in the job log")
    return output, [progress[step] for step in sorted(progress)]


def easyanimate_train(job: JobRun) -> str:
    output, progress = run_tool(job, "train_lora.sh", TRAIN_ARGS)
    (job.job_dir / "train_log.json").write_text(json.dumps(progress, indent=2) + "\n")
    return str(output)


def easyanimate_infer(job: JobRun) -> str:
    output, _ = run_tool(job, "infer_lora.sh", INFER_ARGS)
    return str(output)
