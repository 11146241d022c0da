"""The report's figures and metrics table, built from job records (src/sandflow/report/figures.py)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from sandflow.core.jobio import JobFailed
from sandflow.report import figures as report_figures

from helpers.training_record import training_job


def test_a_training_curve_is_drawn_once_and_redrawn_when_its_log_differs(tmp_path: Path):
    figures, metrics = tmp_path / "report" / "figures", tmp_path / "report" / "metrics.csv"
    spec = {"work_dir": str(tmp_path), "jobs": [training_job(tmp_path, [4.0, 3.0, 2.5])]}
    report_figures.build(spec, str(figures), str(metrics))
    (curve,) = figures.glob("*.png")
    assert curve.name == "p.train.extra_configs.export_path.train_log.png"
    (cached,) = (tmp_path / "report" / report_figures.FIGURE_CACHE).glob("*.png")
    assert cached.read_bytes() == curve.read_bytes() and cached.read_bytes().startswith(b"\x89PNG")
    drawn_at = cached.stat().st_mtime_ns

    report_figures.build(spec, str(figures), str(metrics))  # another run, same job: the cached drawing
    assert cached.stat().st_mtime_ns == drawn_at and (figures / curve.name).read_bytes() == cached.read_bytes()

    spec = {
        "work_dir": str(tmp_path),
        "jobs": [training_job(tmp_path, [4.0, 2.0])],
    }  # the job's log differs: a new drawing
    report_figures.build(spec, str(figures), str(metrics))
    (redrawn,) = (tmp_path / "report" / report_figures.FIGURE_CACHE).glob("*.png")
    assert redrawn != cached and not cached.exists()  # the old one is not kept
    assert (figures / curve.name).read_bytes() == redrawn.read_bytes()
    assert metrics.read_text() == "iteration,trial,pipeline,job,metric,value\n"


def test_a_training_log_that_is_not_a_list_of_objects_is_one_line_naming_it(tmp_path: Path):
    figures, metrics = tmp_path / "report" / "figures", tmp_path / "report" / "metrics.csv"
    job = training_job(tmp_path, [1.0])
    log = Path(job["job_dir"]) / "extra_configs.export_path" / "train_log.json"
    for text, failure_line in [
        ('{"loss": 1.0}', f"{log}: not a list of objects, one per logged step"),
        ('[{"loss": 1.0}, 2]', f"{log}: not a list of objects, one per logged step"),
        ('[{"loss": 1.0},\n oops]', f"{log}:2: not JSON (Expecting value at column 2)"),
    ]:
        log.write_text(text)
        with pytest.raises(JobFailed) as failure:
            report_figures.build({"work_dir": str(tmp_path), "jobs": [job]}, str(figures), str(metrics))
        assert str(failure.value) == failure_line


def test_a_rebuild_removes_what_a_build_killed_mid_write_left_and_nothing_else(tmp_path: Path):
    figures, metrics = tmp_path / "report" / "figures", tmp_path / "report" / "metrics.csv"
    spec = {"work_dir": str(tmp_path), "jobs": [training_job(tmp_path, [4.0, 3.0])]}
    report_figures.build(spec, str(figures), str(metrics))
    report, plots, cache = tmp_path / "report", tmp_path / "report" / "plots", tmp_path / "report" / ".figure-cache"
    # The temp files of writes killed before their rename, named as core/atomic.replacing names them (seen in CI:
    # plots/..sandflow-plots.<random>.tmp after a kill during the assembly).
    left = [
        tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=suffix)
        for directory, name, suffix in [
            (plots, report_figures.PLOTS_MANIFEST, ".tmp"),
            (plots / "train_loss", "p.train.csv", ".tmp"),
            (report, "metrics.csv", ".tmp"),
            (cache, "0123456789abcdef01234567.png", ".png"),
        ]
    ]
    for handle, _ in left:
        os.close(handle)
    users = [report / ".notes.tmp", plots / "draft.tmp"]  # not named as those temps are: not the build's
    for path in users:
        path.write_text("mine")
    report_figures.build(spec, str(figures), str(metrics))
    assert [path for _, path in left if os.path.lexists(path)] == []
    assert all(path.read_text() == "mine" for path in users)
