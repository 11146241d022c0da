"""Bad input stops before anything runs: exit 2, one line naming the place in the config, no traceback,
nothing written. Values that merely look dangerous (spaces, quotes, shell metacharacters) are data.

The configs and what each must say are in tests/data/bad_configs (cases.yaml is the index). Every case goes
through `sandflow check` in-process, and through snakemake's command line on a work_dir that already holds
finished jobs: every file there (all but Snakemake's own .snakemake/) keeps its sha256, size and mtime. A few
also go through a run of their own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from sandflow.cli import main
from sandflow.config.load import load_config_file
from sandflow.plan.model import Job, Plan
from sandflow.plan.planner import plan_config
from sandflow.run.specs import job_spec

from helpers.paths import REPO, TEST_DATA
from helpers.snakemake import snakemake
from helpers.tree_files import file_digests

CASES_DIR = TEST_DATA / "bad_configs"
INDEX = yaml.safe_load((CASES_DIR / "cases.yaml").read_text())
BAD: dict[str, dict[str, str]] = INDEX["bad"]
GOOD: dict[str, dict[str, dict[str, str]]] = INDEX["good"]
CANARY = re.compile(r"pwned-\d+")


def expected_line(name: str) -> str:
    where = BAD[name]["where"]
    return f"sandflow: error: {name}: {where + ': ' if where else ''}"


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under root with its size and mtime: any write shows."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


@pytest.fixture
def cases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the case directory as the working directory (configs name paths relative to it)."""
    root = tmp_path / "cases"
    shutil.copytree(CASES_DIR, root)
    monkeypatch.chdir(root)
    monkeypatch.delenv("SANDFLOW_TEST_UNSET_DATA", raising=False)  # vars_undefined_env.yaml needs it unset
    return root


def test_every_case_file_is_indexed_and_there_are_at_least_30():
    on_disk = {p.name for p in CASES_DIR.glob("*.yaml")} - {"cases.yaml"}
    assert on_disk == set(BAD) | set(GOOD)
    assert len(BAD) >= 30


@pytest.mark.parametrize("name", sorted(BAD))
def test_sandflow_check_prints_one_line_naming_the_place_and_exits_2(
    name: str, cases: Path, capsys: pytest.CaptureFixture
):
    before = snapshot(cases)
    assert main(["check", name]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(expected_line(name)), lines[0]
    assert BAD[name]["message"] in lines[0]
    assert snapshot(cases) == before, "a bad config wrote something"
    assert not (cases / "work").exists()


@pytest.mark.parametrize(
    "name", ["yaml_syntax_error.yaml", "yaml_duplicate_key.yaml", "yaml_empty.yaml", "yaml_top_level_list.yaml"]
)
def test_sandflow_run_reports_a_broken_file_itself_before_snakemake_starts(
    name: str, cases: Path, capsys: pytest.CaptureFixture
):
    """Snakemake would report these in its own words, exit 1, without the line number."""
    assert main(["run", name, "-n"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(expected_line(name)) and BAD[name]["message"] in err and err.count("\n") == 1


def test_the_sandflow_command_itself_exits_2_without_a_traceback(cases: Path):
    sandflow = Path(sys.executable).with_name("sandflow")
    result = subprocess.run(
        [str(sandflow), "check", "ref_cycle.yaml"], cwd=cases, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(expected_line("ref_cycle.yaml")) and result.stderr.count("\n") == 1


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, dry_run",
    [
        ("ref_dangling_meta_name.yaml", True),
        ("ref_dangling_meta_name.yaml", False),  # a real run: onstart must not get as far as writing the lock
        ("type_hook_not_string.yaml", True),
    ],
)
def test_snakemake_stops_with_the_same_line_and_exit_2(
    name: str, dry_run: bool, cases: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    before = {k: v for k, v in snapshot(cases).items() if not k.startswith(".snakemake")}
    # Snakemake's temporary directory and its copy of the Snakefile in its source cache, which exit 2 (os._exit)
    # left behind in $TMPDIR and ~/.cache at every bad config.
    temp, cache = tmp_path / "temp", tmp_path / "cache"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    result = snakemake(cases, name, *(["-n"] if dry_run else []), check=False)
    assert result.returncode == 2, result.stderr[-3000:]
    ours = [line for line in result.stderr.splitlines() if line.startswith("sandflow:")]
    assert len(ours) == 1 and ours[0] == result.stderr.strip().splitlines()[-1]
    assert ours[0].startswith(expected_line(name)) and BAD[name]["message"] in ours[0]
    assert "Traceback" not in result.stderr
    # Snakemake keeps its own metadata in .snakemake/; nothing else may appear or change.
    assert {k: v for k, v in snapshot(cases).items() if not k.startswith(".snakemake")} == before
    assert list(temp.iterdir()) == []
    assert [path.name for path in cache.glob("snakemake/snakemake/source-cache/snakemake-runtime-cache/*")] == []


# ---- every bad config through snakemake, on a work_dir that holds finished jobs --------------------------------


# Files Snakemake rejects itself while it reads --configfile, before the Snakefile runs: its own error, exit 1
# (`sandflow run` reports them in our form, tested above).
SNAKEMAKES_OWN = {"yaml_empty.yaml", "yaml_syntax_error.yaml", "yaml_top_level_list.yaml", "yaml_top_level_scalar.yaml"}


def duplication_config(root: Path, times: int) -> str:
    """A good config on ./work, the work_dir of nearly every case: one quick job."""
    job = {
        "hook": "DataPoolManipulationHook",
        "meta_name": "duplicate",
        "extra_configs": {
            "type": "data_pool_duplication",
            "dataset_path": "files/data.jsonl",
            "duplicating_times": [times],
            "export_path": "./work/pools/",
        },
    }
    name = f"finished_x{times}.yaml"
    (root / name).write_text(yaml.safe_dump({"work_dir": "./work", "execution_job_configs": [job]}))
    return name


def written(root: Path) -> tuple[dict[str, str], dict[str, tuple[int, int]]]:
    """sha256 and (size, mtime) of everything under root but Snakemake's own .snakemake/ (its log of each
    invocation and its metadata, which it writes even for a config that stops at parse time)."""
    stats = {path: stat for path, stat in snapshot(root).items() if not path.startswith(".snakemake")}
    return file_digests(root, skip=(".snakemake",)), stats


@pytest.fixture(scope="module")
def finished_work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the cases directory whose ./work holds two finished runs. The second run's writes (its job, a
    new context_infos.json) show in written(), so the comparisons below can fail."""
    root = tmp_path_factory.mktemp("finished") / "cases"
    shutil.copytree(CASES_DIR, root)
    snakemake(root, duplication_config(root, 2))
    first = written(root)[0]
    snakemake(root, duplication_config(root, 3))
    second = written(root)[0]
    changed = {path for path in first.keys() | second.keys() if first.get(path) != second.get(path)}
    assert "work/context_infos.json" in changed and any(p.startswith("work/jobs/") and p not in first for p in changed)
    return root


@pytest.fixture(scope="module")
def snakemake_cli(finished_work_dir: Path) -> Callable[[str], tuple[int, str]]:
    """Run `snakemake --configfile <name>` in finished_work_dir: its exit code and output (stdout, then stderr)."""

    def run(name: str) -> tuple[int, str]:
        result = snakemake(finished_work_dir, name, "--cores", "1", check=False)
        return result.returncode, result.stdout + result.stderr

    return run


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BAD))
def test_snakemake_stops_every_bad_config_and_leaves_finished_jobs_byte_identical(
    name: str, finished_work_dir: Path, snakemake_cli: Callable[[str], tuple[int, str]]
):
    before = written(finished_work_dir)
    code, output = snakemake_cli(name)
    if name in SNAKEMAKES_OWN:
        assert code == 1 and "WorkflowError" in output and "sandflow:" not in output, output[-3000:]
    else:
        assert code == 2, output[-3000:]
        ours = [line for line in output.splitlines() if line.startswith("sandflow:")]
        assert len(ours) == 1 and ours[0].startswith(expected_line(name)) and BAD[name]["message"] in ours[0], output
        assert "Traceback" not in output
    after = written(finished_work_dir)
    assert after[0] == before[0], "a bad config changed a file"
    assert after[1] == before[1], "a bad config touched a file"


# ---- values that look dangerous but are data -------------------------------------------------------------


def make_good_case(name: str, cases: Path) -> dict:
    for target, source in GOOD[name]["create"].items():
        (cases / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cases / source, cases / target)
    return yaml.safe_load((cases / name).read_text())


def planned(name: str) -> Plan:
    return plan_config(load_config_file(name))


def job_named(plan: Plan, meta_name: str) -> Job:
    return next(job for job in plan.jobs if job.cfg.meta_name == meta_name)


def spec_value(job: Job, *path: str):
    """A value as the job will see it: through the JSON spec the rule hands the hook."""
    value = json.loads(json.dumps(job_spec(job)))["sections"]
    for part in path:
        value = value[part]
    return value


def test_paths_with_spaces_and_quotes_plan_and_reach_the_job_literally(cases: Path, capsys: pytest.CaptureFixture):
    raw = make_good_case("ok_paths_with_spaces_and_quotes.yaml", cases)
    assert main(["check", "ok_paths_with_spaces_and_quotes.yaml"]) == 0, capsys.readouterr().err
    plan = planned("ok_paths_with_spaces_and_quotes.yaml")
    assert plan.work_dir == os.path.normpath(raw["work_dir"]) == 'work dir/it\'s "here"'

    analysis = job_named(plan, "analysis")  # its recipe was read from the file with quotes in its name
    assert analysis.sections["dj_configs"] == yaml.safe_load((cases / "files/recipe.yaml").read_text())

    process = job_named(plan, "process")
    dataset = raw["execution_job_configs"][0]["dj_configs"]["dataset_path"]
    assert dataset == 'files/my data/it\'s a "quoted" name.jsonl'
    assert spec_value(process, "dj_configs", "dataset_path") == dataset
    export = raw["execution_job_configs"][0]["dj_configs"]["export_path"]
    assert [w.published(1) for w in process.writes] == [os.path.join("./out dir", "iter_1", 'it\'s "processed".jsonl')]
    assert spec_value(process, "dj_configs", "export_path") == export
    assert not (cases / "work dir").exists()


def assert_nothing_executed(root: Path, home: Path) -> None:
    created = [
        p for p in [*root.rglob("*"), *REPO.glob("pwned-*"), *Path.cwd().glob("pwned-*")] if CANARY.fullmatch(p.name)
    ]
    assert created == [], f"a config value was executed: {created}"
    assert (root / "canary" / "keep").exists() and (home / "canary" / "keep").exists(), "a canary directory was removed"


@pytest.fixture
def metachar_case(cases: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, dict]:
    """The shell-metacharacter config, with canary directories in the case dir and in a scratch HOME."""
    home = tmp_path / "home"
    for directory in (cases / "canary", home / "canary"):
        directory.mkdir(parents=True)
        (directory / "keep").write_text("rm -rf must never reach me\n")
    monkeypatch.setenv("HOME", str(home))
    return cases, home, make_good_case("ok_shell_metacharacters.yaml", cases)


def test_shell_metacharacters_are_data_when_planned(metachar_case, capsys: pytest.CaptureFixture):
    cases, home, raw = metachar_case
    assert main(["check", "ok_shell_metacharacters.yaml"]) == 0, capsys.readouterr().err
    plan = planned("ok_shell_metacharacters.yaml")
    assert plan.work_dir == os.path.normpath(raw["work_dir"])
    assert plan.config.project_name == "x; touch pwned-1" and plan.config.experiment_name == "$(touch pwned-2)"

    probe = job_named(plan, "probe; rm -rf canary")
    assert probe.sections["dj_configs"]["dataset_path"] == "files/data.jsonl"  # read from the recipe file's odd name
    process = job_named(plan, "process && touch pwned-8")
    assert process.cfg.outputs == ("out | touch pwned-9",)
    assert spec_value(process, "extra_configs") == raw["execution_job_configs"][0]["extra_configs"]
    analysis = job_named(plan, "analysis > pwned-12")
    assert [(ref.job, ref.index) for ref in analysis.refs] == [(process, 0)]
    assert analysis.deps == [process]
    assert_nothing_executed(cases, home)
    assert not (cases / raw["work_dir"]).exists()


@pytest.mark.slow
def test_shell_metacharacters_are_data_through_snakemake_dry_run_and_a_real_job(metachar_case):
    cases, home, raw = metachar_case
    dry = snakemake(cases, "ok_shell_metacharacters.yaml", "-n")
    assert "DataPoolManipulationHook" in dry.stdout + dry.stderr
    assert_nothing_executed(cases, home)
    assert not (cases / "work $(touch pwned-3)").exists()

    # Run the one job with the most odd values (its meta_name, output name, project_name and export file name).
    process = job_named(planned("ok_shell_metacharacters.yaml"), "process && touch pwned-8")
    snakemake(cases, "ok_shell_metacharacters.yaml", "--cores", "1", process.context_path)  # after --configfile's list
    assert_nothing_executed(cases, home)
    context = json.loads((cases / process.context_path).read_text())
    export = raw["execution_job_configs"][0]["extra_configs"]["export_path"]
    assert [write["value"] for write in context["writes"]] == [export]
    artifact = os.path.join(process.job_dir, "extra_configs.export_path", "data_x1.jsonl")
    assert context["values"] == [artifact]  # a one-element list is unpacked, as upstream
    assert [json.loads(line)["text"] for line in (cases / artifact).read_text().splitlines()] == [
        json.loads(line)["text"] for line in (cases / "files" / "data.jsonl").read_text().splitlines()
    ]
