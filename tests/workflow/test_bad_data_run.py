"""A dataset line a job cannot read fails that job at run time with one line naming the file and the line
('data.jsonl:3: not JSON ...'), no traceback, and the job directory is never committed. A library's own error is
one line too: its type and message, and those of the error at its root."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from sandflow.core.jobio import error_line
from sandflow.core.jsonl import BadData, first_bad_row, read_objects
from sandflow.hooks.hf.models import read_texts

from helpers.snakemake import snakemake

LOGGER = "--logger=sandflow"

GOOD_LINE = json.dumps({"text": "a good sample"})
# The bytes of a dataset whose third line is bad, and the problem its failure line names.
BAD_THIRD_LINES = {
    "not_json": (b"{not json}\n", "not JSON (Expecting property name enclosed in double quotes at column 2)"),
    "not_an_object": (b"[1, 2]\n", "not a JSON object (extra_configs.dataset_path)"),
    "not_utf8": (b'{"text": "caf\xe9"}\n', "not UTF-8 text"),
}


def dataset(root: Path, third_line: bytes) -> Path:
    path = root / "data.jsonl"
    path.write_bytes(f"{GOOD_LINE}\n\n".encode() + third_line + f"{GOOD_LINE}\n".encode())
    return path


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(BAD_THIRD_LINES))
def test_a_bad_dataset_line_fails_the_job_naming_file_and_line_and_commits_nothing(case: str, tmp_path: Path):
    third_line, problem = BAD_THIRD_LINES[case]
    dataset(tmp_path, third_line)
    job = {
        "hook": "DataPoolManipulationHook",
        "meta_name": "duplicate",
        "extra_configs": {
            "type": "data_pool_duplication",
            "dataset_path": "data.jsonl",
            "duplicating_times": [2],
            "export_path": "./work/pools/",
        },
    }
    (tmp_path / "sandbox.yaml").write_text(yaml.safe_dump({"work_dir": "./work", "execution_job_configs": [job]}))
    result = snakemake(tmp_path, "sandbox.yaml", "--cores", "1", check=False)
    assert result.returncode != 0
    ours = [line for line in result.stderr.splitlines() if line.startswith("sandflow:")]
    assert ours == [f"sandflow: job failed: data.jsonl:3: {problem}"], result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    jobs = tmp_path / "work" / "jobs" / "DataPoolManipulationHook"
    assert not jobs.exists() or [p.name for p in jobs.iterdir()] == [], "a failed job left a directory"
    # A failed run's record (issue 26.4): no job finished, and the one that failed is marked so.
    assert json.loads((tmp_path / "work" / "context_infos.json").read_text()) == [
        {
            "iter": 1,
            "pipeline_infos": [
                {
                    "pipeline_name": "anonymous",
                    "job_infos": [],
                    "unfinished_jobs": [{"meta_name": "duplicate", "state": "failed"}],
                }
            ],
        }
    ]


def test_a_row_without_the_text_key_is_named_by_file_and_line(tmp_path: Path):
    path = dataset(tmp_path, json.dumps({"content": "no text here"}).encode() + b"\n")
    with pytest.raises(BadData) as failure:
        read_texts([path], "text")
    assert str(failure.value) == f"{path}:3: has no string field 'text' (extra_configs.text_key)"


def test_a_row_that_is_not_an_object_is_named_by_file_and_line(tmp_path: Path):
    path = dataset(tmp_path, b'"just a string"\n')
    with pytest.raises(BadData) as failure:
        read_objects(path)
    assert str(failure.value) == f"{path}:3: not a JSON object"


def test_a_line_that_is_not_json_is_named_by_file_and_line_for_model_training(tmp_path: Path):
    path = dataset(tmp_path, b"{not json}\n")
    with pytest.raises(BadData) as failure:
        read_texts([path], "text")
    assert str(failure.value).startswith(f"{path}:3: not JSON (")


@pytest.mark.parametrize("case", sorted(BAD_THIRD_LINES))
def test_the_line_at_a_time_check_names_the_line_read_objects_names(case: str, tmp_path: Path):
    path = dataset(tmp_path, BAD_THIRD_LINES[case][0])
    with pytest.raises(BadData) as failure:
        read_objects(path)
    bad = first_bad_row(path)
    assert bad is not None and str(bad) == str(failure.value)
    assert first_bad_row(dataset(tmp_path, f"{GOOD_LINE}\n".encode())) is None


def data_juicer_job(meta_name: str, dataset_path: str) -> dict:
    """A ProcessDataHook job whose op (a mapper) has Data-Juicer load the dataset itself."""
    return {
        "hook": "ProcessDataHook",
        "meta_name": meta_name,
        "dj_configs": {
            "project_name": meta_name,
            "dataset_path": dataset_path,
            "export_path": f"./work/{meta_name}/data.jsonl",
            "process": [{"whitespace_normalization_mapper": {}}],
        },
    }


@pytest.mark.slow
def test_data_juicers_load_errors_are_one_line_on_the_terminal(tmp_path: Path):
    dataset(tmp_path, b"{not json}\n")
    (tmp_path / "array.json").write_text('[{"text": "a"}, {not json}]\n')
    jobs = [data_juicer_job("lines", "data.jsonl"), data_juicer_job("array", "array.json")]
    (tmp_path / "sandbox.yaml").write_text(yaml.safe_dump({"work_dir": "./work", "execution_job_configs": jobs}))
    result = snakemake(tmp_path, "sandbox.yaml", "--cores", "1", "--keep-going", LOGGER, check=False)
    assert result.returncode != 0
    ours = sorted(line for line in result.stderr.splitlines() if line.startswith("sandflow: job failed"))
    assert len(ours) == 2, result.stderr[-3000:]
    # Arrow says 'in row 1' of a block; the file is read again and its bad line named.
    assert ours[1] == f"sandflow: job failed: data.jsonl:3: {BAD_THIRD_LINES['not_json'][1]}"
    assert re.fullmatch(
        r"sandflow: job failed: DatasetGenerationError: .+, from \w+: .+ \(traceback in the job's log\)", ours[0]
    ), ours[0]
    assert "Traceback" not in result.stderr
    assert "dispatch_shortcuts" not in result.stderr  # sandflow's hand-off to the job server is not a place to look
    logs = {path.read_text() for path in (tmp_path / "work" / "logs" / "ProcessDataHook").glob("*.log")}
    assert len(logs) == 2 and all("Traceback (most recent call last)" in log for log in logs)
    assert not list((tmp_path / "work" / "jobs").glob("ProcessDataHook/*"))


class WrappedError(RuntimeError):
    pass


def test_an_error_line_is_the_first_line_of_the_error_and_of_its_root_cause():
    try:
        try:
            raise ValueError("bad byte at 17\nmore detail")
        except ValueError as root:
            raise WrappedError("could not load") from root
    except WrappedError as exc:
        assert error_line(exc) == "WrappedError: could not load, from ValueError: bad byte at 17"
    assert error_line(KeyError()) == "KeyError"
    assert error_line(ValueError("x" * 1000)) == f"ValueError: {'x' * 297}..."  # a library's message holding a row
    try:
        try:
            raise KeyError("x")
        except KeyError:
            raise ValueError("unrelated to the key")  # noqa: B904 (an implicit context is not a cause)
    except ValueError as exc:
        assert error_line(exc) == "ValueError: unrelated to the key"
    looped = WrappedError("one")
    looped.__cause__ = WrappedError("two")
    looped.__cause__.__cause__ = looped
    assert error_line(looped) == "WrappedError: one, from WrappedError: two"
