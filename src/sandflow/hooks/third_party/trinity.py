"""TrainModelHook ``trinity-rft`` runs ``trinity run --config <trinity_config_path>``, as upstream, on a
copy of that config whose ``checkpoint_root_dir`` is the job's ``checkpoints`` directory (returned, as
upstream returns that key); the trainer's ``Step N: {...}`` monitor lines become ``train_log.json``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from sandflow.hooks.base import JobRun
from sandflow.hooks.third_party.tools import env_prefix, environment_problems, logged

TRINITY_STEP = re.compile(r"^\(Trainer pid=\d+\) INFO .*? monitor\.py:\d+\] Step (\d+): (\{.*\})\s*$")


def trinity_requirements(dj_configs: Any, extra_configs: Any) -> list[str]:
    config = extra_configs if isinstance(extra_configs, dict) else {}
    path = config.get("trinity_config_path")
    missing = (
        []
        if isinstance(path, str) and os.path.isfile(path)
        else [f"extra_configs.trinity_config_path names no file ({path!r}): Trinity-RFT trains from that config"]
    )
    if config.get("env_manager", "conda") == "none" and not shutil.which("trinity"):
        missing.append(
            "trinity is not on PATH: `pip install trinity-rft` (or use env_manager conda with envs/trinity.yaml)"
        )
    return missing + environment_problems(config, "trinity.yaml")


def trinity_record(text: str) -> dict[str, float]:
    """The numbers of a monitor record (printed as a Python dict: single quotes, as upstream reads it)."""
    try:
        record = json.loads(text.replace("'", '"'))
    except ValueError:
        return {}
    return {
        key: float(value)
        for key, value in record.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }


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
