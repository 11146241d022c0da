"""EasyAnimate training and inference wired to the tool's own scripts, tested against stand-ins.

tests/data/stand_ins/ holds scripts with EasyAnimate's names and argument order that print its
progress format, and an nvidia-smi that lists one GPU: the only stand-ins in the suite, for what
cannot run here (EasyAnimate needs a GPU).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import pytest
import yaml

from sandflow.hooks.base import JobRun
from sandflow.hooks.hf.launch import TORCHRUN_LOGS
from sandflow.hooks.third_party.easyanimate import (
    PROGRESS,
    TRAIN_ARGS,
    argument,
    easyanimate_infer,
    easyanimate_requirements,
    easyanimate_train,
)
from sandflow.hooks.third_party.inception import inception_requirements, video_inception_evaluator
from sandflow.hooks.third_party.internvl import (
    internvl_coco_caption_eval,
    internvl_coco_caption_train,
    internvl_requirements,
    internvl_train_requirements,
)
from sandflow.hooks.third_party.trinity import trinity_requirements, trinity_rft_train
from sandflow.hooks.third_party.vbench import vbench_requirements, vbench_video_evaluator

from helpers.job_runs import job_run
from helpers.paths import REPO, UPSTREAM_CONFIGS

STAND_INS = REPO / "tests" / "data" / "stand_ins"


def train_config(**changes) -> dict:
    """The settings of upstream's configs/easyanimate_text_to_video/model_train.yaml."""
    return {
        "type": "easyanimate",
        "home": str(STAND_INS / "EasyAnimate"),
        "env_manager": "none",
        **changes,
        "train": {
            "tracker_config": {"project_name": "demo-bench", "experiment_name": "single-op"},
            "model_path": {
                "pretrained_model_name_or_path": "PixArt-alpha/PixArt-XL-2-512x512",
                "transformer_path": "/models/easyanimate.safetensors",
                "lora_path": "/models/lora",
            },
            "dataset_path": {"dataset_name": "", "dataset_meta_name": "../../../pool; rm -rf / #.json"},
            "training_config": {
                "sample_size": 256,
                "mixed_precision": "bf16",
                "batch_size_per_gpu": 8,
                "gradient_accumulation_steps": 1,
                "num_train_epochs": 1,
                "dataloader_num_workers": 8,
                "seed": 42,
            },
            "infer_config": {
                "image_size": 256,
                "prompt_info_path": "",
                "gpu_num": 1,
                "batch_size": 8,
                "mixed_precision": "bf16",
                "video_num_per_prompt": 1,
                "seed": 42,
            },
            "saving_config": {"output_dir": "../../../outputs/models", "output_video_dir": "../../../videos"},
        },
    }


def make_job(tmp_path: Path, hook: str, extra: dict) -> tuple[JobRun, list[str]]:
    records: list[str] = []
    log = logging.getLogger(f"test_third_party.{tmp_path.name}")
    log.setLevel(logging.INFO)
    log.addHandler(type("Collect", (logging.Handler,), {"emit": lambda self, r: records.append(r.getMessage())})())
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    return job_run(hook, job_dir, extra_configs=extra, log=log), records


@pytest.fixture
def gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{STAND_INS / 'bin'}:{os.environ['PATH']}")


def test_training_runs_the_script_with_upstreams_arguments_as_argv_and_parses_its_progress(tmp_path, gpu):
    job, log = make_job(tmp_path, "TrainModelHook", train_config())
    output = Path(easyanimate_train(job))
    assert output == job.job_dir / "output" and (output / "checkpoint-3.safetensors").read_text() == "lora\n"
    # Upstream's 14 arguments in order, the output directory the job's own; a value with shell syntax
    # in it arrives as one argument, untouched.
    assert (output / "arguments.txt").read_text().splitlines() == [
        "PixArt-alpha/PixArt-XL-2-512x512",
        "/models/easyanimate.safetensors",
        "",
        "../../../pool; rm -rf / #.json",
        "256",
        "bf16",
        "8",
        "1",
        "1",
        "8",
        "42",
        str(output),
        "demo-bench",
        "single-op",
    ]
    assert (output / "cwd.txt").read_text().strip() == str(STAND_INS / "EasyAnimate")  # run in the tool's tree
    assert json.loads((job.job_dir / "train_log.json").read_text()) == [
        {"step": 1, "loss": 0.412, "learning_rate": 0.0001},
        {"step": 2, "loss": 0.305, "learning_rate": 5e-05},
        {"step": 3, "loss": 0.251, "learning_rate": 2.5e-05},
    ]
    assert "11/24/2026 08:00:00 - INFO - __main__ - ***** Running training *****" in log
    assert sum("step_loss=0.412" in line for line in log) == 1  # a redrawn step is logged once


def test_inference_runs_infer_lora_and_returns_the_videos_directory(tmp_path, gpu):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a cat surfing\na dog skiing\n")
    config = train_config()
    config["train"]["infer_config"]["prompt_info_path"] = str(prompts)
    job, log = make_job(tmp_path, "InferModelHook", config)
    output = Path(easyanimate_infer(job))
    assert sorted(p.name for p in output.glob("*.mp4")) == ["video_1.mp4", "video_2.mp4"]
    assert (output / "arguments.txt").read_text().splitlines()[:3] == [
        "PixArt-alpha/PixArt-XL-2-512x512",
        "/models/easyanimate.safetensors",
        "/models/lora",
    ]
    assert "generated 2 videos" in log


def test_a_failing_tool_is_an_error_naming_the_script_and_its_exit_code(tmp_path, gpu, monkeypatch):
    monkeypatch.setenv("STAND_IN_FAIL", "1")
    job, log = make_job(tmp_path, "TrainModelHook", train_config())
    with pytest.raises(RuntimeError, match=r"^train_lora.sh exited with code 3; its output is in the job log$"):
        easyanimate_train(job)
    assert "CUDA out of memory" in log


def test_requirements_say_what_to_install_before_any_job(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no conda, no nvidia-smi
    missing = easyanimate_requirements("train_lora.sh")(
        None, train_config(home=str(tmp_path / "EasyAnimate"), env_manager="conda")
    )
    assert missing == [
        f"EasyAnimate is not at {tmp_path / 'EasyAnimate'} (no train_lora.sh): clone it there with DJ-Sandbox's "
        "thirdparty/models/setup_easyanimate.sh, or set extra_configs.home",
        "conda is not on PATH: install it and create the environment with `conda env create -f envs/easyanimate.yaml`",
        "this tool needs an NVIDIA GPU, and `nvidia-smi -L` lists none here",
    ]
    assert easyanimate_requirements("train_lora.sh")(None, train_config(env_manager="pip"))[0].startswith(
        "extra_configs.env_manager must be one of conda, mamba, none"
    )


def test_with_the_tool_and_a_gpu_nothing_is_missing(gpu):
    assert easyanimate_requirements("infer_lora.sh")(None, train_config()) == []


def test_upstreams_train_config_carries_every_argument_the_script_takes():
    path = UPSTREAM_CONFIGS / "easyanimate_text_to_video" / "model_train.yaml"
    if not path.exists():
        pytest.skip(f"DJ-Sandbox's example configs are not at {UPSTREAM_CONFIGS}")

    train = yaml.safe_load(path.read_text())["train"]
    assert [argument(train, dotted, Path("/out")) for dotted in TRAIN_ARGS][-3:] == [
        "/out",
        "demo-bench",
        "demo-single-op-model-train",
    ]


def test_progress_lines_match_tqdms_postfix_only():
    assert PROGRESS.search(
        "Steps:  50%|#####     | 5/10 [00:05<00:05,  1.00it/s, step_loss=nan, lr=1e-4]"
    ).groups() == ("5", "nan", "1e-4")
    assert PROGRESS.search("Steps:  50%|#####     | 5/10 [00:05<00:05,  1.00it/s]") is None


def test_internvl_caption_evaluation_runs_evaluate_sh_per_checkpoint_and_reads_its_scores(tmp_path, gpu):
    checkpoints = [tmp_path / "ckpt_a", tmp_path / "ckpt_b"]
    for checkpoint in checkpoints:
        checkpoint.mkdir()
    config = {
        "type": "internvl_coco_caption",
        "internvl_home": str(STAND_INS / "InternVL"),
        "env_manager": "none",
        "num_gpus": 8,
        "ckpt_paths": [str(c) for c in checkpoints],
    }
    assert internvl_requirements(None, config) == []
    job, log = make_job(tmp_path, "EvaluateModelHook", config)
    results = internvl_coco_caption_eval(job)
    scores = {
        "Bleu_1": 0.812,
        "Bleu_2": 0.655,
        "Bleu_3": 0.512,
        "Bleu_4": 0.394,
        "METEOR": 0.301,
        "ROUGE_L": 0.598,
        "CIDEr": 1.328,
    }
    assert results == [{**scores, "avg_score": pytest.approx(sum(scores.values()) / 7)}] * 2
    chat_dir = STAND_INS / "InternVL" / "internvl_chat"
    # Upstream's command: GPUS=<n> bash evaluate.sh <checkpoint relative to internvl_chat> caption-coco --dynamic.
    log_0 = (job.job_dir / "eval_log_0.txt").read_text().splitlines()
    assert log_0[:3] == [
        "GPUS: 8",
        f"CHECKPOINT: {os.path.relpath(checkpoints[0], chat_dir)}",
        "DATASET: caption-coco --dynamic",
    ]
    assert "CIDEr: 1.328" in log


def test_internvl_requirements_name_the_home_to_set(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert internvl_requirements(None, {"internvl_home": "<internvl_home>", "env_manager": "none"}) == [
        "InternVL is not at extra_configs.internvl_home ('<internvl_home>', no internvl_chat/evaluate.sh): "
        "clone https://github.com/OpenGVLab/InternVL and set internvl_home to it",
        "this tool needs an NVIDIA GPU, and `nvidia-smi -L` lists none here",
    ]


def internvl_train_config(tmp_path: Path, **changes) -> dict:
    """upstream's internvl_train_config.yaml, on the stand-in tree, with two meta files as a previous job writes them."""
    metas = []
    for name, sets in (("pool_low", ["coco_a", "coco_b", "coco_c"]), ("pool_high", ["coco_a", "coco_b"])):
        metas.append(tmp_path / f"{name}.json")
        metas[-1].write_text(
            json.dumps({s: {"root": "images", "annotation": f"{s}.jsonl", "repeat_time": 1} for s in sets})
        )
    return {
        "type": "internvl_coco_caption",
        "env_manager": "none",
        "internvl_home": str(STAND_INS / "InternVL"),
        "num_gpus": 8,
        "batch_size_per_device": 4,
        "work_dir": "<internvl_home>/internvl_chat/work_dirs",
        "model_name_or_path": "/models/InternVL2-1B",
        "conv_style_or_scale": "1B",
        "meta_paths": [str(m) for m in metas],
        "script_dir": "<internvl_home>/internvl_chat/scripts/",
        "master_port": free_port(),
        **changes,
    }


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow  # the real torchrun imports torch: ~10 s
def test_internvl_training_runs_upstreams_torchrun_command_per_meta_file_and_logs_its_curve(tmp_path, gpu, monkeypatch):
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ['PATH']}")  # the real torchrun
    temp = tmp_path / "tmp"  # where torchrun would leave its torchelastic_* log directory
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    config = internvl_train_config(tmp_path)
    assert internvl_train_requirements(None, config) == []
    job, log = make_job(tmp_path, "TrainModelHook", config)
    outputs = internvl_coco_caption_train(job)
    # upstream's output names (<meta stem>_<model name>), in the job's directory; one run per meta file, in order
    assert outputs == [str(job.job_dir / "output" / n) for n in ("pool_low_InternVL2-1B", "pool_high_InternVL2-1B")]
    low = Path(outputs[0])
    assert (low / "adapter_model.safetensors").read_text() == "stand-in weights\n"
    # the stand-in GPU is one, so 8 requested fall back to 1; 512 samples per step = 4 per device x 128 steps
    assert "launched by torchrun: rank 0 of 1, LAUNCHER=pytorch" in log
    assert "cwd=internvl_chat conv_style=Hermes-2 batch=4x128 lora=128 other_args=56" in log
    assert json.loads((low / "train_log.json").read_text()) == [
        {"step": 1, "epoch": 0.33, "loss": 2.5, "learning_rate": pytest.approx(4e-05 / 3)},
        {"step": 2, "epoch": 0.67, "loss": 1.25, "learning_rate": pytest.approx(8e-05 / 3)},
        {"step": 3, "epoch": 1.0, "loss": pytest.approx(2.5 / 3), "learning_rate": pytest.approx(4e-05)},
    ]
    assert len(json.loads((Path(outputs[1]) / "train_log.json").read_text())) == 2
    assert "{'loss': 2.5, 'learning_rate'" in (low / "training_log.txt").read_text()
    assert any("--log_dir=" in line for line in log)  # torchrun's logs go to the job's directory, gone when it ends
    assert list(temp.iterdir()) == [] and list(job.job_dir.rglob(f"{TORCHRUN_LOGS}-*")) == []


def test_internvl_training_checks_before_any_job_and_refuses_a_batch_that_does_not_divide_512(
    tmp_path, gpu, monkeypatch
):
    assert internvl_train_requirements(
        None, internvl_train_config(tmp_path, conv_style_or_scale="3B", internvl_home="<internvl_home>")
    ) == [
        "InternVL is not at extra_configs.internvl_home ('<internvl_home>', no "
        "internvl_chat/internvl/train/internvl_chat_finetune.py): clone https://github.com/OpenGVLab/InternVL and set "
        "internvl_home to it",
        "extra_configs.conv_style_or_scale='3B' is none of InternVL's scales (1B, 2B, 4B, 8B, 26B, 40B, 76B) or "
        "conversation styles",
    ]
    job, _ = make_job(tmp_path, "TrainModelHook", internvl_train_config(tmp_path, batch_size_per_device=3))
    with pytest.raises(ValueError, match=r"^num_gpus x batch_size_per_device = 3 does not divide InternVL's total"):
        internvl_coco_caption_train(job)


def test_vbench_evaluates_each_dimension_and_returns_the_mean(tmp_path, gpu):
    videos = tmp_path / "videos"
    videos.mkdir()
    config = {
        "type": "vbench_video_evaluator",
        "env_manager": "none",
        "full_json_dir": "VBench_mini_info.json",
        "videos_path": str(videos),
        "eval_name": "mini_test",
        "num_gpus": 1,
        "dimension_list": ["subject_consistency", "dynamic_degree"],
    }
    assert vbench_requirements(None, config) == []
    job, log = make_job(tmp_path, "EvaluateDataHook", config)
    mean = vbench_video_evaluator(job)
    detail = {"subject_consistency": 0.19, "dynamic_degree": 0.14}  # the stand-in's score: len(name) / 100
    assert mean == pytest.approx(sum(detail.values()) / 2)
    merged = json.loads((job.job_dir / "eval_results" / "mini_test_merged_results.json").read_text())
    assert merged == {"mean_score": pytest.approx(mean), "detail": pytest.approx(detail)}
    assert "ngpus=1 load_ckpt_from_local=False" in log


def test_vbench_requirements_and_failure(tmp_path, gpu):
    assert vbench_requirements(None, {"env_manager": "none", "dimension_list": []}) == [
        "extra_configs.full_json_dir is missing: VBench needs it",
        "extra_configs.videos_path is missing: VBench needs it",
        "extra_configs.dimension_list must list the VBench dimensions to evaluate",
    ]
    config = {
        "env_manager": "none",
        "full_json_dir": "x.json",
        "videos_path": str(tmp_path / "none"),
        "dimension_list": ["color"],
    }
    job, log = make_job(tmp_path, "EvaluateDataHook", config)
    with pytest.raises(RuntimeError, match=r"^vbench exited with code 1; its output is in the job log$"):
        vbench_video_evaluator(job)
    assert f"no videos at {tmp_path / 'none'}" in log


def test_inception_metrics_run_upstreams_command_line_and_return_its_result_dict(tmp_path, gpu, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(STAND_INS / "mm_eval"))  # shadows py-data-juicer's tools.mm_eval
    fake, real = tmp_path / "generated.jsonl", tmp_path / "real.jsonl"
    fake.write_text('{"videos": ["a.mp4", "b.mp4"]}\n{"videos": ["c.mp4"]}\n')
    real.write_text('{"videos": ["r.mp4"]}\n')
    config = {
        "type": "video_inception_evaluator",
        "env_manager": "none",
        "fake_data_path": str(fake),
        "real_data_path": str(real),
        "fake_mm_dir": None,
        "metric": "fvd2048_16f",
        "num_runs": 1,
        "height": 240,
        "width": 320,
        "replace_cache": False,
        "result_path": "./outputs/elsewhere.jsonl",
    }
    job, log = make_job(tmp_path, "EvaluateDataHook", config)
    assert video_inception_evaluator(job) == {
        "results": {"fvd2048_16f": 2.0},
        "metric": "fvd2048_16f",
        "total_time": 0.5,
        "total_time_str": "0s",
        "world_size": 1,
    }
    (line,) = (job.job_dir / "inception_eval_results.jsonl").read_text().splitlines()
    assert json.loads(line)["fake_data_path"] == str(fake)
    assert "Metric: fvd2048_16f" in log and not (tmp_path / "outputs").exists()


def test_inception_requirements_name_the_metric_the_data_and_the_packages(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setitem(sys.modules, "fire", None)  # not importable (make test installs it for the quality classifier)
    assert inception_requirements(None, {"env_manager": "none", "metric": "fvd", "fake_data_path": "g.jsonl"}) == [
        "extra_configs.metric='fvd' is none of fvd2048_16f, fvd2048_128f, fvd2048_128f_subsample8f, kvd2048_16f, "
        "isv2048_ucf, prv2048_3n_16f, fid50k, kid50k, is50k, pr50k_3n",
        "extra_configs.real_data_path is missing: fvd compares with real videos",
        "fire is not importable: install fire (envs/inception.yaml pins the set)",
        "this tool needs an NVIDIA GPU, and `nvidia-smi -L` lists none here",
    ]
    assert inception_requirements(None, {"env_manager": "conda", "metric": "is50k", "fake_data_path": "g.jsonl"}) == [
        "conda is not on PATH: install it and create the environment with `conda env create -f envs/inception.yaml`",
        "this tool needs an NVIDIA GPU, and `nvidia-smi -L` lists none here",
    ]


def test_trinity_trains_from_a_copy_of_its_config_that_checkpoints_into_the_job(tmp_path, gpu):
    trinity_config = tmp_path / "trinity.yaml"
    trinity_config.write_text("project: gsm8k\ncheckpoint_root_dir: /somewhere/else\n")
    config = {"type": "trinity-rft", "env_manager": "none", "trinity_config_path": str(trinity_config)}
    assert trinity_requirements(None, config) == []
    job, log = make_job(tmp_path, "TrainModelHook", config)
    checkpoints = Path(trinity_rft_train(job))
    assert checkpoints == job.job_dir / "checkpoints" and (checkpoints / "global_step_2").is_dir()
    assert yaml.safe_load((job.job_dir / "trinity_config.yaml").read_text()) == {
        "project": "gsm8k",
        "checkpoint_root_dir": str(checkpoints),
    }
    assert json.loads((job.job_dir / "train_log.json").read_text()) == [
        {"step": 1, "actor/pg_loss": 0.52, "perf/throughput": 1200.5},
        {"step": 2, "actor/pg_loss": 0.47, "perf/throughput": 1200.5},
    ]
    assert "project gsm8k done" in log
    assert trinity_requirements(None, {"env_manager": "none"})[0].startswith(
        "extra_configs.trinity_config_path names no file (None)"
    )
