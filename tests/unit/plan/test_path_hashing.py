"""Which config values a job key hashes as files: only values under keys meant as paths (dataset_path,
stopwords_dir, hf_model...), never the working directory or an ancestor of work_dir, and only regular files and
directories. Anything else is one line naming the place, exit 2, and planning never blocks on a FIFO."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sandflow.cli import main
from sandflow.config.load import load_config_file
from sandflow.plan.keys import key_view
from sandflow.plan.planner import plan_config

DATASET_PLACE = "execution_job_configs[0].dj_configs.dataset_path"


def write_config(root: Path, dataset: str, ops: list[dict] | None = None, name: str = "sandbox.yaml") -> str:
    recipe = {
        "dataset_path": dataset,
        "export_path": "./out/processed.jsonl",
        "process": ops or [{"text_length_filter": {"min_len": 1}}],
    }
    job = {"hook": "ProcessDataHook", "meta_name": "process", "dj_configs": recipe}
    (root / name).write_text(yaml.safe_dump({"work_dir": "./work", "execution_job_configs": [job]}))
    return name


def only_job_key(config: str) -> str:
    (job,) = plan_config(load_config_file(config)).jobs
    return job.key


def check_line(config: str, capsys: pytest.CaptureFixture) -> str:
    assert main(["check", config]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


def test_an_op_argument_that_names_the_working_directory_is_text_and_the_job_stays_cached(plan_dir: Path):
    """`repl: '.'` hashed the whole working directory, work_dir included: every finished job changed the key.
    A path argument of the same op (stopwords_dir) is still hashed."""
    (plan_dir / "words").mkdir()
    (plan_dir / "words" / "en.json").write_text('["a"]')
    ops = [{"clean_links_mapper": {"repl": "."}}, {"stopwords_filter": {"stopwords_dir": "words"}}]
    config = write_config(plan_dir, "data/in.jsonl", ops)
    before = only_job_key(config)
    (plan_dir / "work" / "jobs").mkdir(parents=True)
    (plan_dir / "work" / "jobs" / "finished.json").write_text("{}")
    assert only_job_key(config) == before

    plan = plan_config(load_config_file(config))
    view = key_view(plan.jobs[0], plan.hashes)
    assert view["dj_configs"]["process"][0]["clean_links_mapper"]["repl"] == "."
    assert "$file" in view["dj_configs"]["dataset_path"]
    assert "$file" in view["dj_configs"]["process"][1]["stopwords_filter"]["stopwords_dir"]
    (plan_dir / "words" / "en.json").write_text('["a", "the"]')
    assert only_job_key(config) != before


@pytest.mark.parametrize("dataset, holds", [(".", "the working directory"), ("..", "the working directory")])
def test_a_dataset_that_holds_the_working_directory_is_refused(
    dataset: str, holds: str, plan_dir: Path, capsys: pytest.CaptureFixture
):
    line = check_line(write_config(plan_dir, dataset), capsys)
    assert line == (
        f"sandflow: error: sandbox.yaml: {DATASET_PLACE}: {dataset!r} holds {holds}: "
        "name the files or the directory the job reads"
    )
    assert not (plan_dir / "work").exists()


def test_a_dataset_that_holds_work_dir_elsewhere_is_refused(plan_dir: Path, capsys: pytest.CaptureFixture):
    """Run from a directory of its own, with work_dir inside the dataset directory."""
    config_path = str(plan_dir / "data" / write_config(plan_dir / "data", str(plan_dir / "data")))
    raw = yaml.safe_load(Path(config_path).read_text())
    Path(config_path).write_text(yaml.safe_dump({**raw, "work_dir": str(plan_dir / "data" / "work")}))
    (plan_dir / "scratch").mkdir()
    os.chdir(plan_dir / "scratch")
    line = check_line(config_path, capsys)
    assert line.endswith(
        f"{DATASET_PLACE}: {str(plan_dir / 'data')!r} holds work_dir {plan_dir / 'data' / 'work'}: "
        "name the files or the directory the job reads"
    )


def run_check(root: Path, config: str) -> subprocess.CompletedProcess:
    """`sandflow check` in a process of its own, so that a blocking open fails the test instead of hanging it."""
    sandflow = Path(sys.executable).with_name("sandflow")
    return subprocess.run([str(sandflow), "check", config], cwd=root, capture_output=True, text=True, timeout=60)


def test_a_fifo_as_dataset_is_one_line_and_does_not_block(plan_dir: Path):
    os.mkfifo(plan_dir / "data" / "pipe.jsonl")
    result = run_check(plan_dir, write_config(plan_dir, "data/pipe.jsonl"))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        f"sandflow: error: sandbox.yaml: {DATASET_PLACE}: data/pipe.jsonl is a FIFO: "
        "only regular files and directories are read and hashed\n"
    )


def test_a_fifo_inside_a_dataset_directory_is_one_line_and_does_not_block(plan_dir: Path):
    os.mkfifo(plan_dir / "data" / "zz.jsonl")
    result = run_check(plan_dir, write_config(plan_dir, "data"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"sandflow: error: sandbox.yaml: {DATASET_PLACE}: ")
    assert "zz.jsonl is a FIFO" in result.stderr


def test_a_device_as_dataset_is_one_line(plan_dir: Path, capsys: pytest.CaptureFixture):
    line = check_line(write_config(plan_dir, "/dev/null"), capsys)
    assert line.endswith(
        f"{DATASET_PLACE}: /dev/null is a device: only regular files and directories are read and hashed"
    )


def test_a_dangling_link_inside_a_dataset_directory_is_one_line(plan_dir: Path, capsys: pytest.CaptureFixture):
    (plan_dir / "data" / "gone.jsonl").symlink_to(plan_dir / "nowhere.jsonl")
    line = check_line(write_config(plan_dir, "data"), capsys)
    assert line.endswith(f"{DATASET_PLACE}: cannot read {plan_dir / 'data' / 'gone.jsonl'}: No such file or directory")
