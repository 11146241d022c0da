"""What the Snakemake report shows of a run: every figure the jobs drew, training curves, all metrics.

Written with context_infos.json, from the same job records, into ``<work_dir>/report/``:

* ``figures/<name>.png``: every PNG a job left in its directory (pool rankings, stat histograms with
  their split points, ...) and one training curve (loss per logging step) per ``train_log.json``.
  ``<name>`` says where it comes from: ``[trial_<T>.][iter_<N>.]<pipeline>.<job>.<file>``;
* ``metrics.csv``: one row per scalar output of every evaluation job (EvaluateDataHook,
  EvaluateModelHook): iteration, trial, pipeline, job, metric, value.

A training curve is drawn once: ``.figure-cache/<digest>.png`` next to ``figures/`` keeps it under a
hash of its points and title (a finished job's log never changes), so a rerun that changed one job
does not import matplotlib and redraw every curve of the experiment.

``figures/.sandflow-figures`` names the figures a build wrote: a rebuild removes those and nothing else, and a
run refuses to start over a ``figures/`` without it in a work_dir no earlier run planned in (Snakemake empties a
directory output before its job), so a work_dir pointed at an existing directory loses nothing of the user's.

The Snakemake report (``snakemake --report report.html``) lists both with their captions
(report/figures.rst, report/metrics.rst).

``plots/`` holds the same data for ``dvc plots show`` at the stable paths dvc.yaml names (job directories are
content-addressed): ``train_loss/<name>.csv`` (step, loss) per training curve, ``<name>`` as its figure's without
``.train_log.png``, and ``metrics.csv`` (metric, value), each metric named ``<prefix>.<metric>``. ``train_loss/``
exists even when empty (DVC warns about a missing plot directory); ``plots/.sandflow-plots`` names the curves a
build wrote, which the next build removes, and nothing else.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import re
from pathlib import Path
from typing import Any

from sandflow.core import layout
from sandflow.core.atomic import remove_leftover_temps, replacing, write_text_atomic
from sandflow.core.layout import CONTEXT_FILE
from sandflow.core.private_fs import copy_replacing, ensure_within, resolves_within
from sandflow.report.tracking import TRAIN_LOG, scalars, training_curves

EVALUATION_HOOKS = ("EvaluateDataHook", "EvaluateModelHook")
FIGURE_CACHE = ".figure-cache"
CACHED_NAME = re.compile(r"[0-9a-f]{24}\.png")
MANIFEST = ".sandflow-figures"  # in figures/: the names the last build wrote, the only ones it ever removes
PLOTS_MANIFEST = ".sandflow-plots"  # in plots/: the same for plots/train_loss/


def figure_prefix(job: dict[str, Any], several_iterations: bool) -> str:
    trial = f"trial_{job['trial']}." if job.get("trial") else ""
    iteration = f"iter_{job['iteration']}." if several_iterations else ""
    return f"{trial}{iteration}{job['pipeline']}.{job['readable_name']}"


def loss_points(entries: list[dict[str, Any]]) -> list[tuple[Any, float]]:
    return [(e["step"], e["loss"]) for e in entries if isinstance(e.get("loss"), (int, float))]


def plot_training_curve(entries: list[dict[str, Any]], title: str, path: Path) -> None:
    from matplotlib.figure import Figure

    from sandflow.report.pool_plots import save_png

    points = loss_points(entries)
    figure = Figure(figsize=(6, 3.2), dpi=100)
    axes = figure.add_subplot()
    axes.plot([s for s, _ in points], [loss for _, loss in points], "o-", color="#4477aa", markersize=3)
    axes.set_xlabel("step")
    axes.set_ylabel("training loss")
    axes.set_title(title, fontsize="medium")
    figure.tight_layout()
    save_png(figure, path)


def cached_training_curve(entries: list[dict[str, Any]], title: str, path: Path, cache: Path, used: set[Path]) -> None:
    """The curve's figure at path, drawn only when the cache has none for these points and title."""
    digest = hashlib.sha256(json.dumps([entries, title], sort_keys=True).encode()).hexdigest()[:24]
    cached = cache / f"{digest}.png"
    if not cached.exists():
        with replacing(cached, suffix=".png") as (fd, drawing):  # a killed drawing leaves no half-written entry
            os.close(fd)
            plot_training_curve(entries, title, Path(drawing))
    copy_replacing(cached, path)
    used.add(cached)


def metric_rows(spec: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for job in spec["jobs"]:
        if job["hook"] not in EVALUATION_HOOKS:
            continue
        values = json.loads(Path(job["job_dir"], CONTEXT_FILE).read_text())["values"]
        names = job["output_names"] or [str(i) for i in range(len(values))]
        for output, value in zip(names, values):
            for metric, number in scalars(value, output):
                rows.append(
                    [job["iteration"], job.get("trial") or "", job["pipeline"], job["meta_name"], metric, repr(number)]
                )
    return rows


def plotted_metric(row: list[Any], several_iterations: bool) -> str:
    """A metrics.csv row's metric as plots/metrics.csv names it: <prefix>.<metric>, the prefix a figure's."""
    iteration, trial, pipeline, job, metric, _ = row
    job_fields = {"iteration": iteration, "trial": trial, "pipeline": pipeline, "readable_name": job}
    return f"{figure_prefix(job_fields, several_iterations)}.{metric}"


def foreign_figures(figures_dir: str, work_dir: str) -> str | None:
    """Why a run must not start: Snakemake empties the figures directory (a directory output) before it rebuilds
    it, so one that sandflow did not write would be lost. Sandflow's has a manifest, or (an older sandflow's)
    sits in a work_dir where an earlier run planned jobs; a work_dir pointed at an existing directory has neither."""
    if not os.path.lexists(figures_dir) or os.path.isfile(os.path.join(figures_dir, MANIFEST)):
        return None
    if os.path.isdir(layout.state_path(work_dir, "planned")) and not os.path.islink(figures_dir):
        return None
    return (
        f"{figures_dir} exists and sandflow did not write it; each run replaces that directory, so move it away "
        "or choose another work_dir"
    )


def remove_own_files(directory: Path, manifest: Path) -> None:
    """The files of directory an earlier build wrote, as its manifest names them; nothing else in it."""
    if manifest.is_symlink() or not manifest.is_file():
        return
    for name in manifest.read_text().splitlines():
        if name and os.sep not in name and name not in (".", ".."):
            with contextlib.suppress(FileNotFoundError):
                (directory / name).unlink()  # a symlink itself, never what it points to


def csv_text(rows: list[list[Any]]) -> str:
    table = io.StringIO()
    csv.writer(table, lineterminator="\n").writerows(rows)
    return table.getvalue()


def write_plot_data(plots: Path, curves: dict[str, list[tuple[Any, float]]], metrics: list[list[Any]]) -> None:
    """plots/ for `dvc plots show`: train_loss/<name>.csv per curve, metrics.csv (module docstring)."""
    train_loss = plots / "train_loss"
    remove_own_files(train_loss, plots / PLOTS_MANIFEST)
    train_loss.mkdir(parents=True, exist_ok=True)
    for name, points in curves.items():
        path = train_loss / f"{name}.csv"
        ensure_within(path, train_loss, "report plot")
        write_text_atomic(path, csv_text([["step", "loss"], *points]))
    write_text_atomic(plots / PLOTS_MANIFEST, "".join(f"{name}.csv\n" for name in curves))
    write_text_atomic(plots / "metrics.csv", csv_text([["metric", "value"], *metrics]))


def build(spec: dict[str, Any], figures_dir: str, metrics_path: str) -> None:
    figures, work_dir = Path(figures_dir), spec["work_dir"]
    cache = figures.parent / FIGURE_CACHE
    plots = figures.parent / "plots"
    # A symlinked report/ would lead out of work_dir.
    for path in (figures / MANIFEST, cache / "x", metrics_path, plots / PLOTS_MANIFEST, plots / "train_loss" / "x"):
        ensure_within(path, work_dir, "report file")
    remove_own_files(figures, figures / MANIFEST)  # no figure of an older plan stays (Snakemake empties it anyway)
    # What a build killed mid-write left (the run's lock is held: no other build is at work).
    for directory in (figures.parent, figures, plots, plots / "train_loss"):
        remove_leftover_temps(directory)
    remove_leftover_temps(cache, suffix=".png")
    figures.mkdir(parents=True, exist_ok=True)
    cache.mkdir(exist_ok=True)
    written: list[str] = []
    several_iterations = len({job["iteration"] for job in spec["jobs"]}) > 1
    used: set[Path] = set()
    curves: dict[str, list[tuple[Any, float]]] = {}
    for job in spec["jobs"]:
        prefix = figure_prefix(job, several_iterations)
        job_dir = Path(job["job_dir"])
        for png in sorted(job_dir.rglob("*.png")):
            if not resolves_within(png, job_dir):
                continue  # a symlink out of the job's directory: not a figure the job drew
            copy = figures / f"{prefix}.{png.relative_to(job_dir).as_posix().replace('/', '.')}"
            ensure_within(copy, figures, "report figure")
            copy_replacing(png, copy)
            written.append(copy.name)
        for name, entries in training_curves(job["job_dir"], job["meta_name"]):
            points = loss_points(entries)
            if not points:
                continue  # a log without a loss (Trinity-RFT's records) is in wandb, not plotted here
            model = name.split("/", 1)[1]
            curves[f"{prefix}.{model}"] = points
            curve = figures / f"{prefix}.{model}.{TRAIN_LOG.removesuffix('.json')}.png"
            ensure_within(curve, figures, "report figure")
            cached_training_curve(entries, f"{job['pipeline']}.{job['meta_name']}: {model}", curve, cache, used)
            written.append(curve.name)
    write_text_atomic(figures / MANIFEST, "".join(f"{name}\n" for name in written))
    for stale in set(cache.glob("*.png")) - used:  # curves of jobs no longer in the plan, by the name cached gives
        if CACHED_NAME.fullmatch(stale.name):
            stale.unlink()
    rows = metric_rows(spec)
    os.makedirs(os.path.dirname(metrics_path), exist_ok=True)
    write_text_atomic(metrics_path, csv_text([["iteration", "trial", "pipeline", "job", "metric", "value"], *rows]))
    write_plot_data(plots, curves, [[plotted_metric(row, several_iterations), row[-1]] for row in rows])
