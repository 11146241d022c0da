"""Hooks that run py-data-juicer: ProbeViaAnalyzerHook, RefineRecipeViaKSigmaHook, ProcessDataHook.

Data-Juicer is imported inside the functions only (the registry imports this
module lazily, but keep it that way: ``import data_juicer`` costs seconds).

Every Data-Juicer run here is made safe and self-contained the same way
(``dj_session`` and ``dj_recipe``):

* the recipe settings sandflow decides (``sandflow.config.dj_settings``, docs/hooks.md) are checked again,
  for recipes that exist only now: ``skip_op_error`` true (Data-Juicer's default silently drops every sample
  of a batch an op fails on and exits 0), ``export_shard_size``, ``op_fusion`` are refused, and left out they
  are false, 0 and false; ``use_cache`` is off (true is noted);
* ``open_tracer`` is Data-Juicer's: its trace files (``dj_work/trace/``) are artifacts of the job, each
  file's lines sorted (``sort_trace_files``);
* ``executor_type`` is ``default`` (DJ-Sandbox always builds a
  ``DefaultExecutor`` / ``Analyzer``) or ``ray``: Data-Juicer's
  ``RayExecutor`` / ``RayAnalyzer`` in a Ray session of the job's, with the
  same export files (``sandflow.hooks.dj_ray``);
* everything Data-Juicer writes lands in the job directory: its ``work_dir``
  is ``<job_dir>/dj_work`` (analysis tables and plots in ``dj_work/analysis``,
  event logs), and the Hugging Face datasets cache it loads the input through
  (an Arrow copy of the dataset, normally ``~/.cache/huggingface/datasets``)
  is ``<job_dir>/dj_work/scratch``, deleted when the run ends; intermediate
  results go to the process's temp dir ($TMPDIR), removed at exit;
* Data-Juicer's loguru output goes to ``job.log`` (the job's log file), not
  also to the console, for the duration of the run;
* with the default executor, covered filters read the stats earlier jobs of the work_dir computed
  (``sandflow.hooks.dj_stats_cache``, docs/stats-cache.md), and the Analyzer's figures of stats an earlier
  job drew are copied (``sandflow.hooks.dj_analysis_cache``); the Ray executor computes every stat itself.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import shutil
import sys
from collections.abc import Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any

from sandflow.config.dj_settings import RUN_DEFAULTS, refused_setting, setting_notes
from sandflow.core.atomic import write_text_atomic
from sandflow.core.jsonl import first_bad_row
from sandflow.hooks import dj_probe_reuse
from sandflow.hooks.base import JobRun
from sandflow.hooks.dj_analysis_cache import analysis_cache, fresh_figures
from sandflow.hooks.dj_config_lookup import lookups_once_per_parse
from sandflow.hooks.dj_free_models import free_models_lazily
from sandflow.hooks.dj_ray import (
    RAY_EXECUTOR,
    analyse_on_ray,
    executor_type,
    process_on_ray,
    ray_config_problems,
    ray_session,
)
from sandflow.hooks.dj_stats_cache import stats_cache
from sandflow.hooks.k_sigma import STATS_SUMMARY, refine_recipe_via_k_sigma

__all__ = ["probe_via_analyzer", "refine_recipe_via_k_sigma", "process_data", "summarise_stats"]

WORK_SUBDIR = "dj_work"  # Data-Juicer's work_dir inside the job directory
SCRATCH_SUBDIR = "scratch"  # under WORK_SUBDIR; removed after the run
STATS_FIELD = "__dj__stats__"  # data_juicer.utils.constant.Fields.stats

# Settings every Data-Juicer run of ours gets: the recipe may only repeat them (use_cache true is noted, and
# refused_setting stops the others before they get here).
FORCED: dict[str, Any] = {
    **RUN_DEFAULTS,
    "min_common_dep_num_to_combine": -1,  # else the Ray executor gives ops runtime envs that pip-install packages
}
TRACE_SUBDIR = "trace"  # Data-Juicer's Tracer writes <work_dir>/trace/
# Directory settings that would put Data-Juicer's files outside the job directory.
# (temp_dir stays unset: with the cache off, Hugging Face datasets keeps one temp directory per process in the
# system temp dir ($TMPDIR) and deletes it at exit; a temp dir inside a job would be reused by the next job run
# in the same process after the first one's directory is gone.)
DROPPED_DIRS = ("event_log_dir", "checkpoint_dir", "partition_dir", "work_dir", "job_id", "temp_dir", "ds_cache_dir")


def dj_recipe(job: JobRun) -> dict[str, Any]:
    """The job's recipe with FORCED settings and every Data-Juicer directory inside job.job_dir."""
    if not isinstance(job.dj_configs, Mapping):
        raise ValueError(f"{job.hook} needs dj_configs: a Data-Juicer recipe")
    recipe = copy.deepcopy(dict(job.dj_configs))
    if not recipe.get("export_path"):
        raise ValueError(f"{job.hook} needs dj_configs.export_path")
    problems = ray_config_problems(recipe)
    refused = refused_setting(recipe)
    if refused:
        problems.append(f"dj_configs.{refused[0]}: {refused[1]}")
    if problems:
        raise ValueError(problems[0])
    notes = setting_notes(recipe)
    for place, note in notes:
        job.log.warning("dj_configs.%s: %s", place, note)
    noted = {place for place, _ in notes}
    for key, value in FORCED.items():
        if key in recipe and recipe[key] != value and key not in noted:
            job.log.warning("dj_configs.%s=%r is overridden with %r", key, recipe[key], value)
        recipe[key] = value
    for key in DROPPED_DIRS:
        if recipe.pop(key, None) is not None:
            job.log.warning("dj_configs.%s is ignored: Data-Juicer writes inside the job directory", key)
    work_dir = Path(job.job_dir)
    scratch = work_dir / WORK_SUBDIR / SCRATCH_SUBDIR
    # Data-Juicer appends job_id to work_dir: <job_dir>/dj_work
    recipe.update(work_dir=str(work_dir), job_id=WORK_SUBDIR, ds_cache_dir=str(scratch / "hf_datasets"))
    process = recipe.get("process") or []
    if not isinstance(process, list):
        raise ValueError("dj_configs.process must be a list of ops")
    for index, entry in enumerate(process):
        if not isinstance(entry, dict) or len(entry) != 1:
            raise ValueError(f"dj_configs.process[{index}] must be a mapping with one op name, got {entry!r}")
        ((name, args),) = entry.items()
        args = {} if args is None else dict(args)
        args["skip_op_error"] = False  # refused_setting let only false through
        entry[name] = args
    recipe["process"] = process
    Path(recipe["export_path"]).parent.mkdir(parents=True, exist_ok=True)
    return recipe


def init_dj_config(recipe: dict[str, Any]) -> Any:
    """Data-Juicer's config namespace for a recipe dict (``get_init_configs``, no logger or config backup)."""
    from data_juicer.config import get_init_configs

    with lookups_once_per_parse():
        cfg = get_init_configs(recipe, load_configs_only=True)
    # get_init_configs re-parses the recipe: make sure nothing switched error skipping back on.
    not_forced = [name for op in cfg.process for name, args in op.items() if (args or {}).get("skip_op_error")]
    if cfg.skip_op_error or not_forced:
        raise RuntimeError(f"skip_op_error is still on after config init ({not_forced or 'global'})")
    return cfg


class LoguruToLogging:
    """A loguru sink that hands each message to a stdlib logger (picklable, for Data-Juicer's worker processes)."""

    def __init__(self, logger_name: str) -> None:
        self.logger_name = logger_name

    def __call__(self, message: Any) -> None:
        import logging

        logging.getLogger(self.logger_name).log(message.record["level"].no, "%s", str(message).rstrip("\n"))


@contextlib.contextmanager
def dj_session(job: JobRun) -> Iterator[None]:
    """Forward Data-Juicer's loguru output to job.log; undo Data-Juicer's process-wide settings afterwards.

    Data-Juicer's config init with the cache off sets ``tempfile.tempdir``,
    disables Hugging Face datasets caching and points its cache directory at
    ``ds_cache_dir``, all process-wide: restored here so that one job does not
    leak into the next one run in the same process (e.g. tests).
    """
    import tempfile

    import data_juicer  # noqa: F401  (its import resets loguru's handlers: import it before adding ours)
    import datasets
    from loguru import logger

    saved_tempdir = tempfile.tempdir
    saved_caching = datasets.is_caching_enabled()
    config_names = (
        "HF_DATASETS_CACHE",
        "DEFAULT_DOWNLOADED_DATASETS_PATH",
        "DOWNLOADED_DATASETS_PATH",
        "DEFAULT_EXTRACTED_DATASETS_PATH",
        "EXTRACTED_DATASETS_PATH",
    )
    saved_config = {name: getattr(datasets.config, name) for name in config_names if hasattr(datasets.config, name)}
    from data_juicer.utils.constant import RAY_JOB_ENV_VAR

    saved_ray_job = os.environ.get(RAY_JOB_ENV_VAR)  # config init with executor_type ray sets it to "1"
    environ = os.environ  # a Hugging Face map in worker processes replaces the object (os.environ = a copy)

    # Only to the job log: Data-Juicer's own console handler would repeat every line on the run's terminal,
    # interleaved between parallel jobs. Its progress bars (tqdm) still show there.
    logger.remove()
    sink = logger.add(
        LoguruToLogging(job.log.name), level="INFO", format="[data_juicer] {name}:{line} - {message}", colorize=False
    )
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):  # already removed by a logger.remove() inside Data-Juicer
            logger.remove(sink)
        logger.add(sys.stderr, level="INFO")  # the console handler Data-Juicer's import set up, for what runs next
        tempfile.tempdir = saved_tempdir
        for name, value in saved_config.items():
            setattr(datasets.config, name, value)
        (datasets.enable_caching if saved_caching else datasets.disable_caching)()
        if saved_ray_job is None:
            os.environ.pop(RAY_JOB_ENV_VAR, None)
        else:
            os.environ[RAY_JOB_ENV_VAR] = saved_ray_job
        keep_environ_object(environ)
        shutil.rmtree(Path(job.job_dir) / WORK_SUBDIR / SCRATCH_SUBDIR, ignore_errors=True)


@contextlib.contextmanager
def bad_line_named(dataset_path: str | None) -> Iterator[None]:
    """A failed run whose dataset is one local JSON Lines file fails on the file's first bad line when it has one,
    '<file>:<line>: <problem>': Data-Juicer's loader says only Arrow's 'JSON parse error ... in row N', N counted
    within a block of the file. The file is read again only when the run has failed."""
    try:
        yield
    except Exception as exc:
        if not isinstance(dataset_path, str):  # a `dataset:` config
            raise
        path = Path(dataset_path)
        if path.is_relative_to(Path.cwd()):  # named as the config names it (Data-Juicer made it absolute)
            path = path.relative_to(Path.cwd())
        bad = first_bad_row(path) if path.suffix == ".jsonl" and path.is_file() else None
        if bad is not None:
            raise bad from exc
        raise


def keep_environ_object(environ: MutableMapping[str, str]) -> None:
    """Make ``environ`` os.environ again, holding what os.environ holds now. Hugging Face datasets' map with
    num_proc assigns a deep copy to os.environ, after which whoever holds the original (a test's monkeypatch,
    restoring a variable afterwards) changes a mapping the process no longer reads."""
    current = os.environ
    if current is environ:
        return
    for name in set(environ) - set(current):
        del environ[name]
    for name, value in current.items():
        if environ.get(name) != value:
            environ[name] = value
    os.environ = environ  # noqa: B003 (the object back; its contents are the environment, synced above)


def sort_trace_files(trace_dir: Path) -> list[str]:
    """Sort the lines of each file Data-Juicer's Tracer wrote; return the files' names.

    With np > 1 each worker process traces up to trace_num samples of its own shard and appends them to the
    op's file as it finds them: the same lines, in an order that differs between runs. Sorted, the file is a
    pure function of the job's inputs, like every other artifact."""
    names = sorted(entry.name for entry in os.scandir(trace_dir) if entry.is_file(follow_symlinks=False))
    for name in names:
        path = trace_dir / name
        # split on "\n" only: Data-Juicer writes the text unescaped, and it may hold other line separators
        lines = [line for line in path.read_text(encoding="utf-8").split("\n") if line]
        write_text_atomic(path, "".join(line + "\n" for line in sorted(lines)))
    return names


def stats_file_of(export_path: str, suffix: str) -> str:
    """Where Data-Juicer's Exporter writes the per-sample stats (its own rule: ``<base>_stats.jsonl``)."""
    return export_path.replace("." + suffix, "_stats.jsonl")


def _numbers(value: Any) -> list[int | float]:
    """The numeric values of one stat of one sample; lists are flattened as DJ's analysis does (explode)."""
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, (int, float)):
        return [value] if math.isfinite(value) else []
    if isinstance(value, list):
        return [n for item in value for n in _numbers(item)]
    return []  # strings (e.g. lang) are not summarised


def summarise_stats(stats_file: str | Path) -> dict[str, dict[str, Any]]:
    """{stat: {count, mean, std, min, max}} over the per-sample stats in a Data-Juicer stats jsonl.

    std is the *sample* standard deviation (ddof=1), as in Data-Juicer's overall
    table (pandas ``describe``), which DJ-Sandbox's k-sigma read; it is None when
    count < 2. Non-numeric stats (e.g. ``lang``) are left out; missing or
    non-finite values are skipped, as pandas does.
    """
    values: dict[str, list[int | float]] = {}
    with open(stats_file, encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            stats = json.loads(line).get(STATS_FIELD) or {}
            for name, value in stats.items():
                numbers = _numbers(value)
                if numbers:
                    values.setdefault(name, []).extend(numbers)
    summary = {}
    for name in sorted(values):
        xs = values[name]
        n = len(xs)
        mean = math.fsum(xs) / n
        std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else None
        summary[name] = {"count": n, "mean": mean, "std": std, "min": min(xs), "max": max(xs)}
    return summary


def probe_via_analyzer(job: JobRun) -> str:
    """ProbeViaAnalyzerHook: run Data-Juicer's Analyzer; return the analysed dataset's path.

    That is ``export_path`` (the dataset with its stats) when the recipe sets
    ``export_original_dataset: true``; otherwise Data-Juicer 1.6.1 writes only
    the stats file ``<export base>_stats.jsonl`` and that is returned (DJ-Sandbox
    returns ``export_path``, which then does not exist). Also writes
    ``<job_dir>/stats_summary.json`` (see ``summarise_stats``) for k-sigma
    refinement; Data-Juicer's own tables and plots are in ``<job_dir>/dj_work/analysis``.
    """
    recipe = dj_recipe(job)
    probe = dj_probe_reuse.probe_key(job, recipe)  # before the run: the analysis changes matplotlib's settings
    reused = None if probe is None else dj_probe_reuse.reuse(job, probe)
    if reused is not None:
        return str(reused)
    with dj_session(job), ray_session(job, recipe):
        cfg = init_dj_config(recipe)
        if executor_type(recipe) == RAY_EXECUTOR:
            export_path = cfg.export_path
            stats_file = stats_file_of(export_path, "jsonl")
            analyse_on_ray(job, cfg, stats_file)
        else:
            from data_juicer.core import Analyzer

            analyzer = Analyzer(cfg)
            job.log.info("analysing %s with %d op(s)", cfg.dataset_path, len(cfg.process))
            with bad_line_named(cfg.dataset_path), stats_cache(job, cfg), fresh_figures(), analysis_cache(job):
                with free_models_lazily():
                    analyzer.run(skip_return=True)
            export_path = analyzer.exporter.export_path
            stats_file = stats_file_of(export_path, analyzer.exporter.suffix)
        if not os.path.isfile(stats_file):
            raise RuntimeError(
                f"Data-Juicer's Analyzer wrote no stats ({stats_file} is missing): the recipe needs at "
                f"least one Filter or tagging op in dj_configs.process"
            )
        summary = summarise_stats(stats_file)
        write_text_atomic(Path(job.job_dir) / STATS_SUMMARY, json.dumps(summary, indent=2, sort_keys=True) + "\n")
        result = export_path if cfg.export_original_dataset else stats_file
        if cfg.export_original_dataset and not os.path.isfile(export_path):
            raise RuntimeError(f"Data-Juicer's Analyzer did not write {export_path}")
    if probe is not None:
        dj_probe_reuse.store(job, probe, result)  # after the session: its scratch directory is gone
    return result


def process_data(job: JobRun) -> str:
    """ProcessDataHook: run Data-Juicer's DefaultExecutor (or RayExecutor) on the recipe; return its export_path.

    An op that fails raises (skip_op_error is forced off). When every sample is
    filtered out the export file still exists (empty).
    """
    recipe = dj_recipe(job)
    with dj_session(job), ray_session(job, recipe):
        cfg = init_dj_config(recipe)
        if executor_type(recipe) == RAY_EXECUTOR:
            rows = process_on_ray(job, cfg, stats_file_of(cfg.export_path, "jsonl"))
            job.log.info("%d sample(s) exported to %s", rows, cfg.export_path)
            return cfg.export_path
        from data_juicer.core import DefaultExecutor

        executor = DefaultExecutor(cfg)
        job.log.info("processing %s with %d op(s)", cfg.dataset_path, len(cfg.process))
        with bad_line_named(cfg.dataset_path), stats_cache(job, cfg), free_models_lazily():
            dataset = executor.run()
        if cfg.open_tracer:
            trace_dir = Path(job.job_dir) / WORK_SUBDIR / TRACE_SUBDIR
            job.log.info("Data-Juicer's trace: %s in %s", ", ".join(sort_trace_files(trace_dir)) or "none", trace_dir)
        export_path = cfg.export_path
        if not os.path.isfile(export_path):
            if len(dataset) == 0 and executor.exporter.suffix in ("jsonl", "json"):
                job.log.warning("no sample survived the recipe: writing an empty %s", export_path)
                write_text_atomic(Path(export_path), "")
            else:
                raise RuntimeError(f"Data-Juicer's executor did not write {export_path}")
        job.log.info("%d sample(s) exported to %s", len(dataset), export_path)
        return export_path
