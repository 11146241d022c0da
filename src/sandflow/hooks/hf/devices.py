"""The device and precision a model job runs on, and the record of them it leaves in its job directory.

A job uses the accelerator it can see: CUDA when torch sees a GPU, else the CPU. A job the scheduler gave a
GPU (SLURM's ``SLURM_GPUS_ON_NODE``, or ``CUDA_VISIBLE_DEVICES`` naming devices) that torch cannot see (a CPU
build of torch, a driver mismatch) fails at once instead of training for a day on the CPU. The precision is
the config's (``precision: fp32 | bf16 | fp16``, default fp32 on every device, so that the job key, which holds
the config, says which precision the result has). Where the job ran is not part of its key (docs/gpu.md says
why); ``device.json`` in the job directory records it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sandflow.core.atomic import write_text_atomic
from sandflow.core.jobio import JobFailed

PRECISIONS = ("fp32", "bf16", "fp16")
DEVICE_JSON = "device.json"  # in the job directory


@dataclass(frozen=True)
class Placement:
    """Where a job's model runs: ``cuda`` or ``cpu``, its precision, and its data-parallel processes."""

    device: str
    precision: str
    num_processes: int = 1

    @property
    def torch_dtype(self) -> Any:
        import torch

        return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[self.precision]


def granted_gpus() -> str | None:
    """What says the job was given a GPU (the variable and its value), or None."""
    slurm = os.environ.get("SLURM_GPUS_ON_NODE", "").strip()
    if slurm.isdigit() and int(slurm) > 0:
        return f"SLURM_GPUS_ON_NODE={slurm}"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    # "-1", "" and SLURM's "NoDevFiles" hide every GPU; indices and UUIDs name devices.
    if any(entry.strip().isdigit() or entry.strip().startswith(("GPU-", "MIG-")) for entry in visible.split(",")):
        return f"CUDA_VISIBLE_DEVICES={visible}"
    return None


def visible_device() -> str:
    """``cuda`` when torch sees a GPU; ``cpu`` when it sees none and none was given; JobFailed when one was given
    but torch cannot see it."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    grant = granted_gpus()
    if grant:
        raise JobFailed(
            f"this job was given a GPU ({grant}) but torch {torch.__version__} sees no CUDA device "
            "(a CPU build of torch, or a driver it cannot use): not running on the CPU instead"
        )
    return "cpu"


def precision_setting(cfg: Mapping[str, Any], where: str, device: str) -> str:
    precision = cfg.get("precision", "fp32")
    if precision not in PRECISIONS:
        raise ValueError(f"{where}.precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp16" and device != "cuda":
        raise JobFailed(f"{where}.precision: fp16 needs a CUDA GPU and this job sees none (bf16 and fp32 run on CPU)")
    return precision


def job_placement(cfg: Mapping[str, Any], where: str) -> Placement:
    """One process on the visible device, in the config's precision."""
    device = visible_device()
    return Placement(device=device, precision=precision_setting(cfg, where, device))


def write_device_record(job_dir: Path, placement: Placement) -> None:
    """``device.json``: the device (with the GPUs' names), precision and process count the job ran with."""
    record: dict[str, Any] = asdict(placement)
    if placement.device == "cuda":
        import torch

        record["device_names"] = [torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count())]
    write_text_atomic(Path(job_dir) / DEVICE_JSON, json.dumps(record, indent=2, sort_keys=True) + "\n")
