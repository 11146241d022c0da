"""Data-Juicer hooks run in-process as jobs of a work_dir (<work_dir>/jobs/<hook>/<key>.partial-1, as a run lays
them out, so the stats and analysis caches are on), with the cache on or off."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from sandflow.hooks.dj_stats_cache import OFF_VARIABLE

from helpers.env import environ
from helpers.job_runs import file_logger, job_run

HIT_LINE = re.compile(r"stats cache: (\w+) (\d+) from cache, (\d+) computed and stored, (\d+) not cacheable")
FIGURES_LINE = re.compile(r"analysis cache: (\d+) figure\(s\) from cache, (\d+) drawn and stored, (\d+) not cacheable")


@dataclass(frozen=True)
class DjJob:
    result: Path  # what the hook returned
    job_dir: Path
    log: str

    def stats_lines(self) -> dict[str, tuple[int, ...]]:
        """The stats cache's line of each covered op: (from cache, computed, not cacheable)."""
        return {m[1]: tuple(int(n) for n in m.groups()[1:]) for m in HIT_LINE.finditer(self.log)}

    def figures_line(self) -> tuple[int, ...] | None:
        """The analysis cache's counts: (from cache, drawn, not cacheable); None when it logged none."""
        match = FIGURES_LINE.search(self.log)
        return None if match is None else tuple(int(n) for n in match.groups())

    def analysis_files(self) -> dict[str, bytes]:
        """Every file of Data-Juicer's analysis (tables and figures), by name."""
        directory = self.job_dir / "dj_work" / "analysis"
        return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def run_dj_job(work_dir: Path, hook: str, key: str, recipe: dict, cache: bool = True) -> DjJob:
    """Run ProbeViaAnalyzerHook or ProcessDataHook as a job of work_dir, exporting under its job directory."""
    from sandflow.hooks.data_juicer import probe_via_analyzer, process_data

    job_dir = work_dir / "jobs" / hook / f"{key}.partial-1"
    job_dir.mkdir(parents=True)
    log_path = work_dir / f"{hook}-{key}.log"
    job = job_run(
        hook,
        job_dir,
        dj_configs={**recipe, "export_path": str(job_dir / "export" / "data.jsonl")},
        key=key,
        log=file_logger(f"dj_jobs.{work_dir.name}.{hook}.{key}", log_path),
    )
    with environ({} if cache else {OFF_VARIABLE: "off"}, unset=() if not cache else (OFF_VARIABLE,)):
        result = (probe_via_analyzer if hook == "ProbeViaAnalyzerHook" else process_data)(job)
    return DjJob(Path(result), job_dir, log_path.read_text())


def run_hook(work_dir: Path, hook: str, key: str, recipe: dict, cache: bool = True) -> tuple[bytes, dict[str, tuple]]:
    """Run a Data-Juicer hook as a job of work_dir; the bytes it exported and its stats cache lines by op."""
    job = run_dj_job(work_dir, hook, key, recipe, cache)
    return job.result.read_bytes(), job.stats_lines()


def process_recipe(data: Path, ops: list[dict]) -> dict:
    # keep_stats_in_res_ds: the processed rows carry their stats, so both are compared
    return {
        "dataset_path": str(data),
        "np": 1,
        "auto_op_parallelism": False,
        "keep_stats_in_res_ds": True,
        "process": ops,
    }


def write_process_config(root: Path, rows: int = 60) -> Path:
    """A config of one Data-Juicer job (ProcessDataHook, which the job server serves) that cleans rows short texts
    (data.jsonl, recipe.yaml and config.yaml in root); the config's path."""
    lines = (json.dumps({"text": f"sample {n} " + "word " * (n % 7 + 1)}) + "\n" for n in range(rows))
    (root / "data.jsonl").write_text("".join(lines))
    recipe = {
        "project_name": "clean",
        "dataset_path": "./data.jsonl",
        "export_path": "./out/processed.jsonl",
        "np": 1,
        "process": [{"text_length_filter": {"min_len": 12, "max_len": 500}}, {"words_num_filter": {"min_num": 2}}],
    }
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    config = {
        "work_dir": "./work",
        "execution_job_configs": [
            {"hook": "ProcessDataHook", "meta_name": "clean", "dj_configs": "recipe.yaml", "output": "processed"}
        ],
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    return root / "config.yaml"
