"""Data-parallel training: one process per device, started by torchrun (torch.distributed.run, pinned with torch).

A job trains on several processes when its extra_configs set ``num_processes: N`` (N > 1), or when it sees
several CUDA devices (SLURM's ``--gpus=N`` shows it N). The job process starts
``python -m torch.distributed.run --standalone --nproc-per-node N -m sandflow.hooks.hf.launch <request>`` as its
child (not through the job server: the ranks are fresh processes of their own), relays the ranks' output to the
job log and waits. Each rank runs the same training (train.train_one_model) under torch's DistributedDataParallel,
with NCCL on GPUs and gloo on CPU; rank 0 writes the checkpoint. A rank that dies makes torchrun stop the others;
the job then fails in one line naming the rank and its exit code, and, like any failed job, leaves no job
directory, so the next run trains again. torchrun's log directory is a fresh one in the job directory, removed
once torchrun has ended.

Each rank reads ``per_device_train_batch_size`` samples a step: the global batch is N times that.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sandflow
from sandflow.core.atomic import write_text_atomic
from sandflow.core.jobio import JobFailed
from sandflow.hooks.base import JobRun
from sandflow.hooks.hf.devices import Placement
from sandflow.hooks.hf.models import int_setting

REQUEST_JSON = "rank_request.json"  # in the job directory: what every rank trains
TORCHRUN_LOGS = "torchrun_logs"  # prefix of torchrun's --log-dir in the job directory; removed when torchrun ends


def process_count(cfg: Mapping[str, Any], where: str, device: str) -> int:
    """``num_processes`` when given (at most the visible GPUs on CUDA), else one per visible CUDA device."""
    requested = int_setting(cfg, "num_processes", None, where)
    if device != "cuda":
        return requested or 1
    import torch

    visible = torch.cuda.device_count()
    if requested is not None and requested > visible:
        raise JobFailed(f"{where}.num_processes={requested} but this job sees {visible} CUDA device(s)")
    return requested or visible


def torchrun_argv(request: Path, num_processes: int, log_dir: Path) -> list[str]:
    """One node; --standalone lets torch pick a free local rendezvous port (two jobs on a node do not clash).
    Without --log-dir torch makes a torchelastic_* directory in $TMPDIR and leaves it there. log_dir gets only empty
    per-rank directories: the ranks' output is not redirected into it (--redirects and --tee stay 0) but comes here."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes=1",
        f"--nproc-per-node={num_processes}",
        f"--log-dir={log_dir}",
        "-m",
        "sandflow.hooks.hf.launch",
        str(request),
    ]


def rank_environment() -> dict[str, str]:
    """The job's environment, with this copy of sandflow importable and one CPU thread per rank."""
    source = str(Path(sandflow.__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH")
    return {
        **os.environ,
        "PYTHONPATH": source + (os.pathsep + path if path else ""),
        "OMP_NUM_THREADS": "1",  # torchrun's default too, set here so that it does not warn about it
    }


def failure_line(output: list[str], code: int, num_processes: int) -> str:
    """torchrun's summary of the first failed rank (the 'rank :' and 'exitcode :' lines under 'Root Cause') in one
    line; the ranks it stopped because of that one are listed before it, under 'Failures'."""
    text = "\n".join(output)
    text = text[text.rfind("Root Cause") :] if "Root Cause" in text else text
    rank = re.search(r"^\s*rank\s*:\s*(\d+)", text, re.MULTILINE)
    exitcode = re.search(r"^\s*exitcode\s*:\s*(-?\d+)", text, re.MULTILINE)
    detail = ""
    if rank and exitcode:
        number = int(exitcode.group(1))
        how = f"signal {signal.Signals(-number).name}" if number < 0 else f"exit code {number}"
        detail = f": rank {rank.group(1)} ended with {how}"
    return f"data-parallel training on {num_processes} processes failed{detail} (torchrun exit code {code}; the ranks' output is in the job log)"


def train_data_parallel(job: JobRun, paths: list[Path], text_key: str, export: Path, placement: Placement) -> None:
    """Train one model on the texts of paths, saved in export, on placement.num_processes ranks."""
    request = Path(job.job_dir).resolve() / REQUEST_JSON
    write_text_atomic(
        request,
        json.dumps(
            {
                "extra_configs": job.extra_configs,
                "paths": [str(path) for path in paths],
                "text_key": text_key,
                "export": str(export),
                "job_dir": str(job.job_dir),
                "placement": {"device": placement.device, "precision": placement.precision},
                "job": {name: getattr(job, name) for name in ("hook", "key", "pipeline", "meta_name", "iteration")},
            }
        ),
    )
    output: list[str] = []
    # Removed once the Popen block has waited for torchrun: after success, failure or the job being stopped.
    with tempfile.TemporaryDirectory(
        prefix=f"{TORCHRUN_LOGS}-", dir=request.parent, ignore_cleanup_errors=True
    ) as logs:
        argv = torchrun_argv(request, placement.num_processes, Path(logs))
        job.log.info("data-parallel on %d %s processes: %s", placement.num_processes, placement.device, " ".join(argv))
        with subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=rank_environment()
        ) as ranks:
            try:
                assert ranks.stdout is not None
                for line in ranks.stdout:
                    output.append(line.rstrip("\n"))
                    job.log.info("%s", line.rstrip("\n"))
                code = ranks.wait()
            except BaseException:  # the job is being stopped: stop the ranks with it (torchrun stops its workers)
                ranks.terminate()
                ranks.wait()
                raise
    request.unlink()
    if code:
        raise JobFailed(failure_line(output, code, placement.num_processes))


def rank_main(request_path: str) -> None:
    """One rank (started by torchrun): train the requested model; rank 0 saves it."""
    from sandflow.hooks.hf.models import read_texts
    from sandflow.hooks.hf.train import train_one_model

    request = json.loads(Path(request_path).read_text())
    rank = int(os.environ["RANK"])
    log = logging.getLogger(f"sandflow.rank{rank}")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter(f"rank {rank}: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO if rank == 0 else logging.WARNING)  # rank 0 speaks for all; the others warn
    log.propagate = False
    job = JobRun(
        **request["job"],
        job_dir=Path(request["job_dir"]),
        dj_configs=None,
        extra_configs=request["extra_configs"],
        log=log,
    )
    texts = read_texts([Path(path) for path in request["paths"]], request["text_key"])
    world = int(os.environ["WORLD_SIZE"])
    train_one_model(job, texts, Path(request["export"]), Placement(**request["placement"], num_processes=world))


if __name__ == "__main__":
    rank_main(sys.argv[1])
