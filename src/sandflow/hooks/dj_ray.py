"""Data-Juicer's Ray executor (``executor_type: ray``) for ProcessDataHook and ProbeViaAnalyzerHook.

Data-Juicer runs the recipe (``RayExecutor`` / ``RayAnalyzer``); sandflow owns
the Ray session around it and writes the export itself, so a job's outputs
have the same shape as with the default executor:

* Where Ray runs (``ray_address``): ``local`` starts a private single-node
  Ray for the job (the job's granted threads as its CPUs, no dashboard, a
  token of its own since Ray listens on every interface, temp dir and logs
  under $TMPDIR) and stops it afterwards; ``auto`` (Data-Juicer's default)
  connects to ``$RAY_ADDRESS`` when it is set, else does as ``local`` (Ray's
  own ``auto`` would also pick up any cluster last started on this machine
  under /tmp/ray, someone else's on a shared node); any other value is the
  GCS address (``host:port``) of a cluster the job connects to and leaves
  running. The job must run on a node of that cluster: Ray Client
  (``ray://``) is refused, Data-Juicer's Ray Data loading fails through it.
* Nothing is installed at run time: Data-Juicer's lazy loader would
  ``uv pip install`` a missing package, and an op's ``runtime_env`` would make
  Ray pip-install one; ``PIP_NO_INDEX``/``UV_OFFLINE`` are set for the driver
  and Ray's workers, and ``runtime_env`` installs are refused up front.
* Ray Data keeps row order (``preserve_order``), so the rows come out in the
  default executor's order.
* Data-Juicer's ``RayExporter`` would write ``export_path`` as a directory of
  json shards; instead the result is streamed into one ``.jsonl`` file plus the
  ``<base>_stats.jsonl`` stats file, line for line as Data-Juicer's default
  ``Exporter`` writes them (its own row serialiser), streamed from the cluster
  by the driver. Every Ray node must see ``dataset_path`` (shared storage).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from sandflow.hooks.base import JobRun

RAY_EXECUTOR = "ray"
EXECUTOR_TYPES = ("default", RAY_EXECUTOR)
LOCAL_ADDRESSES = ("local", "auto")  # "auto" means local only when $RAY_ADDRESS is unset
RAY_EXPORT_SUFFIX = ".jsonl"
# runtime_env keys that make Ray install packages when a worker starts.
INSTALLING_RUNTIME_ENV_KEYS = ("pip", "uv", "conda")
# Set for the driver and every Ray worker: a package install attempt fails instead of reaching an index.
NO_INSTALL_ENV = {"PIP_NO_INDEX": "1", "UV_OFFLINE": "1"}
# Ray sends usage statistics to a server by default.
RAY_QUIET_ENV = {"RAY_USAGE_STATS_ENABLED": "0"}
EXPORT_BATCH_ROWS = 1000


def executor_type(dj_configs: Mapping[str, Any]) -> str:
    return str(dj_configs.get("executor_type") or "default")


def ray_config_problems(dj_configs: Mapping[str, Any]) -> list[str]:
    """One line per setting that cannot run here with ``executor_type: ray`` (empty for other executors)."""
    kind = dj_configs.get("executor_type", "default")
    if kind not in EXECUTOR_TYPES:
        return [f"dj_configs.executor_type: {kind!r} is not supported by sandflow; use 'default' or 'ray'"]
    if kind != RAY_EXECUTOR:
        return []
    problems = []
    address = dj_configs.get("ray_address", "auto")
    if not isinstance(address, str) or not address.strip():
        problems.append(f"dj_configs.ray_address: expected 'local', 'auto' or a cluster address, got {address!r}")
    elif address.strip().startswith("ray://"):
        # Measured with grpcio installed: loading the dataset fails ('Worker' object has no attribute 'core_worker').
        problems.append(
            "dj_configs.ray_address: Ray Client addresses (ray://) do not work with Data-Juicer's Ray "
            "Data pipeline; run on a node of the cluster and give its GCS address (host:6379)"
        )
    export_path = dj_configs.get("export_path")
    if isinstance(export_path, str) and not export_path.endswith(RAY_EXPORT_SUFFIX):
        problems.append(
            f"dj_configs.export_path: executor_type ray writes a {RAY_EXPORT_SUFFIX} file here, "
            f"got {os.path.basename(export_path)!r}"
        )
    if dj_configs.get("export_type") not in (None, "jsonl"):
        problems.append(
            f"dj_configs.export_type: executor_type ray writes jsonl here, got {dj_configs['export_type']!r}"
        )
    process = dj_configs.get("process")
    for index, entry in enumerate(process if isinstance(process, list) else []):
        if not isinstance(entry, Mapping) or len(entry) != 1:
            continue
        ((name, args),) = entry.items()
        runtime_env = args.get("runtime_env") if isinstance(args, Mapping) else None
        installs = [
            key for key in INSTALLING_RUNTIME_ENV_KEYS if isinstance(runtime_env, Mapping) and key in runtime_env
        ]
        if installs:
            problems.append(
                f"dj_configs.process[{index}].{name}.runtime_env: {installs[0]!r} would install packages "
                f"when Ray starts a worker; install them in the environment instead"
            )
    return problems


def _worker_env_vars() -> dict[str, str]:
    """Environment for Ray's workers, as Data-Juicer's ``initialize_ray`` sets it, plus NO_INSTALL_ENV."""
    from data_juicer.utils.constant import RAY_JOB_ENV_VAR, SPECIAL_TOKEN_ENV_PREFIX

    env = {RAY_JOB_ENV_VAR: "1", **NO_INSTALL_ENV, **RAY_QUIET_ENV}
    env.update({k: v for k, v in os.environ.items() if k.startswith(SPECIAL_TOKEN_ENV_PREFIX)})
    return env


@contextlib.contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _reload_ray_auth() -> None:
    """Make Ray read RAY_AUTH_MODE / RAY_AUTH_TOKEN again: it caches both per process (as Ray's own
    ``_enable_token_auth`` does), and a later job's private Ray has another token."""
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


@contextlib.contextmanager
def ray_session(job: JobRun, recipe: Mapping[str, Any]) -> Iterator[None]:
    """Ray initialised for this job (see the module doc); shut down, and its process-wide settings undone, after.

    Open it before Data-Juicer's config init: with ``executor_type: ray`` that
    init asks Ray for the CPU count and, finding no Ray, would start one of
    its own with every core of the machine (``ray_address: local``).
    """
    if executor_type(recipe) != RAY_EXECUTOR:
        yield
        return
    import ray

    address = str(recipe.get("ray_address") or "auto").strip()
    if address == "auto" and os.environ.get("RAY_ADDRESS"):
        address = os.environ["RAY_ADDRESS"]
    runtime_env = {"env_vars": _worker_env_vars(), "py_modules": recipe.get("custom_operator_paths") or None}
    private = address in LOCAL_ADDRESSES
    # A short path: Ray's unix sockets live under it (at most 107 bytes), so not inside the job directory.
    temp_dir = tempfile.mkdtemp(prefix="sandflow-ray-") if private else None
    driver_env = {**NO_INSTALL_ENV, **RAY_QUIET_ENV}
    if private:
        # Token auth without Ray writing a token to ~/.ray/auth_token: a fresh token in the environment,
        # inherited by the cluster's processes.
        driver_env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    context = ray.data.DataContext.get_current()
    saved_order, saved_bars = context.execution_options.preserve_order, context.enable_progress_bars
    failed = False
    try:
        with _environ(driver_env):
            try:
                _reload_ray_auth()  # this job's token, or the cluster's from the environment
                if private:
                    cpus = max(1, int(job.threads))  # GPUs: as Ray detects them (CUDA_VISIBLE_DEVICES)
                    job.log.info("starting a private Ray with %d CPU(s), temp dir %s", cpus, temp_dir)
                    ray.init(
                        address="local",
                        num_cpus=cpus,
                        include_dashboard=False,
                        _temp_dir=temp_dir,
                        runtime_env=runtime_env,
                    )
                else:
                    job.log.info("connecting to the Ray cluster at %s", address)
                    ray.init(address=address, runtime_env=runtime_env)
                # Data-Juicer's RayDataset captures the DataContext when it loads the data: set before that.
                context.execution_options.preserve_order = True
                context.enable_progress_bars = False  # progress bars would fill the job log
                yield
            finally:
                ray.shutdown()  # stops a private Ray; only disconnects from a cluster
                context.execution_options.preserve_order, context.enable_progress_bars = saved_order, saved_bars
    except BaseException:
        failed = True
        raise
    finally:
        _reload_ray_auth()  # the environment is restored: back to the process's own auth settings
        if private:
            if failed:
                job.log.error("Ray's logs are kept in %s", os.path.join(temp_dir, "session_latest", "logs"))
            else:
                shutil.rmtree(temp_dir, ignore_errors=True)


def write_jsonl_like_exporter(
    dataset: Any, export_path: str | None, stats_path: str | None, *, keep_stats: bool, keep_hashes: bool
) -> int:
    """Stream a Ray dataset into Data-Juicer's default export files; return the number of rows.

    ``export_path`` gets the rows (without ``__dj__stats__``/``__dj__meta__``
    unless ``keep_stats``, without hash columns unless ``keep_hashes``),
    ``stats_path`` the stats and meta columns when the dataset has any (it is
    not written otherwise), as ``Exporter._export_impl`` does for ``.jsonl``.
    Either may be None (not written).
    """
    from data_juicer.core.exporter import Exporter
    from data_juicer.utils.constant import Fields, HashKeys

    columns = dataset.columns() or []  # None for an empty dataset of unknown schema
    stats_columns = [name for name in (Fields.stats, Fields.meta) if name in columns]
    dropped = set() if keep_stats else {Fields.stats, Fields.meta}
    if not keep_hashes:
        dropped |= {HashKeys.hash, HashKeys.minhash, HashKeys.simhash, HashKeys.imagehash, HashKeys.videohash}
    row_columns = [name for name in columns if name not in dropped]
    with contextlib.ExitStack() as files:
        rows_out = stats_out = None
        if export_path:
            Path(export_path).parent.mkdir(parents=True, exist_ok=True)
            rows_out = files.enter_context(open(export_path, "w", encoding="utf-8"))
        if stats_path and stats_columns:
            Path(stats_path).parent.mkdir(parents=True, exist_ok=True)
            stats_out = files.enter_context(open(stats_path, "w", encoding="utf-8"))
        count = 0
        if not columns:
            return count
        for batch in dataset.iter_batches(batch_format="pyarrow", batch_size=EXPORT_BATCH_ROWS):
            for row in batch.to_pylist():
                count += 1
                if rows_out is not None:
                    line = Exporter._row_to_json_serializable({name: row[name] for name in row_columns})
                    rows_out.write(json.dumps(line, ensure_ascii=False) + "\n")
                if stats_out is not None:
                    line = Exporter._row_to_json_serializable({name: row[name] for name in stats_columns})
                    stats_out.write(json.dumps(line, ensure_ascii=False) + "\n")
    return count


def process_on_ray(job: JobRun, cfg: Any, stats_path: str) -> int:
    """Data-Juicer's RayExecutor on the recipe, inside ``ray_session``; the export written as the default
    executor writes it. Returns the number of rows."""
    from data_juicer.core.executor.ray_executor import RayExecutor

    executor = RayExecutor(cfg)
    job.log.info("processing %s with %d op(s) on Ray", cfg.dataset_path, len(cfg.process))
    dataset = executor.run(skip_export=True)
    return write_jsonl_like_exporter(
        dataset.data,
        cfg.export_path,
        stats_path,
        keep_stats=cfg.keep_stats_in_res_ds,
        keep_hashes=cfg.keep_hashes_in_res_ds,
    )


def analyse_on_ray(job: JobRun, cfg: Any, stats_path: str) -> None:
    """Data-Juicer's RayAnalyzer on the recipe, inside ``ray_session``; writes the stats file (and the dataset
    with its stats when the recipe sets export_original_dataset) as the default Analyzer does. Its overall
    table (no plots) is in dj_work/analysis."""
    from data_juicer.core.ray_analyzer import RayAnalyzer

    analyzer = RayAnalyzer(cfg)
    job.log.info("analysing %s with %d op(s) on Ray", cfg.dataset_path, len(cfg.process))
    dataset = analyzer.run(skip_export=True)
    export_path = cfg.export_path if cfg.export_original_dataset else None
    write_jsonl_like_exporter(dataset.data, export_path, stats_path, keep_stats=True, keep_hashes=False)
