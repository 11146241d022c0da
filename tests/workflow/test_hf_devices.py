"""The device a model job was given: CPU here (CUDA paths: tests/gpu/), precision from the config, a GPU that was
given but cannot be seen fails the job, and data-parallel training on two gloo processes, for real."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from sandflow.core.jobio import JobFailed
from sandflow.hooks.hf.devices import DEVICE_JSON, granted_gpus
from sandflow.hooks.hf.launch import TORCHRUN_LOGS
from sandflow.hooks.hf.models import load_checkpoint
from sandflow.hooks.hf.perplexity import evaluate_perplexity, perplexity_of
from sandflow.hooks.hf.tiny_lm import build_tiny_causal_lm
from sandflow.hooks.hf.train import train_huggingface
from sandflow.hooks.llm.infer import infer_model

from helpers.env import snakemake_env
from helpers.snakemake import job_counts, snakemake, snakemake_command
from helpers.tiny_training import TINY, TRAINING, make_job, template_texts, write_jsonl

# 1 vs 2 processes: each logged loss (the mean over 2 steps) within this of the other run's. Same global batch,
# seed and initial weights, and no dropout: what is left is float summation order (DDP's all-reduce sums the two
# halves' gradients) and the padded last block, whose tokens weigh a little differently when split over ranks.
# Measured here: at most 2.1e-3 over 20 steps, while one process with another seed (other batches, same
# weights) differs by up to 4.0e-2: the tolerance lets rounding through and catches a different batch order.
LOSS_TOLERANCE = 5e-3


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("devices") / "train.jsonl", template_texts(200, 1))


@pytest.fixture(scope="module")
def model_dir(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GPT-2 without dropout: dropout masks are drawn per process, so they would differ between 1 and 2 ranks."""
    directory = tmp_path_factory.mktemp("model") / "model"
    build_tiny_causal_lm(directory, template_texts(200, 1), vocab_size=300, **TINY)
    config = json.loads((directory / "config.json").read_text())
    config.update(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    (directory / "config.json").write_text(json.dumps(config))
    return directory


@pytest.fixture
def private_tmpdir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh $TMPDIR for the jobs and their torchrun; short, as the job server's socket goes in it."""
    with tempfile.TemporaryDirectory() as temp:
        monkeypatch.setenv("TMPDIR", temp)
        yield Path(temp)


def torchrun_logs_left(tmpdir: Path, job_dirs: Path) -> list[Path]:
    """torchrun's log directories left behind: the one torch makes in $TMPDIR unless given one, and sandflow's."""
    return [*tmpdir.glob("torchelastic_*"), *job_dirs.rglob(f"{TORCHRUN_LOGS}-*")]


def few_steps(corpus: Path, **settings: object) -> dict:
    return {"model_config": {"architecture": "gpt2", **TINY, "vocab_size": 300}, "dataset_path": str(corpus),
            **TRAINING, "max_steps": 2, **settings}  # fmt: skip


@pytest.mark.parametrize(
    ("environment", "given"),
    [
        ({"CUDA_VISIBLE_DEVICES": "0"}, "CUDA_VISIBLE_DEVICES=0"),
        ({"CUDA_VISIBLE_DEVICES": "GPU-6c1f0e"}, "CUDA_VISIBLE_DEVICES=GPU-6c1f0e"),
        ({"SLURM_GPUS_ON_NODE": "2"}, "SLURM_GPUS_ON_NODE=2"),
        ({"CUDA_VISIBLE_DEVICES": "-1"}, None),  # hides every GPU
        ({"CUDA_VISIBLE_DEVICES": "NoDevFiles", "SLURM_GPUS_ON_NODE": "0"}, None),  # SLURM, no GPU granted
        ({}, None),
    ],
)
def test_what_says_a_gpu_was_given(environment: dict, given: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CUDA_VISIBLE_DEVICES", "SLURM_GPUS_ON_NODE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert granted_gpus() == given


def test_a_job_given_a_gpu_it_cannot_see_fails_before_training(
    corpus: Path, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")  # as SLURM's --gpus=1 sets it; this machine has no GPU
    job = make_job(tmp_path, "train", few_steps(corpus))
    with pytest.raises(JobFailed) as failure:
        train_huggingface(job)
    assert str(failure.value).startswith("this job was given a GPU (CUDA_VISIBLE_DEVICES=0) but torch ")
    assert "\n" not in str(failure.value) and "not running on the CPU instead" in str(failure.value)
    assert list((tmp_path / "train").rglob("*.safetensors")) == [] and not (tmp_path / "train" / DEVICE_JSON).exists()

    evaluate = make_job(tmp_path, "ppl", {"ckpt_paths": str(model_dir), "dataset_path": str(corpus)},
                        hook="EvaluateModelHook", kind="perplexity")  # fmt: skip
    with pytest.raises(JobFailed, match=r"^this job was given a GPU \(CUDA_VISIBLE_DEVICES=0\)"):
        evaluate_perplexity(evaluate)
    infer = make_job(tmp_path, "infer", {"model": str(model_dir), "dataset_path": str(corpus)},
                     hook="InferModelHook")  # fmt: skip
    with pytest.raises(JobFailed, match=r"^this job was given a GPU \(CUDA_VISIBLE_DEVICES=0\)"):
        infer_model(infer)
    assert list((tmp_path / "infer" / "extra_configs.export_path").iterdir()) == []


def test_a_cpu_job_trains_in_the_configured_precision_and_records_it(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("SLURM_GPUS_ON_NODE", raising=False)
    fp32 = make_job(tmp_path, "fp32", few_steps(corpus))
    bf16 = make_job(tmp_path, "bf16", few_steps(corpus, precision="bf16"))
    train_huggingface(fp32)
    train_huggingface(bf16)
    for job, precision in ((fp32, "fp32"), (bf16, "bf16")):
        record = json.loads((job.job_dir / DEVICE_JSON).read_text())
        assert record == {"device": "cpu", "precision": precision, "num_processes": 1}
        assert json.loads((job.job_dir / "extra_configs.export_path" / "metrics.json").read_text())["global_step"] == 2
    losses = [
        json.loads((job.job_dir / "extra_configs.export_path" / "metrics.json").read_text())["train_loss"]
        for job in (fp32, bf16)
    ]
    assert losses[0] != losses[1] and abs(losses[0] - losses[1]) < 0.1  # bf16 autocast rounds, same training


def test_perplexity_in_bf16_records_it(model_dir: Path, corpus: Path, tmp_path: Path) -> None:
    job = make_job(tmp_path, "ppl", {"ckpt_paths": str(model_dir), "dataset_path": str(corpus), "precision": "bf16"},
                   hook="EvaluateModelHook", kind="perplexity")  # fmt: skip
    result = evaluate_perplexity(job)
    assert json.loads((job.job_dir / DEVICE_JSON).read_text()) == {"device": "cpu", "precision": "bf16",
                                                                     "num_processes": 1}  # fmt: skip
    model, tokenizer = load_checkpoint(model_dir)
    fp32 = perplexity_of(model, tokenizer, template_texts(200, 1), seq_len=64, batch_size=8)
    assert result["num_tokens"] == fp32["num_tokens"] and result["loss"] != fp32["loss"]
    assert abs(result["loss"] - fp32["loss"]) < 0.05 * fp32["loss"]


@pytest.mark.parametrize(
    ("setting", "error", "message"),
    [
        (
            {"precision": "fp16"},
            JobFailed,
            "extra_configs.precision: fp16 needs a CUDA GPU and this job sees none (bf16 and fp32 run on CPU)",
        ),
        ({"precision": "fp8"}, ValueError, "extra_configs.precision must be one of fp32, bf16, fp16, got 'fp8'"),
        ({"num_processes": 0}, ValueError, "extra_configs.num_processes must be an integer >= 1, got 0"),
    ],
)
def test_bad_device_settings_name_the_key(
    setting: dict, error: type, message: str, corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("SLURM_GPUS_ON_NODE", raising=False)
    with pytest.raises(error) as failure:
        train_huggingface(make_job(tmp_path, "bad", few_steps(corpus, **setting)))
    assert str(failure.value) == message


def train_log_losses(job_dir: Path) -> list[float]:
    return [row["loss"] for row in json.loads((job_dir / "extra_configs.export_path" / "train_log.json").read_text())]


@pytest.mark.slow
def test_two_gloo_processes_train_as_one_process_with_the_same_global_batch(
    model_dir: Path, corpus: Path, tmp_path: Path, private_tmpdir: Path
) -> None:
    common = {"model_path": str(model_dir), "dataset_path": str(corpus), **TRAINING, "logging_steps": 2}
    one = make_job(tmp_path, "one", {**common, "per_device_train_batch_size": 8})
    two = make_job(tmp_path, "two", {**common, "per_device_train_batch_size": 4, "num_processes": 2})
    train_huggingface(one)
    train_huggingface(two)
    assert torchrun_logs_left(private_tmpdir, tmp_path) == []
    assert sorted(path.name for path in two.job_dir.iterdir()) == [DEVICE_JSON, "extra_configs.export_path"]
    assert json.loads((two.job_dir / DEVICE_JSON).read_text()) == {"device": "cpu", "precision": "fp32",
                                                                     "num_processes": 2}  # fmt: skip
    single, parallel = train_log_losses(one.job_dir), train_log_losses(two.job_dir)
    assert len(single) == len(parallel) == 10
    assert max(abs(a - b) for a, b in zip(single, parallel)) <= LOSS_TOLERANCE, (single, parallel)
    assert parallel[-1] < parallel[0] - 1  # it learnt
    metrics = json.loads((two.job_dir / "extra_configs.export_path" / "metrics.json").read_text())
    assert metrics["global_step"] == 20
    # Rank 0's checkpoint loads and scores the texts as the one-process model does, within the same tolerance.
    scores = []
    for job in (one, two):
        model, tokenizer = load_checkpoint(job.job_dir / "extra_configs.export_path")
        scores.append(perplexity_of(model, tokenizer, template_texts(50, 2), seq_len=32, batch_size=8)["loss"])
    assert abs(scores[0] - scores[1]) <= LOSS_TOLERANCE, scores
    assert not list(two.job_dir.rglob("rank_request.json"))


def rank_pids(rank: int, run_dir: Path) -> list[int]:
    """Processes running sandflow's training rank ``rank`` (torchrun puts RANK in their environment) for a job under
    run_dir (their command line names its request file): not the ranks of another test running at the same time."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes()
            if (
                b"sandflow.hooks.hf.launch" in command
                and f"\0{run_dir.resolve()}/".encode() in command
                and f"RANK={rank}".encode() in (entry / "environ").read_bytes().split(b"\0")
            ):
                found.append(int(entry.name))
        except (OSError, ValueError):
            continue
    return found


class InterruptAtFirstStep(logging.Handler):
    """Stops the job as Ctrl-C does (SIGINT: a KeyboardInterrupt in the job) once rank 0 has logged a training step."""

    def __init__(self) -> None:
        super().__init__()
        self.interrupted = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.interrupted and record.getMessage().startswith("rank 0: step"):
            self.interrupted = True
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.slow
def test_a_stopped_data_parallel_job_stops_its_ranks_and_leaves_no_log_dir(
    corpus: Path, tmp_path: Path, private_tmpdir: Path
) -> None:
    job = make_job(tmp_path, "stopped", few_steps(corpus, max_steps=150, logging_steps=5, num_processes=2))
    job.log.setLevel(logging.INFO)
    job.log.addHandler(InterruptAtFirstStep())
    with pytest.raises(KeyboardInterrupt):
        train_huggingface(job)
    assert not rank_pids(0, tmp_path) and not rank_pids(1, tmp_path)  # torchrun stopped them as it was stopped
    assert torchrun_logs_left(private_tmpdir, tmp_path) == []


@pytest.mark.slow
def test_killing_one_rank_fails_the_job_in_one_line_and_a_rerun_trains_it(
    corpus: Path, tmp_path: Path, private_tmpdir: Path
) -> None:
    training = {"type": "huggingface", **few_steps(corpus), "max_steps": 150, "logging_steps": 5,
                "num_processes": 2, "export_path": "./work/model/"}  # fmt: skip
    config = {"work_dir": "./work", "execution_job_configs": [
        {"hook": "TrainModelHook", "meta_name": "train", "output": "checkpoint", "extra_configs": training}]}  # fmt: skip
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(config))
    run = subprocess.Popen(
        [*snakemake_command("train.yaml"), "--cores", "2"],
        cwd=tmp_path,
        env=snakemake_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not any("rank 0: step" in log.read_text() for log in (tmp_path / "work").rglob("*.log")):
            assert run.poll() is None and time.monotonic() < deadline, "training did not start"
            time.sleep(0.2)
        (victim,) = rank_pids(1, tmp_path)
        os.kill(victim, signal.SIGKILL)
        _, stderr = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode != 0
    failed = [line for line in stderr.splitlines() if line.startswith("sandflow: job failed: ")]
    assert failed == [
        "sandflow: job failed: data-parallel training on 2 processes failed: rank 1 ended with signal SIGKILL "
        "(torchrun exit code 1; the ranks' output is in the job log)"
    ], stderr[-3000:]
    assert not rank_pids(0, tmp_path) and not rank_pids(1, tmp_path)  # torchrun stopped rank 0 too
    assert not list((tmp_path / "work").rglob("context.json")) and not list((tmp_path / "work").rglob("*.partial-*"))
    assert torchrun_logs_left(private_tmpdir, tmp_path) == []

    assert job_counts(snakemake(tmp_path, "train.yaml"))["train_model"] == 1
    (record,) = (tmp_path / "work").rglob("jobs/*/*/context.json")
    assert json.loads((record.parent / DEVICE_JSON).read_text())["num_processes"] == 2
    assert json.loads(next((tmp_path / "work").rglob("metrics.json")).read_text())["global_step"] == 150
    assert torchrun_logs_left(private_tmpdir, tmp_path) == []
