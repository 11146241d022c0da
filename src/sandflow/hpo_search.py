"""A bayes hpo_config search: Optuna asks for trials, snakemake runs them, Optuna is told the metric.

    python -m sandflow.hpo_search --configfile configs/hpo/sandbox.yaml --hpo-config configs/hpo/bayes_search.yaml
        [--batch 4] [--cores 2] [--storage sqlite:///study.db] [--wait 86400] [-- <more snakemake options>]

``--hpo-config`` replaces the config's own hpo_config (the same experiment, another search).

Each round asks Optuna (TPE, seeded by hpo_config.seed and the number of trials so far) for
``--batch`` trials, writes ``<work_dir>/hpo/search.yaml`` -- the experiment config with every
trial so far listed under ``hpo_config.trials`` -- and runs snakemake on it, so earlier trials
are cache hits and the new ones run in parallel. The metric of each new trial is read from ``hpo/trials.csv`` and told to
Optuna; a trial without a number is told it failed. It stops at ``sweep_max_count`` trials, or
after the batch in which a trial reached ``metric.target``; the last run's ``hpo/best.json``,
``trials.csv`` and ``metric.png`` cover every trial, and
``snakemake --configfile <work_dir>/hpo/search.yaml`` afterwards does nothing.

The study lives in Optuna's file journal ``<work_dir>/hpo/optuna-journal.log`` (safe for several
processes on one file system), or in the database ``--storage`` (or, for a URL with a password, the
environment variable SANDFLOW_HPO_STORAGE) names, for searches spread over machines. A study interrupted and started again goes on where it stopped.

Several workers (this command started more than once on the same config and study) take turns on
the work_dir: a worker holds the work_dir's lock from asking for a batch to telling its results,
and hands it to the snakemake it runs, so a waiting worker (up to ``--wait`` seconds) plans its
batch with every earlier result on disk and in the study. No job ever runs in two workers, and the
last batch's ``best.json`` covers every worker's trials. Turns mean one snakemake at a time:
workers add no speed on one work_dir (``--batch``, ``--cores`` and a cluster profile do); they let
a search go on from several terminals or hosts sharing the file system.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any, NoReturn

import yaml

from sandflow.config.errors import ConfigError, print_error
from sandflow.config.files import read_config_file, read_yaml_or_json
from sandflow.config.hpo_spec import HpoConfig, Parameter, load_hpo, reaches_target
from sandflow.config.load import load_config
from sandflow.config.sweep_distributions import value_at
from sandflow.core import layout
from sandflow.core.atomic import write_text_atomic
from sandflow.hpo_storage import STORAGE_ENV, open_storage, storage_url
from sandflow.run.launch import snakemake_argv
from sandflow.run.lock import (
    INHERITED_LOCK,
    Lease,
    LockRefused,
    holder_text,
    live_holder_elsewhere,
    open_lock,
    try_flock,
)

WORKER = f"{socket.gethostname()}:{os.getpid()}"  # recorded on each trial this process asks for
# After its turn a worker waits this long before taking the work_dir again, so that a worker blocked on
# the lock gets the next turn (flock is not first come, first served).
TURN_GAP = 1.0


class WorkDirBusy(RuntimeError):
    """The work_dir stayed in use by another run for longer than this worker would wait."""


class WorkDirTurns:
    """Turns on the work_dir lock every sandflow run holds (run/lock.py), for the workers of a search."""

    def __init__(self, work_dir: str, wait: float):
        self.fd = open_lock(work_dir)
        self.work_dir, self.wait = work_dir, wait

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        lease = self._acquire()
        try:
            yield
        finally:
            lease.end()
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def _acquire(self) -> Lease:
        deadline = time.monotonic() + self.wait
        holder = None
        while True:
            got = try_flock(self.fd, self.work_dir)
            if not got:
                holder = holder or self._announce_wait()
                got = self._wait_for_lock(deadline)
            if got:
                if live_holder_elsewhere(self.work_dir, self.fd) is None:
                    return Lease(self.fd)
                fcntl.flock(self.fd, fcntl.LOCK_UN)  # a run on another node, where flock does not reach
                holder = holder or self._announce_wait()
                time.sleep(min(TURN_GAP, max(deadline - time.monotonic(), 0)))
            if time.monotonic() >= deadline:
                raise WorkDirBusy(
                    f"work_dir {self.work_dir} was still in use ({holder}) after {self.wait:g} s "
                    "(--wait); the trials finished so far stay in the study"
                )

    def _announce_wait(self) -> str:
        holder = holder_text(self.fd)
        print(
            f"sandflow: hpo_search: waiting for work_dir {self.work_dir} ({holder} is using it), "
            f"at most {self.wait:g} s",
            file=sys.stderr,
            flush=True,
        )
        return holder

    def _wait_for_lock(self, deadline: float) -> bool:
        """A blocking flock that an alarm interrupts at deadline (time.monotonic())."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False

        def give_up(signum: int, frame: Any) -> None:
            raise TimeoutError

        previous = signal.signal(signal.SIGALRM, give_up)
        signal.setitimer(signal.ITIMER_REAL, remaining)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            return True
        except TimeoutError:
            return False
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


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
    if kind in ("log_uniform_values", "q_log_uniform_values"):
        value = trial.suggest_float(name, spec["min"], spec["max"], log=True)
        if kind == "q_log_uniform_values":
            q = spec.get("q", 1)
            value = round(value / q) * q
            return int(value) if isinstance(q, int) else value
        return value
    # Optuna has no normal or exponent-form distribution: TPE searches the quantile, as wandb's own bayes
    # search works on each parameter's CDF, and the value is the distribution's at that quantile.
    return value_at(kind, spec, trial.suggest_float(name, 0.0, 1.0), f"hpo_config.parameters.{name}")


def open_study(hpo: HpoConfig, name: str, work_dir: str, storage_url: str | None) -> Any:
    import optuna

    storage = open_storage(work_dir, storage_url)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=name,
        storage=storage,
        load_if_exists=True,
        direction="maximize" if hpo.goal == "maximize" else "minimize",
        sampler=optuna.samplers.TPESampler(seed=hpo.seed),
    )


def ask_batch(study: Any, hpo: HpoConfig, count: int) -> list[Any]:
    """Ask for count trials with a sampler seeded by hpo.seed and the number of trials so far: workers
    taking turns (each with its own sampler) never repeat each other's draws, and a search gives the
    same trials whether one worker or several ran it, interrupted or not."""
    import numpy
    import optuna

    first = len(study.get_trials(deepcopy=False))
    seed = int(numpy.random.SeedSequence([hpo.seed, first]).generate_state(1)[0])
    study.sampler = optuna.samplers.TPESampler(seed=seed)
    asked = [study.ask() for _ in range(count)]
    for trial in asked:
        trial.set_user_attr("values", {p.name: suggest(trial, p) for p in hpo.parameters})
        trial.set_user_attr("worker", WORKER)
    return asked


def finished(study: Any) -> list[Any]:
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False) if t.state in (TrialState.COMPLETE, TrialState.FAIL)]


def first_at_target(hpo: HpoConfig, done: list[Any]) -> int | None:
    """The number (1-based, in the order asked) of the first finished trial that reached metric.target."""
    return next((n for n, t in enumerate(done, 1) if reaches_target(hpo.goal, hpo.target, t.value)), None)


def metric_by_trial(table: str, metric: str) -> dict[int, float | None]:
    with open(table) as handle:
        return {int(row["trial"]): float(row[metric]) if row[metric] else None for row in csv.DictReader(handle)}


def run_snakemake(config_path: str, cores: int, extra: list[str], lock_fd: int) -> None:
    """Run snakemake holding the work_dir lock this worker holds (passed down, see workflow.hold_lock)."""
    command = snakemake_argv(config_path, "--cores", str(cores), *extra)
    print(f"sandflow: hpo_search: {' '.join(command[1:])}", file=sys.stderr, flush=True)
    result = subprocess.run(command, pass_fds=(lock_fd,), env={**os.environ, INHERITED_LOCK: str(lock_fd)})
    if result.returncode:
        raise SystemExit(result.returncode)


def search(
    configfile: str,
    hpo_config: str | None,
    batch: int,
    cores: int,
    storage_url: str | None,
    extra: list[str],
    wait: float = 86400,
) -> dict[str, Any]:
    raw = read_config_file(configfile)
    if hpo_config is not None:
        raw["hpo_config"] = hpo_config
    config = load_config(copy.deepcopy(raw), source=configfile)
    if config.hpo_config is None:
        raise ConfigError("hpo_config", "this config has no search")
    hpo_mapping = read_yaml_or_json(config.hpo_config) if isinstance(config.hpo_config, str) else config.hpo_config
    hpo = load_hpo(hpo_mapping)
    for note in hpo.notes:
        print(f"sandflow: note: {note}", file=sys.stderr)
    if hpo.method != "bayes":
        raise ConfigError(
            "hpo_config.method",
            f"a {hpo.method} search runs with snakemake itself: snakemake --cores {cores} --configfile {configfile}",
        )
    work_dir = config.work_dir
    search_config = os.path.join(layout.hpo_dir(work_dir), "search.yaml")
    turns = WorkDirTurns(work_dir, wait)
    study = None
    while True:
        with turns.turn():  # ask, run and tell in one turn: the next worker plans with these results
            if study is None:  # in a turn too: workers creating one database at once can collide
                study = open_study(hpo, f"{config.project_name}.{config.experiment_name}", work_dir, storage_url)
            done = finished(study)
            if len(done) >= hpo.max_count or first_at_target(hpo, done) is not None:
                break
            asked = ask_batch(study, hpo, min(batch, hpo.max_count - len(done)))
            listed = [t.user_attrs["values"] for t in done] + [t.user_attrs["values"] for t in asked]
            derived = copy.deepcopy(raw)
            derived["hpo_config"] = {**hpo_mapping, "trials": listed}
            write_text_atomic(search_config, yaml.safe_dump(derived, sort_keys=False))  # replaces a planted symlink
            run_snakemake(search_config, cores, extra, turns.fd)
            values = metric_by_trial(layout.hpo_results(work_dir)["table"], hpo.metric)
            for number, trial in enumerate(asked, len(done) + 1):
                value = values.get(number)
                if value is None:
                    from optuna.trial import TrialState

                    study.tell(trial, state=TrialState.FAIL)
                else:
                    study.tell(trial, value)
        time.sleep(TURN_GAP)
    best, done = study.best_trial, finished(study)
    return {
        "trial_values": best.user_attrs["values"],
        "value": best.value,
        "trials": len(done),
        "target_reached_by": first_at_target(hpo, done),
    }


class OneLineParser(argparse.ArgumentParser):
    """Usage mistakes in one line, exit 2, like every other sandflow error."""

    def error(self, message: str) -> NoReturn:
        sys.exit(print_error("hpo_search", f"{message} (--help lists the options)"))


def asks_for_a_dry_run(options: list[str]) -> bool:
    """snakemake's -n / --dry-run / --dryrun, alone or among combined short flags (-pn)."""
    return any(
        o.startswith("--dry") or (o[:1] == "-" and o[1:2] != "-" and o[1:].isalpha() and "n" in o) for o in options
    )


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m sandflow.hpo_search", description=__doc__.split("\n\n")[0])
    parser.add_argument("--configfile", required=True, help="the sandbox config whose hpo_config has method: bayes")
    parser.add_argument("--hpo-config", help="an hpo_config file to search with instead of the config's own")
    parser.add_argument("--batch", type=int, default=2, help="trials asked for and run per snakemake run (default 2)")
    parser.add_argument("--cores", type=int, default=2, help="snakemake --cores (default 2)")
    parser.add_argument(
        "--storage",
        help=f"an Optuna RDB URL for the study, without a password (one with a password goes in ${STORAGE_ENV}); "
        "default: a journal file in work_dir/hpo",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=86400,
        help="seconds to wait for the work_dir while another worker or run uses it (default 86400)",
    )
    parser.add_argument("-n", "--dry-run", "--dryrun", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("snakemake_args", nargs="*", help="more snakemake options, after --")
    args = parser.parse_args(argv)
    if args.dry_run or asks_for_a_dry_run(args.snakemake_args):
        # Each round tells Optuna the metrics of the batch it ran: a dry run has none, and would leave asked,
        # never told, trials in the study.
        return print_error(
            "hpo_search",
            "a search cannot be dry-run (-n): each batch needs its metrics; to see what the last batch planned, "
            "run snakemake -n --configfile <work_dir>/hpo/search.yaml",
        )
    if args.batch < 1:
        parser.error("--batch must be at least 1")
    if args.wait < 0:
        parser.error("--wait must be 0 or more seconds")
    try:
        storage = storage_url(args.storage)
    except ConfigError as error:
        return print_error("hpo_search", error)
    try:
        best = search(args.configfile, args.hpo_config, args.batch, args.cores, storage, args.snakemake_args, args.wait)
    except ConfigError as error:
        return print_error(args.configfile, error)
    except (WorkDirBusy, LockRefused) as error:
        return print_error("hpo_search", error)
    print(f"best of {best['trials']} trials: {best['value']!r} with {best['trial_values']}")
    if best["target_reached_by"] is not None:
        print(f"trial {best['target_reached_by']} reached metric.target: no more trials were asked for")
    return 0


if __name__ == "__main__":
    sys.exit(main())
