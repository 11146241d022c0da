"""wandb tracking, DJ-Sandbox's SandboxWatcher: one wandb run per pipeline, from the finished jobs.

Upstream logs each hook's results to one wandb run while the experiment runs. Here a rule after
context_infos.json reads the job records and logs, per pipeline (and per hpo trial):

* run.config: each job's resolved config (``<meta_name>`` -> its dj_configs/extra_configs), and the
  trial's parameter values;
* each job's scalar outputs, flattened as upstream's watcher does (``<meta_name>.<output>.<key>``),
  with ``iteration`` as their x-axis;
* training curves: every ``train_log.json`` a training job wrote (loss, learning rate, grad norm per
  logging step) as ``<meta_name>/<model>/<column>`` against ``<meta_name>/<model>/step``.

Runs are offline unless the config's ``wandb.mode`` or the environment's WANDB_MODE says
``online``; their files go under ``<work_dir>/wandb/`` (``wandb sync`` uploads them later).
``<work_dir>/wandb/tracked.json`` lists each run and the keys logged to it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sandflow.core.atomic import write_text_atomic
from sandflow.core.jsonl import BadData, read_utf8
from sandflow.core.layout import CONTEXT_FILE

TRAIN_LOG = "train_log.json"


def scalars(value: Any, prefix: str) -> Iterator[tuple[str, float]]:
    """Numbers in an output, with dotted names (dict keys, list positions); everything else is skipped."""
    if isinstance(value, bool):
        yield prefix, float(value)
    elif isinstance(value, (int, float)):
        if math.isfinite(value):
            yield prefix, float(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from scalars(item, f"{prefix}.{key}")
    elif isinstance(value, list):
        for position, item in enumerate(value):
            yield from scalars(item, f"{prefix}.{position}")


def training_curves(job_dir: str, meta_name: str) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """(``<meta_name>/<model>``, log entries) for every training log in a job directory."""
    for log in sorted(Path(job_dir).rglob(TRAIN_LOG)):
        model = log.parent.relative_to(job_dir).as_posix().replace("/", ".") or "model"
        yield f"{meta_name}/{model}", read_training_log(log)


def read_training_log(path: Path) -> list[dict[str, Any]]:
    """A train_log.json: a list of objects, one per logged step; anything else fails the rule in one line."""
    try:
        entries = json.loads(read_utf8(path))
    except json.JSONDecodeError as exc:
        raise BadData(path, exc.lineno, f"not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise BadData(path, None, "not a list of objects, one per logged step")
    return entries


def runs(spec: dict[str, Any]) -> dict[tuple[int | None, str], list[dict[str, Any]]]:
    grouped: dict[tuple[int | None, str], list[dict[str, Any]]] = {}
    for job in spec["jobs"]:
        grouped.setdefault((job.get("trial"), job["pipeline"]), []).append(job)
    return grouped


def log_run(
    wandb: Any,
    settings: dict[str, Any],
    trial: int | None,
    pipeline: str,
    jobs: list[dict[str, Any]],
    trial_values: dict[str, Any] | None,
) -> dict[str, Any]:
    contexts = {job["key"]: json.loads(Path(job["job_dir"], CONTEXT_FILE).read_text()) for job in jobs}
    name = f"{settings['experiment']}.{pipeline}" + (f".trial_{trial}" if trial else "")
    config: dict[str, Any] = {job["meta_name"]: contexts[job["key"]]["config"] for job in jobs}
    if trial_values:
        config["hpo_trial"] = trial_values
    run = wandb.init(
        project=settings["project"],
        entity=settings.get("entity"),
        group=settings["experiment"],
        name=name,
        job_type="pipeline",
        dir=settings["dir"],
        mode=settings["mode"],
        config=config,
        reinit="create_new",
    )
    logged: set[str] = set()
    run.define_metric("iteration")
    for iteration in sorted({job["iteration"] for job in jobs}):
        row: dict[str, float] = {}
        for job in (j for j in jobs if j["iteration"] == iteration):
            values = contexts[job["key"]]["values"]
            names = job["output_names"] or [str(i) for i in range(len(values))]
            for output, value in zip(names, values):
                row.update(scalars(value, f"{job['meta_name']}.{output}"))
        for key in row:
            run.define_metric(key, step_metric="iteration")
        run.log({"iteration": iteration, **row})
        logged.update(row)
    for job in jobs:
        for prefix, entries in training_curves(job["job_dir"], job["meta_name"]):
            run.define_metric(f"{prefix}/step")
            run.define_metric(f"{prefix}/*", step_metric=f"{prefix}/step")
            for entry in entries:
                point = {
                    f"{prefix}/{column}": value
                    for column, value in entry.items()
                    if column != "step" and isinstance(value, (int, float)) and math.isfinite(value)
                }
                run.log({f"{prefix}/step": entry["step"], **point})
                logged.update(point)
    run.finish()
    return {"name": name, "id": run.id, "keys": sorted(logged)}


def track(spec: dict[str, Any], output: str) -> list[dict[str, Any]]:
    import wandb

    settings = dict(spec["wandb"])
    settings["mode"] = settings.get("mode") or os.environ.get("WANDB_MODE") or "offline"
    settings["dir"] = spec["work_dir"]  # wandb puts its wandb/ directory there
    os.environ.setdefault("WANDB_SILENT", "true")
    trial_values = {trial["number"]: trial["values"] for trial in spec.get("trials", [])}
    tracked = [
        log_run(wandb, settings, trial, pipeline, jobs, trial_values.get(trial))
        for (trial, pipeline), jobs in runs(spec).items()
    ]
    # run.finish() returns before wandb's service has flushed and closed the run files; stopping the
    # service waits for that, so the files are complete once the rule's output exists.
    wandb.teardown()
    write_text_atomic(
        output, json.dumps({"mode": settings["mode"], "runs": tracked}, indent=2) + "\n", sole_writer=True
    )
    return tracked
