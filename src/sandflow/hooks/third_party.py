"""Third-party model systems run as the upstream tools themselves: EasyAnimate training and inference,
InternVL's COCO-caption training and evaluation, VBench, the inception metrics, Trinity-RFT.

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

EvaluateModelHook ``internvl_coco_caption`` runs ``GPUS=<num_gpus> bash evaluate.sh <checkpoint>
caption-coco --dynamic`` in ``<internvl_home>/internvl_chat`` for each of ``ckpt_paths``, as upstream,
keeps the tool's output as ``eval_log.txt`` (in the job directory, not the checkpoint's: a finished
job's directory is never written to) and returns, per checkpoint, the scores the log reports
(Bleu_1..4, METEOR, ROUGE_L, CIDEr) and their mean as ``avg_score``.

TrainModelHook ``internvl_coco_caption`` runs upstream's ``torchrun internvl/train/internvl_chat_finetune.py
...`` (its fixed arguments and 512-sample batch arithmetic) once per ``meta_paths`` entry, into
``<job_dir>/output/<meta stem>_<model name>``, and turns the Trainer's log lines into ``train_log.json``.

EvaluateDataHook ``video_inception_evaluator`` runs ``python -m tools.mm_eval.inception_metrics.
calc_metrics_for_videos`` (upstream's code, shipped in py-data-juicer) with the config's keys as options
and the job's own result file, and returns the result dict upstream returns.

EvaluateDataHook ``vbench_video_evaluator`` runs ``vbench evaluate --ngpus ... --dimension <d> ...``
once per ``dimension_list`` entry, as upstream, reads each dimension's score from the results file
VBench names in its log, writes ``<eval_name>_merged_results.json`` ({mean_score, detail}) and returns
the mean score. Its ``output_path`` is the job's ``eval_results`` directory.

TrainModelHook ``trinity-rft`` runs ``trinity run --config <trinity_config_path>``, as upstream, on a
copy of that config whose ``checkpoint_root_dir`` is the job's ``checkpoints`` directory (returned, as
upstream returns that key); the trainer's ``Step N: {...}`` monitor lines become ``train_log.json``.

Before any job runs, ``easyanimate_requirements`` (and the ``*_requirements`` of the others) checks
the tool tree and its script, the environment manager and a GPU (``nvidia-smi -L``), and says what
to install when one is missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
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


def env_prefix(config: dict[str, Any], default_env: str) -> list[str]:
    """The argv that runs a command inside the tool's environment."""
    manager = config.get("env_manager", "conda")
    if manager == "none":
        return []
    return [manager, "run", "--no-capture-output", "-n", str(config.get("env_name") or default_env)]


def gpu_count() -> int:
    if not shutil.which("nvidia-smi"):
        return 0
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in listing.splitlines() if line.startswith("GPU "))


def environment_problems(config: dict[str, Any], env_file: str) -> list[str]:
    """What keeps a tool's environment from being entered, and the GPU check every such tool needs."""
    manager = config.get("env_manager", "conda")
    if manager not in ENV_MANAGERS:
        return [f"extra_configs.env_manager must be one of {', '.join(ENV_MANAGERS)}, got {manager!r}"]
    missing = []
    if manager != "none" and not shutil.which(manager):
        missing.append(f"{manager} is not on PATH: install it and create the environment with "
                       f"`{manager} env create -f envs/{env_file}`")
    if gpu_count() == 0:
        missing.append("this tool needs an NVIDIA GPU, and `nvidia-smi -L` lists none here")
    return missing


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
            missing.append(f"EasyAnimate is not at {home} (no {script}): clone it there with DJ-Sandbox's "
                           "thirdparty/models/setup_easyanimate.sh, or set extra_configs.home")
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


def lines_of(stream: Any) -> Iterator[str]:
    """Lines as a terminal shows them: tqdm redraws with carriage returns, so those end a line too."""
    buffer = ""
    for chunk in iter(lambda: stream.read(4096), ""):
        buffer += chunk
        *complete, buffer = re.split(r"\r\n|\r|\n", buffer)
        yield from (line for line in complete if line.strip())
    if buffer.strip():
        yield buffer


def stream(argv: list[str], cwd: Path, env: dict[str, str] | None, job: JobRun, tool: str | None = None) -> Iterator[str]:
    """Run argv, yielding its output lines (stdout and stderr together); a failure names the tool and code."""
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    yield from lines_of(process.stdout)
    code = process.wait()
    if code:
        name = tool or Path(argv[argv.index("bash") + 1]).name  # a script run with bash, or the tool's command
        raise RuntimeError(f"{name} exited with code {code}; its output is in the job log")


def logged(argv: list[str], cwd: Path, env: dict[str, str] | None, job: JobRun, tool: str | None = None,
           copy: Path | None = None) -> Iterator[str]:
    """stream(), with every line in the job log and, when copy names a file, kept there too."""
    with open(copy, "w") if copy else contextlib.nullcontext() as kept:
        for line in stream(argv, cwd, env, job, tool):
            job.log.info("%s", line)
            if kept:
                kept.write(line + "\n")
            yield line


def run_tool(job: JobRun, script: str, arguments: tuple[str, ...]) -> tuple[Path, list[dict[str, Any]]]:
    """Run the script in the tool's tree and environment; (its output directory, the parsed progress)."""
    config = job.extra_configs or {}
    output = job.job_dir / "output"
    output.mkdir()
    argv = [*env_prefix(config, "easyanimate"), "bash", str(tool_home(config) / script),
            *(argument(config["train"], dotted, output) for dotted in arguments)]
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


# ---- InternVL COCO caption evaluation ---------------------------------------------------------------

CAPTION_SCORES = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")


def internvl_home_problems(config: dict[str, Any], script: str) -> list[str]:
    """What is wrong with extra_configs.internvl_home, for a job that runs internvl_chat/<script>."""
    home = config.get("internvl_home")
    if isinstance(home, str) and (Path(home) / "internvl_chat" / script).is_file():
        return []
    return [f"InternVL is not at extra_configs.internvl_home ({home!r}, no internvl_chat/{script}): "
            "clone https://github.com/OpenGVLab/InternVL and set internvl_home to it"]


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
        argv = [*env_prefix(config, "internvl"), "bash", str(chat_dir / "evaluate.sh"),
                os.path.relpath(checkpoint, chat_dir), "caption-coco", "--dynamic"]
        env = {**os.environ, "GPUS": str(config.get("num_gpus") or gpu_count())}
        job.log.info("running %s (GPUS=%s)", argv, env["GPUS"])
        log_path = job.job_dir / f"eval_log_{number}.txt"
        for _ in logged(argv, chat_dir, env, job, copy=log_path):
            pass
        results.append(caption_scores(log_path.read_text()))
    return results


# ---- InternVL COCO caption training ---------------------------------------------------------------

# Upstream's scale -> conversation style of InternVL's chat models; a style itself is accepted too.
INTERNVL_CONV_STYLES = {"1B": "Hermes-2", "2B": "internlm2-chat", "4B": "phi3-chat", "8B": "internlm2-chat",
                        "26B": "internlm2-chat", "40B": "Hermes-2", "76B": "internlm2-chat"}
INTERNVL_TOTAL_BATCH_SIZE = 512
INTERNVL_FINETUNE = "internvl/train/internvl_chat_finetune.py"
# The fixed arguments of upstream's training script (LoRA on the LLM, everything else frozen, one epoch).
INTERNVL_FIXED_ARGS = (
    "--overwrite_output_dir", "True", "--force_image_size", "448", "--max_dynamic_patch", "6",
    "--down_sample_ratio", "0.5", "--drop_path_rate", "0.0", "--freeze_llm", "True", "--freeze_mlp", "True",
    "--freeze_backbone", "True", "--use_llm_lora", "128", "--vision_select_layer", "-1",
    "--dataloader_num_workers", "4", "--bf16", "True", "--num_train_epochs", "1",
    "--evaluation_strategy", "no", "--save_strategy", "steps", "--save_steps", "200", "--save_total_limit", "1",
    "--learning_rate", "4e-5", "--weight_decay", "0.01", "--warmup_ratio", "0.03", "--lr_scheduler_type", "cosine",
    "--logging_steps", "1", "--max_seq_length", "4096", "--do_train", "True", "--grad_checkpoint", "True",
    "--group_by_length", "True", "--dynamic_image_size", "True", "--use_thumbnail", "True", "--ps_version", "v2",
    "--deepspeed", "zero_stage1_config.json", "--report_to", "tensorboard",
)
# transformers' Trainer log line: "{'loss': 2.055, 'learning_rate': 3.0000000000000004e-05, 'epoch': 0.02}"
TRAINER_LOG = re.compile(r"^\{'loss': (.*?), 'learning_rate': (.*?), 'epoch': (.*?)\}$")


def internvl_train_requirements(dj_configs: Any, extra_configs: Any) -> list[str]:
    config = extra_configs if isinstance(extra_configs, dict) else {}
    missing = internvl_home_problems(config, INTERNVL_FINETUNE)
    style = config.get("conv_style_or_scale")
    if style not in INTERNVL_CONV_STYLES and style not in INTERNVL_CONV_STYLES.values():
        missing.append(f"extra_configs.conv_style_or_scale={style!r} is none of InternVL's scales "
                       f"({', '.join(INTERNVL_CONV_STYLES)}) or conversation styles")
    if not isinstance(config.get("model_name_or_path"), str):
        missing.append("extra_configs.model_name_or_path is missing: InternVL fine-tunes that model")
    per_device = config.get("batch_size_per_device", 4)
    if not isinstance(per_device, int) or isinstance(per_device, bool) or per_device <= 0:
        missing.append(f"extra_configs.batch_size_per_device must be a positive integer, got {per_device!r}")
    return missing + environment_problems(config, "internvl.yaml")


def internvl_training_argv(config: dict[str, Any], gpus: int, output_dir: Path, meta_path: str) -> list[str]:
    """Upstream's torchrun command for one meta file, with its batch arithmetic (512 samples per step)."""
    per_device = int(config.get("batch_size_per_device", 4))
    if INTERNVL_TOTAL_BATCH_SIZE % (gpus * per_device):
        raise ValueError(f"num_gpus x batch_size_per_device = {gpus * per_device} does not divide InternVL's "
                         f"total batch size {INTERNVL_TOTAL_BATCH_SIZE}")
    style = config["conv_style_or_scale"]
    return [*env_prefix(config, "internvl"), "torchrun", "--nnodes=1", "--node_rank=0", "--master_addr=127.0.0.1",
            f"--nproc_per_node={gpus}", f"--master_port={config.get('master_port', 34229)}", INTERNVL_FINETUNE,
            "--model_name_or_path", str(config["model_name_or_path"]),
            "--conv_style", INTERNVL_CONV_STYLES.get(style, style), "--output_dir", str(output_dir),
            "--meta_path", meta_path, *INTERNVL_FIXED_ARGS, "--per_device_train_batch_size", str(per_device),
            "--gradient_accumulation_steps", str(INTERNVL_TOTAL_BATCH_SIZE // per_device // gpus)]


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
        argv = internvl_training_argv(config, gpus, output_dir, os.path.abspath(meta_path))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(chat_dir)])),
               "MASTER_PORT": str(config.get("master_port", 34229)), "TF_CPP_MIN_LOG_LEVEL": "3", "LAUNCHER": "pytorch"}
        job.log.info("running %s", argv)
        steps = []
        for line in logged(argv, chat_dir, env, job, "InternVL training (torchrun)", output_dir / "training_log.txt"):
            found = TRAINER_LOG.match(line.strip())
            if found:
                loss, rate, epoch = (float(value) for value in found.groups())
                steps.append({"step": len(steps) + 1, "epoch": epoch, "loss": loss, "learning_rate": rate})
        (output_dir / "train_log.json").write_text(json.dumps(steps, indent=2) + "\n")
        outputs.append(str(output_dir))
    return outputs


# ---- VBench ------------------------------------------------------------------------------------------

VBENCH_RESULTS = re.compile(r"Evaluation results saved to (.*?)\.json")


def vbench_requirements(dj_configs: Any, extra_configs: Any) -> list[str]:
    config = extra_configs if isinstance(extra_configs, dict) else {}
    missing = [f"extra_configs.{key} is missing: VBench needs it" for key in ("full_json_dir", "videos_path")
               if not isinstance(config.get(key), str)]
    dimensions = config.get("dimension_list")
    if not isinstance(dimensions, list) or not dimensions or not all(isinstance(d, str) for d in dimensions):
        missing.append("extra_configs.dimension_list must list the VBench dimensions to evaluate")
    if config.get("env_manager", "conda") == "none" and not shutil.which("vbench"):
        missing.append("vbench is not on PATH: `pip install vbench` (or use env_manager conda with envs/vbench.yaml)")
    return missing + environment_problems(config, "vbench.yaml")


def vbench_video_evaluator(job: JobRun) -> float:
    config = job.extra_configs or {}
    output = job.job_dir / "eval_results"
    output.mkdir()
    detail: dict[str, float] = {}
    for dimension in config["dimension_list"]:
        argv = [*env_prefix(config, "vbench"), "vbench", "evaluate", "--ngpus", str(config.get("num_gpus") or gpu_count()),
                "--full_json_dir", str(config["full_json_dir"]), "--output_path", str(output),
                "--videos_path", str(config["videos_path"]), "--dimension", dimension,
                "--load_ckpt_from_local", str(bool(config.get("load_ckpt_from_local", False)))]
        job.log.info("running %s", argv)
        results_file = None
        for line in logged(argv, Path.cwd(), None, job, "vbench", output / f"eval_log_{dimension}.txt"):
            found = VBENCH_RESULTS.search(line)
            results_file = results_file or (found and f"{found.group(1)}.json")
        if results_file is None:
            raise RuntimeError(f"VBench's log for {dimension} names no results file (eval_results/eval_log_{dimension}.txt)")
        detail[dimension] = float(json.loads(Path(results_file).read_text())[dimension][0])
    merged = {"mean_score": sum(detail.values()) / len(detail), "detail": detail}
    name = config.get("eval_name", "vbench_evaluator")
    (output / f"{name}_merged_results.json").write_text(json.dumps(merged, indent=2) + "\n")
    return merged["mean_score"]


# ---- Inception metrics (FVD, KVD, IS, FID, KID, precision/recall) -------------------------------------

# DJ-Sandbox's thirdparty/mm_eval/inception_metrics, as py-data-juicer ships it; CUDA only.
INCEPTION_MODULE = "tools.mm_eval.inception_metrics.calc_metrics_for_videos"
INCEPTION_METRICS = ("fvd2048_16f", "fvd2048_128f", "fvd2048_128f_subsample8f", "kvd2048_16f", "isv2048_ucf",
                     "prv2048_3n_16f", "fid50k", "kid50k", "is50k", "pr50k_3n")
INCEPTION_WITHOUT_REAL_DATA = ("isv2048_ucf", "is50k")  # inception scores judge the generated videos alone
INCEPTION_ARGS = ("fake_data_path", "real_data_path", "fake_mm_dir", "real_mm_dir", "metric", "detector_path",
                  "num_runs", "height", "width", "replace_cache", "verbose", "seed")
INCEPTION_RESULTS = "inception_eval_results.jsonl"


def inception_requirements(dj_configs: Any, extra_configs: Any) -> list[str]:
    import importlib.util

    config = extra_configs if isinstance(extra_configs, dict) else {}
    metric = config.get("metric", "fvd2048_16f")
    missing = []
    if metric not in INCEPTION_METRICS:
        missing.append(f"extra_configs.metric={metric!r} is none of {', '.join(INCEPTION_METRICS)}")
    if not isinstance(config.get("fake_data_path"), str):
        missing.append("extra_configs.fake_data_path is missing: the generated videos to evaluate")
    if metric not in INCEPTION_WITHOUT_REAL_DATA and not isinstance(config.get("real_data_path"), str):
        missing.append(f"extra_configs.real_data_path is missing: {metric} compares with real videos")
    if config.get("env_manager", "conda") == "none":
        for module, package in ((INCEPTION_MODULE, "py-data-juicer"), ("fire", "fire")):
            try:
                found = importlib.util.find_spec(module) is not None
            except ImportError:
                found = False
            if not found:
                missing.append(f"{module} is not importable: install {package} (envs/inception.yaml pins the set)")
    return missing + environment_problems(config, "inception.yaml")


def video_inception_evaluator(job: JobRun) -> dict[str, Any]:
    """Upstream's calc_metrics as its command line, results in the job's own jsonl; returns its result dict."""
    config = job.extra_configs or {}
    results_file = job.job_dir / INCEPTION_RESULTS
    options = [f"--{key}={config[key]}" for key in INCEPTION_ARGS if config.get(key) is not None]
    prefix = env_prefix(config, "inception")
    python = "python" if prefix else sys.executable  # the env's own python, or this one's with env_manager none
    argv = [*prefix, python, "-m", INCEPTION_MODULE, *options, f"--result_path={results_file}"]
    job.log.info("running %s", argv)
    for _ in logged(argv, Path.cwd(), None, job, "inception metrics"):
        pass
    lines = results_file.read_text().splitlines() if results_file.exists() else []
    if not lines:
        raise RuntimeError(f"the inception metrics wrote no results to {results_file}")
    record = json.loads(lines[-1])
    # the tool's line adds what it ran on to the result dict upstream returns
    return {key: value for key, value in record.items() if key not in ("num_runs", "real_data_path", "fake_data_path")}


# ---- Trinity-RFT ---------------------------------------------------------------------------------------

# "(Trainer pid=3839503) INFO 05-08 11:11:13 monitor.py:96] Step 12: {'actor/pg_loss': 0.1, ...}"
TRINITY_STEP = re.compile(r"^\(Trainer pid=\d+\) INFO .*? monitor\.py:\d+\] Step (\d+): (\{.*\})\s*$")


def trinity_requirements(dj_configs: Any, extra_configs: Any) -> list[str]:
    config = extra_configs if isinstance(extra_configs, dict) else {}
    path = config.get("trinity_config_path")
    missing = [] if isinstance(path, str) and os.path.isfile(path) else [
        f"extra_configs.trinity_config_path names no file ({path!r}): Trinity-RFT trains from that config"]
    if config.get("env_manager", "conda") == "none" and not shutil.which("trinity"):
        missing.append("trinity is not on PATH: `pip install trinity-rft` (or use env_manager conda with envs/trinity.yaml)")
    return missing + environment_problems(config, "trinity.yaml")


def trinity_record(text: str) -> dict[str, float]:
    """The numbers of a monitor record (printed as a Python dict: single quotes, as upstream reads it)."""
    try:
        record = json.loads(text.replace("'", '"'))
    except ValueError:
        return {}
    return {key: float(value) for key, value in record.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)}


def trinity_rft_train(job: JobRun) -> str:
    import yaml

    config = job.extra_configs or {}
    trinity_config = yaml.safe_load(Path(config["trinity_config_path"]).read_text()) or {}
    checkpoints = job.job_dir / "checkpoints"
    trinity_config["checkpoint_root_dir"] = str(checkpoints)
    run_config = job.job_dir / "trinity_config.yaml"
    run_config.write_text(yaml.safe_dump(trinity_config, sort_keys=False))
    argv = [*env_prefix(config, "trinity"), "trinity", "run", "--config", str(run_config)]
    job.log.info("running %s", argv)
    steps = []
    for line in logged(argv, Path.cwd(), None, job, "trinity"):
        found = TRINITY_STEP.match(line.strip())
        if found:
            steps.append({"step": int(found.group(1)), **trinity_record(found.group(2))})
    (job.job_dir / "train_log.json").write_text(json.dumps(steps, indent=2) + "\n")
    return str(checkpoints)
