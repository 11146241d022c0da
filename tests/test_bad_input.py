"""Bad input through snakemake itself: one line naming the place, exit code 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import snakemake

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("dry_run", [True, False])
def test_bad_reference_stops_snakemake_with_exit_2_and_writes_nothing(tmp_path: Path, dry_run: bool):
    (tmp_path / "data.jsonl").write_text('{"text": "a b c"}\n')
    (tmp_path / "bad.yaml").write_text(
        "work_dir: ./work\n"
        "probe_job_configs:\n"
        "  - hook: ProbeViaAnalyzerHook\n"
        "    meta_name: probe\n"
        "    dj_configs: {dataset_path: data.jsonl, export_path: ./out/x.jsonl, process: [{text_length_filter: {}}]}\n"
        "execution_job_configs:\n"
        "  - hook: ProcessDataHook\n"
        "    input: {dj_configs.dataset_path: 'anonymous.prob.0'}\n"
        "    dj_configs: {dataset_path: x, export_path: ./out/y.jsonl, process: [{text_length_filter: {}}]}\n"
    )
    result = snakemake(tmp_path, "bad.yaml", *(["-n"] if dry_run else []), check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "sandflow: error: bad.yaml: execution_job_configs[0].input['dj_configs.dataset_path']: "
        "'anonymous.prob.0': pipeline 'anonymous' has no job with meta_name 'prob' (did you mean 'probe'?)"
    )
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "work").exists() and not (tmp_path / "out").exists()
