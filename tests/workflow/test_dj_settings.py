"""The Data-Juicer settings a recipe gives are honoured, refused in one line, or noted, never overridden silently
(issue 26.5; docs/hooks.md, "What sandflow controls in a Data-Juicer recipe, and why").

Refusals at plan time are cases of tests/data/bad_configs (dj_*.yaml); here: the same refusals when a recipe
first exists at run time, the notes `sandflow check` prints, and Data-Juicer's tracer, whose files become
artifacts of the job.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import pytest
import yaml

from sandflow.cli import main
from sandflow.config.dj_settings import CACHE_COMPRESS, USE_CACHE

from helpers.env import OFFLINE_ENV, environ
from helpers.job_runs import file_logger, job_run
from helpers.processes import left_behind
from helpers.snakemake import snakemake

# 40 texts, every fourth one shorter than 40 characters: text_length_filter drops 10, in both halves.
TEXTS = [f"short {i}." if i % 4 == 0 else f"a sentence long enough to keep, number {i}." for i in range(40)]
DROPPED = {text for text in TEXTS if len(text) < 40}
TRACED_RECIPE = {
    "np": 2,
    "open_tracer": True,
    "trace_num": 3,
    "process": [{"text_length_filter": {"min_len": 40}}],
}
TRACE_FILE = "dj_work/trace/sample_trace-text_length_filter.jsonl"


def write_dataset(directory: Path) -> Path:
    path = directory / "data.jsonl"
    path.write_text("".join(json.dumps({"text": text}) + "\n" for text in TEXTS))
    return path


def process_config(directory: Path, **recipe: object) -> str:
    """A one-job config (ProcessDataHook) on write_dataset's data, with the given recipe settings."""
    write_dataset(directory)
    config = {
        "work_dir": "./work",
        "execution_job_configs": [
            {
                "hook": "ProcessDataHook",
                "meta_name": "process",
                "dj_configs": {"dataset_path": "data.jsonl", "export_path": "./out/processed.jsonl", **recipe},
            }
        ],
    }
    (directory / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return "config.yaml"


@pytest.mark.parametrize(
    "settings, notes",
    [
        (
            {"use_cache": True, "cache_compress": "gzip"},
            [f"use_cache: {USE_CACHE}", f"cache_compress: {CACHE_COMPRESS}"],
        ),
        ({"use_cache": True}, [f"use_cache: {USE_CACHE}"]),
        ({"use_cache": False, "skip_op_error": False, "export_shard_size": 0, "op_fusion": False}, []),
    ],
)
def test_check_notes_the_settings_that_change_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, settings: dict, notes: list
):
    config = process_config(tmp_path, process=[{"text_length_filter": {"min_len": 5}}], **settings)
    monkeypatch.chdir(tmp_path)
    assert main(["check", config]) == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note: ")]
    expected = "; ".join(f"execution_job_configs[0].dj_configs.{note}" for note in notes)
    assert printed == ([f"note: {expected}"] if notes else [])


@pytest.mark.parametrize(
    "settings, place",
    [
        ({"skip_op_error": True}, "skip_op_error: is the boolean true: an op that fails would drop"),
        (
            {"process": [{"text_length_filter": {"min_len": 40, "skip_op_error": True}}]},
            "process[0].text_length_filter.skip_op_error: is the boolean true",
        ),
        ({"export_shard_size": 1024}, "export_shard_size: is the number 1024: sandflow exports one file"),
        ({"op_fusion": True}, "op_fusion: is the boolean true: Data-Juicer's fusion reorders the filters"),
    ],
)
def test_a_recipe_that_first_exists_at_run_time_is_refused_the_same_way(tmp_path: Path, settings: dict, place: str):
    """A refined recipe or an iter_updater value reaches the hook unplanned: it refuses, before Data-Juicer runs,
    what the planner would have refused (the settings were overridden silently before)."""
    from sandflow.hooks.data_juicer import process_data

    job_dir = tmp_path / "job"
    job_dir.mkdir()
    recipe = {
        "dataset_path": str(write_dataset(tmp_path)),
        "export_path": str(job_dir / "export" / "processed.jsonl"),
        "process": [{"text_length_filter": {"min_len": 40}}],
        **settings,
    }
    job = job_run("ProcessDataHook", job_dir, dj_configs=recipe, log=file_logger("dj_settings", tmp_path / "job.log"))
    with environ(OFFLINE_ENV), pytest.raises(ValueError) as refused:
        process_data(job)
    assert str(refused.value).startswith(f"dj_configs.{place}")
    assert list(job_dir.iterdir()) == []


def trace_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


@pytest.mark.slow
def test_the_tracer_writes_into_the_job_and_its_files_are_in_the_manifest(tmp_path: Path):
    """open_tracer: true is honoured: Data-Juicer's trace of the samples text_length_filter dropped is in the job
    directory and its manifest; with np: 2 each worker traces up to trace_num samples of its half, and the
    lines are sorted, so a second run of the same recipe writes the same bytes. Nothing outlives the job forked
    from the job server: not the tracer's multiprocessing Manager (a process), nor a temporary file."""
    config = process_config(tmp_path, **TRACED_RECIPE)
    # A short TMPDIR (the job server's socket goes in it), set only while it exists: Hugging Face datasets makes a
    # missing TMPDIR again, which the in-process run below left behind.
    with tempfile.TemporaryDirectory() as temp_name, environ({"TMPDIR": temp_name}):
        temp = Path(temp_name)
        snakemake(tmp_path, config)
        assert left_behind(tmp_path) == []
        socket_dir = temp / f"sandflow-{os.getuid()}"  # the job server's (it ran the job), left empty when it stops
        assert list(temp.iterdir()) == [socket_dir] and list(socket_dir.iterdir()) == []
    (job_dir,) = (tmp_path / "work" / "jobs" / "ProcessDataHook").iterdir()
    trace = job_dir / TRACE_FILE
    lines = trace_lines(trace)
    texts = [json.loads(line)["text"] for line in lines]
    assert len(texts) == 2 * TRACED_RECIPE["trace_num"] and set(texts) <= DROPPED
    assert lines == sorted(lines)
    manifest = json.loads((job_dir / "manifest.json").read_text())
    assert manifest[TRACE_FILE]["sha256"] == hashlib.sha256(trace.read_bytes()).hexdigest()
    exported = (job_dir / "dj_configs.export_path" / "processed.jsonl").read_text()
    assert not any(json.loads(line)["text"] in texts for line in exported.splitlines())

    from sandflow.hooks.data_juicer import process_data

    again = tmp_path / "again"
    again.mkdir()
    recipe = {
        **TRACED_RECIPE,
        "dataset_path": str(tmp_path / "data.jsonl"),
        "export_path": str(again / "export" / "processed.jsonl"),
    }
    with environ(OFFLINE_ENV):
        process_data(job_run("ProcessDataHook", again, dj_configs=recipe, log=file_logger("again", tmp_path / "a.log")))
    assert (again / TRACE_FILE).read_bytes() == trace.read_bytes()
