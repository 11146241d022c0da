"""What a run writes and removes in and around its work_dir: logs private from their first byte, a report that
removes only the figures sandflow wrote, and publishing and figure collection that never follow a symlink out.

The assembly (src/sandflow/run/context.py assemble) and the report (src/sandflow/report/figures.py build) run
here on a finished job's directory written by hand, as the context_infos rule runs them; the run that must not
empty a user's directory is a real snakemake run.
"""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path

import pytest

from sandflow.core.jobio import job_logging
from sandflow.core.private_fs import UnsafePath
from sandflow.report import figures as report_figures
from sandflow.run.context import assemble

from helpers.pool_config import write_pool_config
from helpers.snakemake import snakemake

PNG = b"\x89PNG\r\n\x1a\n fake"


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def finished_job(work: Path, slot_files: dict[str, bytes | Path], export: Path) -> dict:
    """A finished job with one directory write (its slot mirrored to export); a Path value is a symlink."""
    job_dir = work / "jobs" / "Hook" / "k"
    slot = job_dir / "extra_configs.export_path"
    slot.mkdir(parents=True)
    for name, content in slot_files.items():
        if isinstance(content, Path):
            (slot / name).symlink_to(content)
        else:
            (slot / name).write_bytes(content)
    write = {"slot": "extra_configs.export_path", "value": str(export), "kind": "dir", "iterized": False}
    (job_dir / "context.json").write_text(json.dumps({"values": [str(slot)], "writes": [write]}))
    job = {"key": "k", "job_dir": str(job_dir), "writes": None, "output_names": None, "meta_name": "m"}
    return job | {"hook": "Hook", "pipeline": "p", "iteration": 1, "readable_name": "m", "trial": None}


def test_a_job_log_is_private_from_its_first_byte_also_over_an_older_log(tmp_path: Path):
    fresh, older = tmp_path / "logs" / "fresh.log", tmp_path / "logs" / "older.log"
    older.parent.mkdir()
    older.write_text("an earlier run's log\n")
    older.chmod(0o644)
    for log in (fresh, older):
        with job_logging(str(log)):
            assert mode_of(log) == 0o600  # before anything is logged
            logging.getLogger("sandflow.job").info("api settings")
        assert mode_of(log) == 0o600 and "api settings" in log.read_text()


# ---- publishing ------------------------------------------------------------------------------------------------


def test_an_artifact_that_is_a_symlink_out_of_its_job_is_not_published(tmp_path: Path):
    secret = tmp_path / "home" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("ssh key\n")
    work, export = tmp_path / "work", tmp_path / "work" / "exported"
    job = finished_job(work, {"data.jsonl": b"{}\n", "leak.jsonl": secret}, export)
    with pytest.raises(UnsafePath, match="leak.jsonl is a symlink out of its job's directory; it is not published"):
        assemble({"work_dir": str(work), "jobs": [job]})
    assert not (export / "leak.jsonl").exists()


def test_publishing_into_work_dir_is_not_written_through_a_planted_symlinked_directory(tmp_path: Path):
    work, outside = tmp_path / "work", tmp_path / "outside"
    outside.mkdir()
    job = finished_job(work, {"data.jsonl": b"{}\n"}, work / "exports" / "pool")
    (work / "exports").symlink_to(outside)  # export_path is in work_dir, the way to it leads out
    with pytest.raises(UnsafePath, match="published file .* would be written outside"):
        assemble({"work_dir": str(work), "jobs": [job]})
    assert list(outside.iterdir()) == []


def test_publishing_in_work_dir_removes_the_temp_files_a_killed_assembly_left_beside_what_it_publishes(
    tmp_path: Path,
):
    # copy_replacing's temp names (.<name>.<8 random characters>), as a kill between copy and rename leaves them.
    left, users = ".data.jsonl.k3x_9q2a", [".data.jsonl.notes", ".other.jsonl.k3x_9q2a", "data.jsonl~"]
    for work, export in [(tmp_path / "a", tmp_path / "a" / "exported"), (tmp_path / "b", tmp_path / "shared")]:
        job = finished_job(work, {"data.jsonl": b"{}\n"}, export)
        export.mkdir(parents=True)
        for name in [left, *users]:
            (export / name).write_text("left")
        assemble({"work_dir": str(work), "jobs": [job]})
        assert (export / "data.jsonl").read_bytes() == b"{}\n"
        # In work_dir the run's lock is held: that temp is a dead writer's. Outside it, another run's may be live.
        assert (export / left).exists() == (export == tmp_path / "shared")
        assert all((export / name).read_text() == "left" for name in users)


# ---- the report's figures --------------------------------------------------------------------------------------


def figure_spec(tmp_path: Path, pngs: dict[str, bytes | Path]) -> tuple[dict, Path]:
    work = tmp_path / "work"
    job = finished_job(work, pngs, work / "exported")
    return {"work_dir": str(work), "jobs": [job]}, work


def test_a_rebuild_removes_the_figures_sandflow_wrote_and_nothing_else(tmp_path: Path):
    spec, work = figure_spec(tmp_path, {"old.png": PNG})
    figures, metrics = work / "report" / "figures", work / "report" / "metrics.csv"
    report_figures.build(spec, str(figures), str(metrics))
    assert sorted(p.name for p in figures.iterdir()) == [".sandflow-figures", "p.m.extra_configs.export_path.old.png"]
    (figures / "mine.txt").write_text("a note of the user's\n")
    slot = Path(spec["jobs"][0]["job_dir"]) / "extra_configs.export_path"
    (slot / "old.png").rename(slot / "new.png")  # the job now draws another figure
    report_figures.build(spec, str(figures), str(metrics))
    assert sorted(p.name for p in figures.iterdir()) == [
        ".sandflow-figures",
        "mine.txt",
        "p.m.extra_configs.export_path.new.png",
    ]


def test_figures_are_not_collected_through_or_written_through_a_symlink_out_of_work_dir(tmp_path: Path):
    secret, outside = tmp_path / "home" / "private.png", tmp_path / "outside"
    secret.parent.mkdir()
    secret.write_bytes(b"\x89PNG private")
    outside.mkdir()
    spec, work = figure_spec(tmp_path, {"drawn.png": PNG, "linked.png": secret})
    figures, metrics = work / "report" / "figures", work / "report" / "metrics.csv"
    report_figures.build(spec, str(figures), str(metrics))
    assert sorted(p.name for p in figures.glob("*.png")) == ["p.m.extra_configs.export_path.drawn.png"]
    (figures.parent / report_figures.FIGURE_CACHE).rename(tmp_path / "cache")
    (figures.parent / report_figures.FIGURE_CACHE).symlink_to(outside)  # a planted cache leading out
    with pytest.raises(UnsafePath, match="report file .* would be written outside"):
        report_figures.build(spec, str(figures), str(metrics))
    assert list(outside.iterdir()) == []


@pytest.mark.slow
def test_a_run_never_empties_a_report_directory_sandflow_did_not_write(tmp_path: Path):
    config = write_pool_config(tmp_path, 10)
    own = tmp_path / "out" / "report" / "figures" / "my-plot.png"  # work_dir points at an existing directory
    own.parent.mkdir(parents=True)
    own.write_bytes(PNG)
    result = snakemake(tmp_path, config, check=False)
    assert result.returncode == 2, result.stderr[-3000:]
    ours = [line for line in result.stderr.splitlines() if line.startswith("sandflow:")]
    assert len(ours) == 1 and ours[0].startswith("sandflow: error: out/report/figures exists and sandflow did not")
    assert own.read_bytes() == PNG and not (tmp_path / "out" / "jobs").exists()
    own.unlink()
    own.parent.rmdir()
    snakemake(tmp_path, config)
    snakemake(tmp_path, config, "--forcerun", "context_infos")  # sandflow's own directory is rebuilt
    assert (own.parent / report_figures.MANIFEST).is_file()


def test_an_older_sandflows_report_is_its_own_and_a_users_directory_is_not(tmp_path: Path):
    work = tmp_path / "w"
    figures = work / "report" / "figures"
    figures.mkdir(parents=True)
    assert "exists and sandflow did not write it" in report_figures.foreign_figures(str(figures), str(work))
    (work / ".sandflow" / "planned").mkdir(parents=True)  # an earlier run planned jobs here: no manifest yet
    assert report_figures.foreign_figures(str(figures), str(work)) is None
