"""sandflow check: validation and the job graph in plain words; bad input exits 2 with one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandflow.cli import main


def test_check_describes_the_demo_graph(demo_dir: Path, capsys: pytest.CaptureFixture):
    assert main(["check", "configs/demo/sandbox.yaml"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(
        "configs/demo/sandbox.yaml: valid. 4 jobs (4 distinct) in 1 pipeline(s), 1 iteration(s) planned"
    )
    assert "iteration 1, pipeline anonymous:" in out
    assert any("dj_configs <- output 0 of job 2 (-1.refined_recipe_path)" in line for line in out)
    assert any("analysis <- job 1" in line for line in out)


def test_check_of_a_bad_config_prints_one_line_and_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
):
    monkeypatch.chdir(tmp_path)
    Path("bad.yaml").write_text("probe_job_configs:\n  - hook: ProbeViaAnalyzerHook\n    dj_configs: nowhere.yaml\n")
    assert main(["check", "bad.yaml"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert (
        captured.err == "sandflow: error: bad.yaml: probe_job_configs[0].dj_configs: file not found: nowhere.yaml "
        f"(relative paths are resolved against {tmp_path})\n"
    )
    assert list(tmp_path.iterdir()) == [tmp_path / "bad.yaml"]


def test_multi_pipeline_example_runs_its_two_cleanings_independently(demo_dir: Path):
    from sandflow.config.load import load_config_file
    from sandflow.plan.planner import plan_config

    plan = plan_config(load_config_file("configs/demo/multi_pipeline.yaml"))
    jobs = {(j.cfg.pipeline, j.cfg.display_name, j.hook.name): j for j in plan.jobs}
    k_sigma_process = jobs[("refine_with_k_sigma", "process", "ProcessDataHook")]
    fixed_process = jobs[("fixed_thresholds", "process", "ProcessDataHook")]
    assert fixed_process.deps == [], "the fixed-threshold pipeline shares no path with the k-sigma one"
    assert jobs[("compare", "analysis_k_sigma", "ProbeViaAnalyzerHook")].deps == [k_sigma_process]
    assert jobs[("compare", "analysis_fixed", "ProbeViaAnalyzerHook")].deps == [fixed_process]
