"""A probe whose files an earlier probe of the work_dir wrote (hooks/dj_probe_reuse.py): a threshold changed in its
recipe copies them, the same bytes Data-Juicer writes with the caches empty or off; anything that changes a stat, an
op the key cannot pin, or a store entry that is not intact runs the probe.

Hooks run in-process on real py-data-juicer (offline) as jobs of a work_dir.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from sandflow.core.layout import stats_cache_dir
from sandflow.core.private_fs import UnsafePath
from sandflow.hooks import dj_probe_reuse
from sandflow.hooks.dj_figure_store import PROBES_SUBDIR
from sandflow.hooks.dj_probe_reuse import without_thresholds

from helpers.dj_jobs import DjJob, process_recipe, run_dj_job
from helpers.env import OFFLINE_ENV, environ, fresh_python
from helpers.paths import REPO

pytestmark = pytest.mark.slow

PROBE = "ProbeViaAnalyzerHook"
DEMO_OPS = yaml.safe_load((REPO / "configs/demo/process.yaml").read_text())["process"]
REUSED = "probe reuse: 15 file(s) of an earlier probe"
# The stats, the summary k-sigma reads, two tables, a histogram and a box plot of five stats, the correlation.
FILES = 15


@pytest.fixture(scope="module")
def offline_env():
    with environ(OFFLINE_ENV):
        yield


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "data.jsonl"
    path.write_text("".join((REPO / "configs/data/demo/demo-dataset.jsonl").read_text().splitlines(True)[:80]))
    return path


def with_args(ops: list[dict], op: str, **args: object) -> list[dict]:
    changed = copy.deepcopy(ops)
    for entry in changed:
        if op in entry:
            entry[op] = {**(entry[op] or {}), **args}
    return changed


def job_files(job: DjJob) -> dict[str, bytes]:
    """Every file the probe left in its job directory, by path in it."""
    return {
        path.relative_to(job.job_dir).as_posix(): path.read_bytes()
        for path in sorted(job.job_dir.rglob("*"))
        if path.is_file()
    }


def test_a_threshold_change_copies_the_files_data_juicer_writes(tmp_path, offline_env, data):
    work = tmp_path / "work"
    first = run_dj_job(work, PROBE, "first", process_recipe(data, DEMO_OPS))
    assert "probe reuse: stored 15 file(s)" in first.log and REUSED not in first.log
    assert len(job_files(first)) == FILES

    # in a process of its own, as a job runs (the first probe's analysis changed this process's matplotlib settings)
    threshold = process_recipe(data, with_args(DEMO_OPS, "text_length_filter", max_len=90000, min_len=3))
    fresh = fresh_python(
        f"""
        import sys
        from pathlib import Path
        sys.path.insert(0, {str(REPO / "tests")!r})
        from helpers.dj_jobs import run_dj_job
        job = run_dj_job(Path({str(work)!r}), {PROBE!r}, "threshold", {threshold!r})
        print(job.job_dir, job.result, sep="\\n")
        """,
        timeout=300,
    )
    job_dir, result = fresh.splitlines()[-2:]
    again = DjJob(Path(result), Path(job_dir), (work / f"{PROBE}-threshold.log").read_text())
    assert REUSED in again.log and "stats cache" not in again.log  # Data-Juicer did not run
    empty = run_dj_job(tmp_path / "empty", PROBE, "threshold", threshold)
    off = run_dj_job(tmp_path / "off", PROBE, "threshold", threshold, cache=False)
    assert REUSED not in empty.log + off.log
    assert job_files(again) == job_files(empty) == job_files(off) == job_files(first)
    assert again.result.relative_to(again.job_dir) == off.result.relative_to(off.job_dir)


@pytest.mark.parametrize(
    "ops",
    [
        with_args(DEMO_OPS, "character_repetition_filter", rep_len=12),  # a stat argument
        [{"clean_email_mapper": None}, *DEMO_OPS],  # not a covered filter
    ],
    ids=["rep_len", "uncovered-op"],
)
def test_a_change_a_key_must_see_runs_the_probe(tmp_path, offline_env, data, ops):
    work = tmp_path / "work"
    run_dj_job(work, PROBE, "first", process_recipe(data, DEMO_OPS))
    changed = run_dj_job(work, PROBE, "changed", process_recipe(data, ops))
    assert REUSED not in changed.log
    assert "stats cache:" in changed.log


def test_only_covered_filters_without_a_model_lose_their_thresholds():
    assert without_thresholds("text_length_filter", {"min_len": 1, "max_len": 9, "reversed_range": True}) == {}
    assert without_thresholds("character_repetition_filter", {"rep_len": 10, "max_ratio": 0.5}) == {"rep_len": 10}
    assert without_thresholds("words_num_filter", {"tokenization": True, "min_num": 1}) is None  # reads a tokenizer
    assert without_thresholds("words_num_filter", {"tokenization": False, "min_num": 1}) == {"tokenization": False}
    assert without_thresholds("stopwords_filter", {"min_ratio": 0.1}) is None


def test_a_store_entry_that_is_not_intact_runs_the_probe(tmp_path, offline_env, data):
    work = tmp_path / "work"
    first = run_dj_job(work, PROBE, "first", process_recipe(data, DEMO_OPS))
    probes = Path(stats_cache_dir(str(work))) / PROBES_SUBDIR
    (listing,) = probes.glob("*/*.listing")
    stored = json.loads(listing.read_text())
    stats_path = next(path for path in stored["files"] if path.endswith("_stats.jsonl"))
    (blob,) = [
        path
        for path in probes.glob("*/*")
        if path.suffix == "" and json.loads((path.parent / "key.json").read_text()).get("path") == stats_path
    ]
    blob.write_bytes(b"{}\n")  # a torn or edited copy: its name is no longer the sha256 of its bytes

    threshold = process_recipe(data, with_args(DEMO_OPS, "text_length_filter", max_len=90000))
    again = run_dj_job(work, PROBE, "threshold", threshold)
    assert REUSED not in again.log and "stats cache:" in again.log
    assert f"probe reuse: skipped {blob.parent.name}/{blob.name} (its name is not the sha256 of its bytes)" in again.log
    assert (
        f"probe reuse: the probe stored under key {listing.parent.name} is not whole ({stats_path} is missing or altered)"
        in again.log
    )
    assert job_files(again) == job_files(first)


def test_a_probe_over_the_size_cap_is_not_stored(tmp_path, offline_env, data, monkeypatch):
    monkeypatch.setattr(dj_probe_reuse, "STORE_CAP_BYTES", 1000)
    work = tmp_path / "work"
    first = run_dj_job(work, PROBE, "first", process_recipe(data, DEMO_OPS))
    assert "probe reuse: not stored (0 MB of files, over 0 MB)" in first.log
    threshold = process_recipe(data, with_args(DEMO_OPS, "text_length_filter", max_len=90000))
    again = run_dj_job(work, PROBE, "threshold", threshold)
    assert REUSED not in again.log and "stats cache:" in again.log
    assert not (Path(stats_cache_dir(str(work))) / PROBES_SUBDIR).exists()


def test_a_probe_store_leading_out_of_the_work_dir_is_refused(tmp_path, offline_env, data):
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    (work / "stats-cache").mkdir(parents=True)
    elsewhere.mkdir()
    (work / "stats-cache" / PROBES_SUBDIR).symlink_to(elsewhere)  # planted before the run
    with pytest.raises(UnsafePath, match="the probe store .* would be written outside"):
        run_dj_job(work, PROBE, "first", process_recipe(data, DEMO_OPS))
    assert list(elsewhere.iterdir()) == []
