"""The stage of dvc.yaml: run the sandbox experiment params.yaml names, then export its metrics for DVC.

    python -m sandflow.dvc_stage [params.yaml]

params.yaml's ``experiment`` section holds ``config`` (a sandbox config), ``work_dir`` (its job
store, overriding the config's, since dvc.yaml declares it as the stage's persisted output) and
``cores``. The command line is fixed: the values are read here and handed to snakemake as argv
items, never through a shell, so no parameter can become a command.

After the run, ``<work_dir>/metrics.json`` holds every evaluation metric of the experiment (from
``report/metrics.csv``), nested as ``{pipeline: {job: {metric: value}}}``, with ``iter_<N>`` and
``trial_<T>`` levels when there are several iterations or trials, which ``dvc metrics show`` lists.
dvc.yaml's top-level ``plots`` name what the run's report writes under ``<work_dir>/report/plots/``
(report/figures.py): each training curve and the evaluation metrics, for ``dvc plots show``.

DVC can only skip the stage safely if its deps name every file the experiment reads, and dvc.yaml's
templating cannot expand a list into deps, so ``sandflow dvc-stage`` writes them out: the config, each
file its plan reads (``experiment_reads``) and the workflow (``CODE_DEPS``). Before running, the stage
rewrites them itself when the config has come to read other files (docs/dvc.md).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from typing import Any

import yaml

from sandflow.config.errors import ConfigError, print_error
from sandflow.config.files import read_config_file
from sandflow.config.load import load_config
from sandflow.core import layout
from sandflow.core.atomic import write_text_atomic
from sandflow.plan.keys import external_reads
from sandflow.plan.planner import plan_config
from sandflow.run.launch import snakemake_argv

KEYS = {"config": (str, "a path"), "work_dir": (str, "a path"), "cores": (int, "a whole number")}
DVC_YAML = "dvc.yaml"
STAGE = "experiment"
CONFIG_DEP = (
    "${experiment.config}"  # interpolated by DVC, so `dvc exp run -S experiment.config=...` tracks the new config
)
# The workflow as Snakemake runs it: a change to any of these may change what a job does or which jobs run.
CODE_DEPS = ["Snakefile", "rules", "scripts", "envs", "requirements.txt", "src/sandflow"]
HEADER = """\
# `dvc repro` runs the sandbox experiment params.yaml names, with snakemake, and records its metrics.
# The job store is a persisted, uncached output: DVC neither deletes it before a run nor copies it
# into its cache, so Snakemake reruns only the jobs a change affects (docs/dvc.md).
# The experiment stage's deps are written by `sandflow dvc-stage`: the config, every file its plan
# reads (recipe, job, hpo and user-function files, data, model directories) and the workflow (Snakefile,
# rules, scripts, envs, requirements.txt, src/sandflow). The stage rewrites them itself when the config
# comes to read other files. `dvc plots show` draws the run's training curves and evaluation metrics,
# which the run writes under <work_dir>/report/plots/. Comments here are not kept.
"""
# Top-level plots of a new dvc.yaml: the data sandflow's report writes at stable paths (report/figures.py).
PLOTS = [
    {"${experiment.work_dir}/report/plots/train_loss": {"x": "step", "y": "loss"}},
    {
        "${experiment.work_dir}/report/plots/metrics.csv": {
            "template": "bar_horizontal",
            "x": "value",
            "y": "metric",
            "title": "evaluation metrics",
        }
    },
]


def read_params(path: str) -> dict[str, Any]:
    """params.yaml's experiment section, checked; a problem is one line naming the key."""
    try:
        with open(path) as handle:
            experiment = (yaml.safe_load(handle) or {}).get("experiment")
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read it ({exc})") from None
    if not isinstance(experiment, dict):
        raise ValueError(f"{path}: experiment: must be a mapping with config, work_dir and cores")
    for key, (kind, description) in KEYS.items():
        if not isinstance(experiment.get(key), kind) or isinstance(experiment.get(key), bool):
            raise ValueError(f"{path}: experiment.{key}: must be {description}, got {experiment.get(key)!r}")
    if not os.path.isfile(experiment["config"]):
        raise ValueError(f"{path}: experiment.config: no such file: {experiment['config']}")
    return experiment


def nested_metrics(metrics_csv: str) -> dict[str, Any]:
    with open(metrics_csv) as handle:
        rows = list(csv.DictReader(handle))
    several_iterations = len({row["iteration"] for row in rows}) > 1
    metrics: dict[str, Any] = {}
    for row in rows:
        levels = [f"trial_{row['trial']}"] if row["trial"] else []
        levels += [f"iter_{row['iteration']}"] if several_iterations else []
        node = metrics
        for level in [*levels, row["pipeline"], row["job"]]:
            node = node.setdefault(level, {})
        node[row["metric"]] = float(row["value"])
    return metrics


def dep_path(path: str) -> str:
    """A path as dvc.yaml names a dep: relative to the stage's directory (the current one) when inside it."""
    relative = os.path.relpath(path)
    return os.path.abspath(path) if relative.startswith("..") else relative


def experiment_reads(config_file: str, work_dir: str | None = None) -> list[str]:
    """Every file and directory the plan of the config reads besides the config itself -- job files, the hpo
    file, recipe files, user-function modules, datasets, model directories -- sorted, as dvc.yaml deps.

    ``work_dir`` overrides the config's, as the stage's ``--config work_dir=...`` does. Raises ConfigError."""
    data = read_config_file(config_file)
    if work_dir is not None:
        data["work_dir"] = work_dir
    config = load_config(data, source=config_file)
    plan = plan_config(config)
    reads = [*config.job_files, *([config.hpo_config] if isinstance(config.hpo_config, str) else [])]
    for job in plan.unique_jobs():
        reads.extend(external_reads(job, plan.hashes))
    return sorted({dep_path(path) for path in reads} - {dep_path(config_file)})


def stage_deps(reads: list[str]) -> list[str]:
    return [CONFIG_DEP, *reads, *CODE_DEPS]


def default_stage() -> dict[str, Any]:
    return {
        "cmd": "python -m sandflow.dvc_stage params.yaml",
        "deps": [],
        "params": ["experiment"],
        "outs": [{"${experiment.work_dir}/jobs": {"persist": True, "cache": False}}],
        "metrics": [{"${experiment.work_dir}/metrics.json": {"cache": False}}],
    }


def write_dvc_yaml(reads: list[str], path: str = DVC_YAML) -> bool:
    """Set the experiment stage's deps in dvc.yaml (creating the file or the stage as needed, keeping other
    stages and settings, adding sandflow's plots when it has none); False when they were already these, and
    then the file is left as it is."""
    document: Any = {}
    if os.path.exists(path):
        try:
            with open(path) as handle:
                document = yaml.safe_load(handle) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"{path}: cannot read it ({exc})") from None
        if not isinstance(document, dict) or not isinstance(document.get("stages", {}), dict):
            raise ValueError(f"{path}: stages: must be a mapping of stage names to stages")
    stages = document.setdefault("stages", {})
    stage = stages.get(STAGE) if isinstance(stages.get(STAGE), dict) else default_stage()
    deps = stage_deps(reads)
    if stages.get(STAGE) is stage and stage.get("deps") == deps:
        return False
    stage["deps"] = deps
    stages[STAGE] = stage
    document.setdefault("plots", PLOTS)
    write_text_atomic(path, HEADER + yaml.safe_dump(document, sort_keys=False))
    return True


def write_stage(params_path: str = "params.yaml") -> int:
    """`sandflow dvc-stage`: write dvc.yaml's experiment stage for the config params.yaml names."""
    try:
        experiment = read_params(params_path)
        reads = experiment_reads(experiment["config"], experiment["work_dir"])
        changed = write_dvc_yaml(reads)
    except ValueError as exc:
        return print_error(exc)
    except ConfigError as exc:
        return print_error(experiment["config"], exc)
    print(
        f"{DVC_YAML}: stage {STAGE} {'now depends' if changed else 'depends already'} on {experiment['config']}, "
        f"{', '.join(CODE_DEPS)} and the {len(reads)} files and directories it reads:"
    )
    print("\n".join(f"  {path}" for path in reads))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    params_path = args[0] if args else "params.yaml"
    try:
        experiment = read_params(params_path)
        # Run by DVC (dvc.yaml is here): keep the stage's deps in step with what the config reads now.
        if os.path.isfile(DVC_YAML) and write_dvc_yaml(experiment_reads(experiment["config"], experiment["work_dir"])):
            print(
                f"sandflow: note: {DVC_YAML}: the {STAGE} stage's deps now list every file {experiment['config']} "
                f"reads; DVC decided on this run with the old list, so the next `dvc repro` runs the stage once more "
                f"(Snakemake finds nothing to do) unless you run `dvc commit -f {STAGE}` after this one",
                file=sys.stderr,
            )
    except ValueError as exc:
        return print_error(exc)
    except ConfigError as exc:
        return print_error(experiment["config"], exc)
    command = snakemake_argv(
        experiment["config"], "--config", f"work_dir={experiment['work_dir']}", "--cores", str(experiment["cores"])
    )
    code = subprocess.run(command).returncode
    if code:
        return code
    metrics = nested_metrics(layout.report_outputs(experiment["work_dir"])["metrics"])
    write_text_atomic(os.path.join(experiment["work_dir"], "metrics.json"), json.dumps(metrics, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
