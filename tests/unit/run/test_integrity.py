"""Edits that hide from timestamps are still found: in a finished job directory (its manifest) and in the
hash cache of the files jobs read.

Job directories here are written by sandflow's own runner (a real data-pool job), then tampered with.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from sandflow.config.load import load_config_file
from sandflow.core import filehash
from sandflow.core.filehash import FileHashCache
from sandflow.core.layout import CONTEXT_FILE, MANIFEST_FILE
from sandflow.plan.planner import plan_config
from sandflow.run.integrity import altered_artifact, first_altered
from sandflow.run.runner import run_job
from sandflow.run.specs import job_spec

ROWS = "".join(json.dumps({"text": f"row {i}"}) + "\n" for i in range(6))


@pytest.fixture
def job_dir(tmp_path: Path, monkeypatch) -> Path:
    """A finished DataPoolManipulationHook merge job, as the runner leaves it (artifacts, manifest, records)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.jsonl").write_text(ROWS)
    merge = {"type": "data_pool_merging", "dataset_path": ["a.jsonl"], "export_path": "merged/"}
    config = {
        "work_dir": "./out",
        "execution_job_configs": [{"hook": "DataPoolManipulationHook", "extra_configs": merge}],
    }
    (tmp_path / "sandbox.yaml").write_text(yaml.safe_dump(config))
    (job,) = plan_config(load_config_file("sandbox.yaml")).jobs
    run_job(json.loads(json.dumps(job_spec(job))), "job.log")
    final = (tmp_path / job.job_dir).resolve()
    assert altered_artifact(final) is None
    return final


def an_artifact(job_dir: Path) -> Path:
    names = json.loads((job_dir / MANIFEST_FILE).read_text())
    assert names, "the job wrote no artifact"
    return job_dir / sorted(names)[0]


def test_an_edit_that_puts_the_old_mtime_back_is_found(job_dir: Path):
    artifact = an_artifact(job_dir)
    before = artifact.stat()
    time.sleep(0.01)  # the edit happens after the job (any clock tick; the mtime is set back below)
    artifact.write_bytes(artifact.read_bytes().replace(b"row", b"ROW", 1))
    os.utime(artifact, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert artifact.stat().st_mtime_ns < (job_dir / CONTEXT_FILE).stat().st_mtime_ns
    problem = altered_artifact(job_dir)
    assert (
        problem == f"{artifact} was changed after its job finished (its sha256 differs from {job_dir / MANIFEST_FILE})"
    )
    # Also through the work_dir's hash cache, which run/workflow.py passes.
    assert altered_artifact(job_dir, hashes=FileHashCache(job_dir.parent / "cache.json")) == problem


def test_an_edit_in_the_same_tick_as_the_record_is_found(job_dir: Path):
    """An artifact whose mtime equals context.json's (same clock tick) is hashed, not trusted."""
    artifact, record = an_artifact(job_dir), job_dir / CONTEXT_FILE
    artifact.write_bytes(artifact.read_bytes() + b"\n")
    finished = record.stat().st_mtime_ns
    os.utime(artifact, ns=(finished, finished))
    assert "was changed after its job finished" in altered_artifact(job_dir)


def test_a_file_added_to_a_job_directory_is_reported(job_dir: Path):
    added = an_artifact(job_dir).parent / "extra.jsonl"
    added.write_text(ROWS)
    problem = first_altered([job_dir], "out/context_infos.json")
    assert problem == (
        f"{added} was added after its job finished (it is not in {job_dir / MANIFEST_FILE}); "
        f"delete {job_dir} and out/context_infos.json to rebuild it"
    )
    added.unlink()
    assert first_altered([job_dir], "out/context_infos.json") is None


def test_the_hash_cache_sees_an_edit_that_keeps_size_and_mtime(tmp_path: Path):
    data = tmp_path / "data.jsonl"
    data.write_text("a" * 100)
    cache = FileHashCache(tmp_path / "cache.json")
    first = cache.file(str(data))
    before = data.stat()
    data.write_text("b" * 100)  # same size
    os.utime(data, ns=(before.st_atime_ns, before.st_mtime_ns))  # same mtime
    assert data.stat().st_size == before.st_size and data.stat().st_mtime_ns == before.st_mtime_ns
    second = cache.file(str(data))
    assert second != first
    cache.save()
    assert FileHashCache(tmp_path / "cache.json").file(str(data)) == second


def test_the_hash_cache_trusts_only_a_file_untouched_since_well_before_its_hash(tmp_path: Path, monkeypatch):
    data = tmp_path / "data.jsonl"
    data.write_text("a" * 100)
    cache = FileHashCache(tmp_path / "cache.json")
    hashed: list[str] = []
    monkeypatch.setattr(filehash, "sha256_file", lambda path: hashed.append(path) or "digest")
    cache.file(str(data))
    cache.file(str(data))  # written just before its hash: it could change again in the same tick, unseen
    assert len(hashed) == 2
    later = time.time_ns() + filehash.TIMESTAMP_SLACK_NS + 10**9
    monkeypatch.setattr(filehash, "time", SimpleNamespace(time_ns=lambda: later))
    cache.file(str(data))  # hashed once more, now well after its last write...
    cache.file(str(data))  # ...so trusted from then on
    assert len(hashed) == 3


def test_job_directories_never_started_are_not_looked_into(job_dir: Path, monkeypatch):
    """Before a run most planned job directories do not exist: one listing of their hook's directory, not a stat of
    each; an altered one among them is still found."""
    absent = [job_dir.parent / f"{n:016x}" for n in range(50)]
    absent += [job_dir.parent.parent / "NoSuchHook" / f"{n:016x}" for n in range(50)]
    looked_into: list[str] = []
    real_lstat = os.lstat

    def counted_lstat(path, *args, **kwargs):
        looked_into.append(str(path))
        return real_lstat(path, *args, **kwargs)

    monkeypatch.setattr(os, "lstat", counted_lstat)
    assert first_altered([*absent, job_dir], "out/context_infos.json") is None
    assert looked_into and all(path.startswith(str(job_dir)) for path in looked_into), looked_into[:3]
    an_artifact(job_dir).unlink()
    assert "was deleted after its job finished" in first_altered([*absent, job_dir], "out/context_infos.json")
