"""A probe whose files an earlier probe of the work_dir already wrote: they are copied, Data-Juicer does not run.

Data-Juicer's Analyzer computes each filter's stats with the filter's ``process`` set aside: it never applies a
threshold. Two probes whose recipes differ only in the thresholds of covered filters (hooks/dj_stats_cache.COVERED,
and every filter's range settings) therefore write the same files: the stats, the analysis tables and figures, the
summary k-sigma refinement reads. After a probe ran, its files are stored under a probe key; a later probe with the
same key writes the stored bytes where it would have written its own (a threshold changed in the probe's recipe:
0.6 s of Data-Juicer's config init and analysis on the demo, for a copy of 15 files).

The probe key is the sha256 of: the recipe as the job runs it, less its thresholds and the paths into the job
directory (the export path is kept relative to it); the sha256 of the dataset file; the versions of py-data-juicer,
datasets, pandas, numpy, pyarrow, matplotlib and Pillow; the source digests of the recipe's ops, of Data-Juicer's
analyzer and analysis modules and of sandflow's Data-Juicer hooks; the drawing environment of the analysis cache
(matplotlib settings, with the two the column-wise analysis sets before it draws, and the font). Only probes of
covered filters alone (tokenization off where it reads a model), on one local dataset file, with the default
executor, no op fusion and no ``auto`` are stored or reused: any other op may read a model or file that no key
pins.

On disk, in the analysis cache's layout and with its discipline (hooks/dj_figure_store.py: written once under a
temp name, named by the sha256 of the bytes; a torn, planted or ambiguous entry is never used, the probe runs):

    <work_dir>/stats-cache/probes/<probe key>/<sha256>.listing      the listing: each file's path and sha256
    <work_dir>/stats-cache/probes/<file key>/<sha256>               one file's bytes (file key: probe key + path)

A probe whose files differ from one run to the next (a word cloud) stores two listings under one key and is never
reused.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from sandflow.core.filehash import sha256_bytes, sha256_file
from sandflow.core.keys import canonical_json, library_version
from sandflow.core.layout import stats_cache_dir, work_dir_of_job_dir
from sandflow.hooks.base import JobRun
from sandflow.hooks.dj_analysis_cache import COLUMN_WISE_MODULE, CORRELATION_MODULE, drawing_environment
from sandflow.hooks.dj_figure_store import PROBES_SUBDIR, FigureStore, figures_size
from sandflow.hooks.dj_ray import RAY_EXECUTOR, executor_type
from sandflow.hooks.dj_stats_cache import COVERED, RANGE_ARGS, READS_MODEL_WHEN, cache_off_reason, op_source_digest
from sandflow.hooks.source_digest import module_digest

__all__ = ["FORMAT", "ProbeKey", "probe_key", "reuse", "store"]

FORMAT = 1  # what a probe key covers; bump it when that changes
LISTING_SUFFIX = ".listing"
# A probe's files are stored only up to this size in all (they are read into memory to store and to copy): an
# export of the whole dataset (export_original_dataset) may be far larger, and such a probe runs each time.
STORE_CAP_BYTES = 256 * 1024 * 1024
LIBRARIES = ("py-data-juicer", "datasets", "pandas", "numpy", "pyarrow", "matplotlib", "pillow")
ANALYSIS_MODULES = (
    "data_juicer.core.analyzer",
    "data_juicer.analysis.overall_analysis",
    COLUMN_WISE_MODULE,
    CORRELATION_MODULE,
)
# What Data-Juicer's column-wise analysis sets in matplotlib's rcParams before it draws (its __init__), whatever
# an earlier analysis in the process left there; ANALYZER_FONT names the font.
DEFAULT_ANALYZER_FONT = "Heiti SC"
# Set by sandflow for each job (hooks/data_juicer.py): paths into the job directory.
JOB_PATHS = ("work_dir", "job_id", "ds_cache_dir", "export_path", "dataset_path", "process")


def without_thresholds(name: str, args: dict[str, Any]) -> dict[str, Any] | None:
    """A covered filter's arguments less its thresholds; None for any other op, or one that reads a model."""
    if name not in COVERED:
        return None
    reads_model = READS_MODEL_WHEN.get(name)
    if reads_model is not None and args.get(reads_model, False) is not False:
        return None
    return {key: value for key, value in args.items() if key not in COVERED[name] | RANGE_ARGS}


@dataclass(frozen=True)
class ProbeKey:
    key: str  # 32 hex digits
    description: dict[str, Any]  # what it stands for (key.json)


def probe_key(job: JobRun, recipe: dict[str, Any]) -> ProbeKey | None:
    """The probe key of this job's prepared recipe, before the probe runs; None when the probe is not one that is
    stored or reused (the module's docstring says which are)."""
    if cache_off_reason(job) is not None:  # also when the job is not in a work_dir's jobs/
        return None
    if executor_type(recipe) == RAY_EXECUTOR or recipe.get("op_fusion") or recipe.get("auto"):
        return None
    dataset, export = recipe.get("dataset_path"), recipe.get("export_path")
    if recipe.get("dataset") or not isinstance(dataset, str) or not os.path.isfile(dataset):
        return None
    export_in_job = os.path.relpath(os.path.abspath(str(export)), os.path.abspath(job.job_dir))
    if export_in_job.startswith(os.pardir):
        return None
    ops = []
    for entry in recipe["process"]:
        ((name, args),) = entry.items()
        kept = without_thresholds(name, args or {})
        if kept is None:
            return None
        ops.append({name: kept})
    from data_juicer.ops import OPERATORS

    modules = sorted({OPERATORS.modules[name].__module__ for entry in ops for name in entry} | set(ANALYSIS_MODULES))
    for module in modules:
        importlib.import_module(module)
    import matplotlib

    font = os.environ.get("ANALYZER_FONT", DEFAULT_ANALYZER_FONT)
    with matplotlib.rc_context({"font.sans-serif": [font], "axes.unicode_minus": False}):
        environments = [drawing_environment(module) for module in (COLUMN_WISE_MODULE, CORRELATION_MODULE)]
    if any(environment is None for environment in environments):
        return None
    description = {
        "format": FORMAT,
        "recipe": {key: value for key, value in recipe.items() if key not in JOB_PATHS},
        "export_path": export_in_job,
        "process": ops,
        "dataset": sha256_file(dataset),
        "libraries": {name: library_version(name) for name in LIBRARIES},
        "sources": {module: op_source_digest(module) for module in modules},
        "sandflow": module_digest("sandflow.hooks.data_juicer"),
        "drawing": environments,
        "analyzer_font": font,
    }
    return ProbeKey(hashlib.sha256(canonical_json(description).encode()).hexdigest()[:32], description)


def _store(job: JobRun) -> FigureStore:
    work_dir = work_dir_of_job_dir(str(job.job_dir))
    assert work_dir is not None
    return FigureStore(Path(stats_cache_dir(work_dir)) / PROBES_SUBDIR, Path(work_dir), name="the probe store")


def _file_key(key: str, path: str) -> str:
    return hashlib.sha256(f"{key}\0{path}".encode()).hexdigest()[:32]


def _safe_relative(path: Any) -> bool:
    if not isinstance(path, str) or not path:
        return False
    parts = PurePosixPath(path).parts
    return not PurePosixPath(path).is_absolute() and ".." not in parts and "." not in parts


def reuse(job: JobRun, probe: ProbeKey) -> Path | None:
    """Write the files stored under the probe's key into its job directory; the path of its result (what the probe
    returns). None when nothing usable is stored: the probe then runs (and a stored probe that is not whole is
    said in the job's log, as the analysis cache says a figure it skips)."""
    store = _store(job)
    stored = _stored_files(store, probe.key)
    for name in store.skipped:
        job.log.warning("probe reuse: skipped %s (its name is not the sha256 of its bytes)", name)
    for key in store.ambiguous:
        job.log.warning("probe reuse: %s holds two different copies of a file: neither is used", key)
    if isinstance(stored, str):
        job.log.warning(
            "probe reuse: the probe stored under key %s is not whole (%s): Data-Juicer runs", probe.key, stored
        )
    if not isinstance(stored, tuple):
        return None
    contents, result = stored
    for path, data in contents.items():
        target = Path(job.job_dir) / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    job.log.info(
        "probe reuse: %d file(s) of an earlier probe of the same data, ops and stat arguments (key %s); "
        "Data-Juicer not run",
        len(contents),
        probe.key,
    )
    return Path(job.job_dir) / result


def _stored_files(store: FigureStore, key: str) -> tuple[dict[str, bytes], str] | str | None:
    """The files stored under key, by path in the job directory, and the result's path; None when nothing is
    stored, what is wrong when a stored probe is not whole."""
    stored = store.get(key, LISTING_SUFFIX)
    if stored is None:
        return "its listing is not intact" if store.skipped or store.ambiguous else None
    try:
        listing = json.loads(stored)
    except ValueError:
        return "its listing is not JSON"
    files, result = (listing.get("files"), listing.get("result")) if isinstance(listing, dict) else (None, None)
    if not isinstance(files, dict) or not all(map(_safe_relative, [*files, result])) or result not in files:
        return "its listing is not one this version writes"
    contents = {}
    for path, digest in files.items():
        data = store.get(_file_key(key, path), "")
        if data is None or sha256_bytes(data) != digest:
            return f"{path} is missing or altered"
        contents[path] = data
    return contents, result


def store(job: JobRun, probe: ProbeKey, result: str | Path) -> None:
    """Store the files this probe wrote in its job directory (all of them: nothing else is there yet), for a later
    probe of the same key."""
    key, description = probe.key, probe.description
    job_dir = Path(job.job_dir)
    paths = [path for path in sorted(job_dir.rglob("*")) if path.is_file() and not path.is_symlink()]
    total = sum(path.stat().st_size for path in paths)
    if total > STORE_CAP_BYTES:
        job.log.info("probe reuse: not stored (%.0f MB of files, over %d MB)", total / 1e6, STORE_CAP_BYTES >> 20)
        return
    files = {path.relative_to(job_dir).as_posix(): path.read_bytes() for path in paths}
    result_path = Path(result).resolve().relative_to(job_dir.resolve()).as_posix()
    probes = _store(job)
    for path, data in files.items():
        probes.add(_file_key(key, path), {"probe": key, "path": path}, data, "")
    listing = {"files": {path: sha256_bytes(data) for path, data in files.items()}, "result": result_path}
    probes.add(key, description, (canonical_json(listing) + "\n").encode(), LISTING_SUFFIX)
    probes.flush()
    job.log.info("probe reuse: stored %d file(s) under key %s", len(files), key)
    size = figures_size(probes.directory)
    job.log.info("probe store %s: %.1f MB in %d file(s)", probes.directory, size.bytes / 1e6, size.figures)
