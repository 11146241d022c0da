"""`sandflow show`: the lineage of an artifact, from the plan (no run needed: states say 'not run yet').

Each test plans a private copy of the demo (conftest's demo_dir): the checkout's outputs/ may hold a `make demo` run."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from sandflow.cli import main
from sandflow.config.load import load_config_file
from sandflow.plan.planner import plan_config
from sandflow.run.context import assemble_context_infos
from sandflow.run.runner import run_job
from sandflow.run.specs import assembly_spec, job_spec

DEMO = "configs/demo/sandbox.yaml"


@pytest.fixture
def demo(demo_dir: Path):
    return {
        job.cfg.display_name + ("" if job.hook.name != "RefineRecipeViaKSigmaHook" else "/refine"): job
        for job in plan_config(load_config_file(DEMO)).jobs
    }


def show(capsys: pytest.CaptureFixture, target: str) -> tuple[int, list[str], str]:
    code = main(["show", DEMO, target])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


def test_a_job_is_shown_with_its_recipe_files_data_and_the_jobs_it_reads_recursively(demo: dict, capsys):
    code, lines, _ = show(capsys, "anonymous.analysis_processed_data")
    probe, process, refine, first = (
        demo["analysis_processed_data"],
        demo["process_data_with_refined_recipe"],
        demo["analysis_ori_data/refine"],
        demo["analysis_ori_data"],
    )
    data = demo["analysis_ori_data"].sections["dj_configs"]["dataset_path"]
    digest = hashlib.sha256(Path(data).read_bytes()).hexdigest()[:16]
    assert code == 0
    assert [line.strip() for line in lines] == [
        f"anonymous.analysis_processed_data (iteration 1): ProbeViaAnalyzerHook, key {probe.key}, not run yet, {probe.job_dir}",
        "dj_configs from configs/demo/process.yaml",
        "dj_configs.dataset_path <- anonymous.process_data_with_refined_recipe.processed_dataset_path (output 0):",
        f"anonymous.process_data_with_refined_recipe (iteration 1): ProcessDataHook, key {process.key}, not run yet, {process.job_dir}",
        "dj_configs <- -1.refined_recipe_path (output 0):",
        f"anonymous.analysis_ori_data (iteration 1): RefineRecipeViaKSigmaHook, key {refine.key}, not run yet, {refine.job_dir}",
        "dj_configs from configs/demo/process.yaml",
        f"dj_configs.dataset_path: {data}  sha256 {digest}",
        "analysis <- the analysis of the same meta_name:",
        f"anonymous.analysis_ori_data (iteration 1): ProbeViaAnalyzerHook, key {first.key}, not run yet, {first.job_dir}",
        "dj_configs from configs/demo/process.yaml",
        f"dj_configs.dataset_path: {data}  sha256 {digest}",
    ]
    # Indentation is depth: each job read is four spaces deeper than the line naming what reads it.
    assert [len(line) - len(line.lstrip()) for line in lines] == [0, 4, 4, 8, 12, 16, 20, 20, 20, 24, 28, 28]


def test_a_path_names_its_job_a_published_path_its_last_writer(demo: dict, capsys):
    process = demo["process_data_with_refined_recipe"]
    code, lines, _ = show(capsys, f"{process.job_dir}/dj_configs.export_path/out.jsonl")
    assert code == 0 and lines[0].startswith(
        f"anonymous.process_data_with_refined_recipe (iteration 1): ProcessDataHook, key {process.key}"
    )
    # Both analyses export to the same file upstream; the later one is what the published path holds.
    code, lines, _ = show(capsys, "./outputs/demo-process/iter_1/demo-processed.jsonl")
    assert code == 0 and lines[0].startswith("anonymous.analysis_processed_data (iteration 1)")


@pytest.mark.parametrize(
    "target, message",
    [
        (
            "analysis",
            "no job named 'analysis' in this config (use <pipeline>.<meta_name>, a meta_name, a job key or a path)",
        ),
        (
            "outputs/elsewhere/x.jsonl",
            "outputs/elsewhere/x.jsonl is not in a job directory and no job of this config publishes it",
        ),
    ],
)
def test_an_unknown_target_is_one_line_and_exit_2(demo: dict, capsys, target: str, message: str):
    code, lines, err = show(capsys, target)
    assert (code, lines, err) == (2, [], f"sandflow: error: {DEMO}: {message}\n")


# --- job directories on disk: made by this config or an older one (issue 26.8) ----------------------------------

POOLS = "DataPoolManipulationHook"
TWO_JOBS = {
    "work_dir": "./work",
    "execution_job_configs": [
        {
            "hook": POOLS,
            "meta_name": "duplicate",
            "extra_configs": {
                "type": "data_pool_duplication",
                "dataset_path": "a.jsonl",
                "duplicating_times": [2],
                "export_path": "./pools/",
            },
        },
        {
            "hook": POOLS,
            "meta_name": "merge",
            "extra_configs": {
                "type": "data_pool_merging",
                "dataset_path": ["./pools/iter_1/a_x2.jsonl", "b.jsonl"],
                "export_path": "./merged/",
            },
        },
    ],
}
MERGED = "merged/iter_1/default_prefix_merged.jsonl"


@pytest.fixture
def ran(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """TWO_JOBS run by sandflow's runner and published by its assembly (no Snakemake needed to make job
    directories): each meta_name's job directory."""
    monkeypatch.chdir(tmp_path)
    Path("a.jsonl").write_text('{"text": "a"}\n')
    Path("b.jsonl").write_text('{"text": "b"}\n')
    Path("two.yaml").write_text(json.dumps(TWO_JOBS))
    plan = plan_config(load_config_file("two.yaml"))
    for job in plan.unique_jobs():
        run_job(json.loads(json.dumps(job_spec(job))), "job.log")
    assemble_context_infos(assembly_spec(plan), plan.context_infos_path)
    return {job.cfg.display_name: job.job_dir for job in plan.jobs}


def show_two(capsys: pytest.CaptureFixture, target: str) -> tuple[int, list[str], str]:
    code = main(["show", "two.yaml", target])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


def recorded(job_dir: str, component: str) -> str:
    """The line of a job shown from its own record."""
    key = Path(job_dir).name
    started = json.loads((Path(job_dir) / "context.json").read_text())["started_at"]
    return f"job {key} (from its record; this config does not plan it): {POOLS} {component}, key {key}, done {started}, {job_dir}"


def test_a_job_directory_an_older_config_made_is_shown_from_its_record_by_path_or_key(ran: dict, capsys):
    Path("a.jsonl").write_text('{"text": "A"}\n')  # the config now plans other keys for both jobs
    merge, duplicate = ran["merge"], ran["duplicate"]
    expected = [
        recorded(merge, "data_pool_merging"),
        "    extra_configs.dataset_path.1: b.jsonl",
        f"    extra_configs.dataset_path.0 <- {duplicate}/extra_configs.export_path/a_x2.jsonl:",
        "        " + recorded(duplicate, "data_pool_duplication"),
        "            extra_configs.dataset_path: a.jsonl",
    ]
    for target in (f"{merge}/extra_configs.export_path/default_prefix_merged.jsonl", merge, Path(merge).name):
        assert show_two(capsys, target) == (0, expected, "")


def test_an_older_job_that_read_a_job_of_the_plan_leads_back_into_the_plan(ran: dict, capsys):
    Path("b.jsonl").write_text('{"text": "B"}\n')  # merge has a new key; duplicate is still the plan's
    code, lines, _ = show_two(capsys, ran["merge"])
    assert code == 0 and lines[0] == recorded(ran["merge"], "data_pool_merging")
    assert lines[3].startswith(
        "        anonymous.duplicate (iteration 1): DataPoolManipulationHook data_pool_duplication"
    )
    assert lines[3].endswith(f", done, {ran['duplicate']}")


def test_a_published_file_is_credited_to_its_job_only_while_it_holds_that_job_artifact(ran: dict, capsys):
    code, lines, _ = show_two(capsys, MERGED)
    assert code == 0 and lines[0].startswith("anonymous.merge (iteration 1): ") and lines[0].endswith(ran["merge"])
    with open(MERGED, "a") as published:
        published.write('{"text": "added after publishing"}\n')
    assert show_two(capsys, MERGED) == (
        2,
        [],
        f"sandflow: error: two.yaml: {MERGED} is where anonymous.merge publishes, but it holds no artifact of that job "
        "(nor of an earlier job of its hook): it was changed after publishing, or written by something else\n",
    )


def test_a_published_file_of_an_older_config_is_credited_to_the_job_that_made_it(ran: dict, capsys):
    Path("a.jsonl").write_text('{"text": "A"}\n')  # the plan's merge has not run: the file is the older job's
    code, lines, _ = show_two(capsys, MERGED)
    assert code == 0 and lines[0] == recorded(ran["merge"], "data_pool_merging")
    code, lines, _ = show_two(capsys, "merged/iter_1")  # the published directory: every artifact checked
    assert code == 0 and lines[0] == recorded(ran["merge"], "data_pool_merging")
