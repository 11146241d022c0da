"""A user's own hook (`hook: 'my_hooks:CountRows'`, a sandflow.BaseHook subclass in the run directory): it runs
under the real snakemake as a job of its own, is cached, reruns when its module changes, writes its export_path
into its job directory, and a broken one fails in one line."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sandflow.config.load import load_config_file
from sandflow.plan.planner import plan_config

from helpers.env import snakemake_env
from helpers.snakemake import finished_counts, snakemake, snakemake_command

COUNT_ROWS = textwrap.dedent(
    """\
    import json
    import os

    from sandflow import BaseHook


    class CountRows(BaseHook):
        def hook(self, **kwargs):
            with open(self.extra_cfg.dataset_path) as rows:
                count = sum(1 for _ in rows)
            self.log.info("counted %d rows", count)
            os.makedirs(os.path.dirname(self.extra_cfg.export_path), exist_ok=True)
            with open(self.extra_cfg["export_path"], "w") as out:
                json.dump({"rows": count, "meta_name": self.meta_name, "outputs": self.output_keys}, out)
            return count, self.extra_cfg.export_path
    """
)
DOUBLE = textwrap.dedent(
    """\
    from sandflow import BaseHook


    class Double(BaseHook):
        def hook(self, **kwargs):
            return self.extra_cfg.count * 2
    """
)
CONFIG = textwrap.dedent(
    """\
    work_dir: ./work
    probe_job_configs:
      - hook: 'my_hooks:CountRows'
        meta_name: count
        output: [rows, counts_file]
        extra_configs:
          dataset_path: data/in.jsonl
          export_path: ./out/counts.json
    execution_job_configs:
      - hook: 'double_hook:Double'
        meta_name: double
        input:
          extra_configs.count: anonymous.count.rows
        output: doubled
    """
)


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A run directory with two user hook modules, three rows of data and a config chaining the hooks."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data/in.jsonl").write_text('{"text": "a"}\n{"text": "b"}\n{"text": "c"}\n')
    (tmp_path / "my_hooks.py").write_text(COUNT_ROWS)
    (tmp_path / "double_hook.py").write_text(DOUBLE)
    (tmp_path / "sandbox.yaml").write_text(CONFIG)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def job_dirs(run_dir: Path, hook: str) -> list[Path]:
    return sorted((run_dir / "work/jobs" / hook).iterdir())


def infos(run_dir: Path) -> list[dict]:
    return json.loads((run_dir / "work/context_infos.json").read_text())[0]["pipeline_infos"][0]["job_infos"]


def test_the_key_hashes_the_hook_module_and_a_missing_class_is_a_config_error(run_dir: Path):
    first = {job.cfg.meta_name: job.key for job in plan_config(load_config_file("sandbox.yaml")).jobs}
    (run_dir / "double_hook.py").write_text(DOUBLE.replace("* 2", "* 3"))
    second = {job.cfg.meta_name: job.key for job in plan_config(load_config_file("sandbox.yaml")).jobs}
    assert first["count"] == second["count"] and first["double"] != second["double"]

    shown = subprocess.run(
        [sys.executable, "-m", "sandflow.cli", "show", "sandbox.yaml", "double"], capture_output=True, text=True
    )
    digest = hashlib.sha256((run_dir / "double_hook.py").read_bytes()).hexdigest()
    assert shown.returncode == 0 and f"    hook code: double_hook.py  sha256 {digest[:16]}\n" in shown.stdout

    (run_dir / "double_hook.py").write_text("from sandflow import BaseHook\n")
    result = subprocess.run(
        [sys.executable, "-m", "sandflow.cli", "check", "sandbox.yaml"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr == (
        "sandflow: error: sandbox.yaml: execution_job_configs[0].hook: "
        "double_hook.py defines no 'Double' (a sandflow.BaseHook subclass)\n"
    )


def test_importing_base_hook_imports_no_library():
    code = "import sys; from sandflow import BaseHook; print(sorted(m.split('.')[0] for m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for heavy in ("yaml", "snakemake", "data_juicer", "jsonschema", "numpy"):
        assert f"'{heavy}'" not in loaded


@pytest.mark.slow
def test_user_hooks_run_are_cached_and_rerun_only_when_their_module_changes(run_dir: Path):
    snakemake(run_dir, "sandbox.yaml")
    assert infos(run_dir) == [
        {"meta_name": "count", "rows": 3, "counts_file": "out/iter_1/counts.json"},
        {"meta_name": "double", "doubled": 6},
    ]
    # export_path was written inside the job directory, then published where the config said.
    [count_dir] = job_dirs(run_dir, "my_hooks.CountRows")
    written = json.loads((count_dir / "extra_configs.export_path/counts.json").read_text())
    assert written == {"rows": 3, "meta_name": "count", "outputs": ["rows", "counts_file"]}
    assert json.loads((run_dir / "out/iter_1/counts.json").read_text()) == written
    assert "counted 3 rows" in (run_dir / f"work/logs/my_hooks.CountRows/{count_dir.name}.log").read_text()

    assert "Nothing to be done" in snakemake(run_dir, "sandbox.yaml").stderr

    (run_dir / "double_hook.py").write_text(DOUBLE.replace("* 2", "* 3"))
    rerun = snakemake(run_dir, "sandbox.yaml")
    assert finished_counts(rerun)["user_hook"] == 1
    assert job_dirs(run_dir, "my_hooks.CountRows") == [count_dir]  # not rerun: its module is unchanged
    assert len(job_dirs(run_dir, "double_hook.Double")) == 2
    assert infos(run_dir)[1] == {"meta_name": "double", "doubled": 9}


BROKEN = textwrap.dedent(
    """\
    import json

    from sandflow import BaseHook


    class Broken(BaseHook):
        def hook(self, **kwargs):
            raise RuntimeError("no rows today")


    NotAHook = json.JSONDecoder
    """
)
BROKEN_CONFIG = textwrap.dedent(
    """\
    work_dir: ./work
    probe_job_configs:
      - hook: 'broken_hooks:Broken'
        meta_name: broken
      - hook: 'broken_hooks:NotAHook'
        meta_name: not_a_hook
    """
)


@pytest.mark.slow
def test_a_broken_user_hook_fails_in_one_line_and_leaves_no_job_directory(run_dir: Path):
    (run_dir / "broken_hooks.py").write_text(BROKEN)
    (run_dir / "broken.yaml").write_text(BROKEN_CONFIG)
    result = subprocess.run(
        snakemake_command("broken.yaml", "--cores", "1", "--keep-going"),
        cwd=run_dir,
        env=snakemake_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 1
    failures = [
        line for line in (result.stdout + result.stderr).splitlines() if line.startswith("sandflow: job failed")
    ]
    assert sorted(failures) == [
        "sandflow: job failed: broken_hooks:Broken raised RuntimeError: no rows today (traceback in the job's log)",
        "sandflow: job failed: hook 'broken_hooks:NotAHook' is not a subclass of sandflow.BaseHook",
    ]
    assert "Traceback" not in result.stdout + result.stderr
    [log] = (run_dir / "work/logs/broken_hooks.Broken").iterdir()
    assert 'raise RuntimeError("no rows today")' in log.read_text()
    assert not (run_dir / "work/jobs/broken_hooks.Broken").exists() or not any(
        (run_dir / "work/jobs/broken_hooks.Broken").glob("*/context.json")
    )


@pytest.mark.slow
def test_a_user_hooks_resources_come_from_its_job_config(run_dir: Path):
    (run_dir / "sandbox.yaml").write_text(
        CONFIG.replace(
            "    output: [rows, counts_file]\n",
            "    output: [rows, counts_file]\n    resources: {threads: 2, mem_mb: 8192}\n",
        )
    )
    planned = snakemake(run_dir, "sandbox.yaml", "-n", "--cores", "4").stdout
    jobs = {
        hook: block
        for block in planned.split("\nrule ")[1:]
        for hook in re.findall(r"^    output: work/jobs/([\w.]+)/\w+/context\.json$", block, re.M)
    }
    assert "threads: 2" in jobs["my_hooks.CountRows"] and "mem_mb=8192" in jobs["my_hooks.CountRows"]
    assert "threads:" not in jobs["double_hook.Double"] and "mem_mb=4096" in jobs["double_hook.Double"]  # the default
