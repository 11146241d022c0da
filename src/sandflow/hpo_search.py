"""A bayes hpo_config search: Optuna asks for trials, snakemake runs them, Optuna is told the metric.

    python -m sandflow.hpo_search --configfile configs/hpo/sandbox.yaml --hpo-config configs/hpo/bayes_search.yaml
        [--batch 4] [--cores 2] [--storage sqlite:///study.db] [-- <more snakemake options>]

``--hpo-config`` replaces the config's own hpo_config (the same experiment, another search).

Each round asks Optuna (TPE, seeded by hpo_config.seed) for ``--batch`` trials, writes
``<work_dir>/hpo/search.yaml`` -- the experiment config with every trial so far listed under
``hpo_config.trials`` -- and runs snakemake on it, so earlier trials are cache hits and the new
ones run in parallel. The metric of each new trial is read from ``hpo/trials.csv`` and told to
Optuna; a trial without a number is told it failed. It stops at ``sweep_max_count`` trials; the
last run's ``hpo/best.json``, ``trials.csv`` and ``metric.png`` cover every trial, and
``snakemake --configfile <work_dir>/hpo/search.yaml`` afterwards does nothing.

The study lives in Optuna's file journal ``<work_dir>/hpo/optuna-journal.log`` (safe for several
processes on one file system), or in the database ``--storage`` names, for searches spread over
machines. A study interrupted and started again goes on where it stopped.
"""

from __future__ import annotations

import argparse
import copy
import csv
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from sandflow.config.errors import ConfigError
from sandflow.config.files import read_config_file, read_yaml_or_json
from sandflow.config.hpo_spec import HpoConfig, Parameter, load_hpo
from sandflow.config.load import load_config

SNAKEFILE = Path(__file__).resolve().parents[2] / "Snakefile"


def suggest(trial: Any, parameter: Parameter) -> Any:
    """Optuna's counterpart of a wandb-sweep distribution."""
    spec, kind, name = parameter.spec, parameter.distribution, parameter.name
    if kind == "constant":
        return spec["value"]
    if kind == "categorical":
        return trial.suggest_categorical(name, spec["values"])
    if kind == "int_uniform":
        return trial.suggest_int(name, spec["min"], spec["max"])
    if kind == "uniform":
        return trial.suggest_float(name, spec["min"], spec["max"])
    if kind == "q_uniform":
        return trial.suggest_float(name, spec["min"], spec["max"], step=spec.get("q", 1))
    value = trial.suggest_float(name, spec["min"], spec["max"], log=True)
    if kind == "q_log_uniform_values":
        q = spec.get("q", 1)
        value = round(value / q) * q
        return int(value) if isinstance(q, int) else value
    return value


def open_study(hpo: HpoConfig, name: str, work_dir: str, storage_url: str | None) -> Any:
    import optuna

    if storage_url:
        storage = optuna.storages.RDBStorage(storage_url)
    else:
        from optuna.storages.journal import JournalFileBackend

        journal = os.path.join(work_dir, "hpo", "optuna-journal.log")
        os.makedirs(os.path.dirname(journal), exist_ok=True)
        storage = optuna.storages.JournalStorage(JournalFileBackend(journal))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(study_name=name, storage=storage, load_if_exists=True,
                               direction="maximize" if hpo.goal == "maximize" else "minimize",
                               sampler=optuna.samplers.TPESampler(seed=hpo.seed))


def finished(study: Any) -> list[Any]:
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False) if t.state in (TrialState.COMPLETE, TrialState.FAIL)]


def metric_by_trial(table: str, metric: str) -> dict[int, float | None]:
    with open(table) as handle:
        return {int(row["trial"]): float(row[metric]) if row[metric] else None for row in csv.DictReader(handle)}


def run_snakemake(config_path: str, cores: int, extra: list[str]) -> None:
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--configfile", config_path,
               "--cores", str(cores), *extra]
    print(f"sandflow: hpo_search: {' '.join(command[1:])}", file=sys.stderr, flush=True)
    result = subprocess.run(command)
    if result.returncode:
        raise SystemExit(result.returncode)


def search(configfile: str, hpo_config: str | None, batch: int, cores: int, storage_url: str | None,
           extra: list[str]) -> dict[str, Any]:
    raw = read_config_file(configfile)
    if hpo_config is not None:
        raw["hpo_config"] = hpo_config
    config = load_config(copy.deepcopy(raw), source=configfile)
    if config.hpo_config is None:
        raise ConfigError("hpo_config", "this config has no search")
    hpo_mapping = read_yaml_or_json(config.hpo_config) if isinstance(config.hpo_config, str) else config.hpo_config
    hpo = load_hpo(hpo_mapping)
    if hpo.method != "bayes":
        raise ConfigError("hpo_config.method", f"a {hpo.method} search runs with snakemake itself: "
                          f"snakemake --cores {cores} --configfile {configfile}")
    work_dir = config.work_dir
    study = open_study(hpo, f"{config.project_name}.{config.experiment_name}", work_dir, storage_url)
    search_config = os.path.join(work_dir, "hpo", "search.yaml")
    while len(finished(study)) < hpo.max_count:
        done = finished(study)
        asked = [study.ask() for _ in range(min(batch, hpo.max_count - len(done)))]
        for trial in asked:
            trial.set_user_attr("values", {p.name: suggest(trial, p) for p in hpo.parameters})
        listed = [t.user_attrs["values"] for t in done] + [t.user_attrs["values"] for t in asked]
        derived = copy.deepcopy(raw)
        derived["hpo_config"] = {**hpo_mapping, "trials": listed}
        os.makedirs(os.path.dirname(search_config), exist_ok=True)
        Path(search_config).write_text(yaml.safe_dump(derived, sort_keys=False))
        run_snakemake(search_config, cores, extra)
        values = metric_by_trial(os.path.join(work_dir, "hpo", "trials.csv"), hpo.metric)
        for number, trial in enumerate(asked, len(done) + 1):
            value = values.get(number)
            if value is None:
                from optuna.trial import TrialState

                study.tell(trial, state=TrialState.FAIL)
            else:
                study.tell(trial, value)
    best = study.best_trial
    return {"trial_values": best.user_attrs["values"], "value": best.value, "trials": len(finished(study))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandflow.hpo_search", description=__doc__.split("\n\n")[0])
    parser.add_argument("--configfile", required=True, help="the sandbox config whose hpo_config has method: bayes")
    parser.add_argument("--hpo-config", help="an hpo_config file to search with instead of the config's own")
    parser.add_argument("--batch", type=int, default=2, help="trials asked for and run per snakemake run (default 2)")
    parser.add_argument("--cores", type=int, default=2, help="snakemake --cores (default 2)")
    parser.add_argument("--storage", help="an Optuna RDB URL for the study (default: a journal file in work_dir/hpo)")
    parser.add_argument("snakemake_args", nargs="*", help="more snakemake options, after --")
    args = parser.parse_args(argv)
    if args.batch < 1:
        parser.error("--batch must be at least 1")
    try:
        best = search(args.configfile, args.hpo_config, args.batch, args.cores, args.storage, args.snakemake_args)
    except ConfigError as error:
        print(f"sandflow: error: {args.configfile}: {error}", file=sys.stderr)
        return 2
    print(f"best of {best['trials']} trials: {best['value']!r} with {best['trial_values']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
