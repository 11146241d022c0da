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
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from sandflow.core import layout
from sandflow.core.atomic import write_text_atomic
from sandflow.core.layout import CONTEXT_FILE
from sandflow.core.private_fs import copy_replacing, ensure_within, resolves_within
from sandflow.report.tracking import TRAIN_LOG, scalars, training_curves

EVALUATION_HOOKS = ("EvaluateDataHook", "EvaluateModelHook")
FIGURE_CACHE = ".figure-cache"
CACHED_NAME = re.compile(r"[0-9a-f]{24}\.png")
MANIFEST = ".sandflow-figures"  # in figures/: the names the last build wrote, the only ones it ever removes


def figure_prefix(job: dict[str, Any], several_iterations: bool) -> str:
    trial = f"trial_{job['trial']}." if job.get("trial") else ""
    iteration = f"iter_{job['iteration']}." if several_iterations else ""
    return f"{trial}{iteration}{job['pipeline']}.{job['readable_name']}"


def plot_training_curve(entries: list[dict[str, Any]], title: str, path: Path) -> None:
    from matplotlib.figure import Figure

    from sandflow.report.pool_plots import save_png

    points = [(e["step"], e["loss"]) for e in entries if isinstance(e.get("loss"), (int, float))]
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
        fd, drawing = tempfile.mkstemp(dir=cache, prefix=f".{digest}.", suffix=".png")  # never a planted name
        os.close(fd)
        plot_training_curve(entries, title, Path(drawing))
        os.replace(drawing, cached)  # a run killed while drawing leaves no half-written cache entry
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


def remove_own_figures(figures: Path) -> None:
    """The figures an earlier build wrote, as its manifest names them; nothing else in the directory."""
    manifest = figures / MANIFEST
    if manifest.is_symlink() or not manifest.is_file():
        return
    for name in manifest.read_text().splitlines():
        if name and os.sep not in name and name not in (".", ".."):
            with contextlib.suppress(FileNotFoundError):
                (figures / name).unlink()  # a symlink itself, never what it points to


def build(spec: dict[str, Any], figures_dir: str, metrics_path: str) -> None:
    figures, work_dir = Path(figures_dir), spec["work_dir"]
    cache = figures.parent / FIGURE_CACHE
    for path in (figures / MANIFEST, cache / "x", metrics_path):  # a symlinked report/ would lead out of work_dir
        ensure_within(path, work_dir, "report file")
    remove_own_figures(figures)  # no figure of an older plan stays (Snakemake empties it first anyway)
    figures.mkdir(parents=True, exist_ok=True)
    cache.mkdir(exist_ok=True)
    written: list[str] = []
    several_iterations = len({job["iteration"] for job in spec["jobs"]}) > 1
    used: set[Path] = set()
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
            if not any(isinstance(entry.get("loss"), (int, float)) for entry in entries):
                continue  # a log without a loss (Trinity-RFT's records) is in wandb, not plotted here
            model = name.split("/", 1)[1]
            curve = figures / f"{prefix}.{model}.{TRAIN_LOG.removesuffix('.json')}.png"
            ensure_within(curve, figures, "report figure")
            cached_training_curve(entries, f"{job['pipeline']}.{job['meta_name']}: {model}", curve, cache, used)
            written.append(curve.name)
    write_text_atomic(figures / MANIFEST, "".join(f"{name}\n" for name in written))
    for stale in set(cache.glob("*.png")) - used:  # curves of jobs no longer in the plan, by the name cached gives
        if CACHED_NAME.fullmatch(stale.name):
            stale.unlink()
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["iteration", "trial", "pipeline", "job", "metric", "value"])
    writer.writerows(metric_rows(spec))
    os.makedirs(os.path.dirname(metrics_path), exist_ok=True)
    write_text_atomic(metrics_path, table.getvalue())
