"""The Data-Juicer recipe settings (dj_configs) that sandflow decides, and why: docs/hooks.md, "What sandflow
controls in a Data-Juicer recipe, and why".

A value sandflow will not run is refused when the config is planned, in one line naming its place
(``refused_setting``); one it accepts but that changes nothing here is said in a note before the run
(``setting_notes``). Data-Juicer hooks apply the same decisions when they run (hooks/data_juicer.py), for
recipes that exist only then (a refined recipe, an iter_updater value).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from sandflow.config.errors import describe_value

# What a Data-Juicer run gets when the recipe leaves these out (Data-Juicer's own defaults: true, true, 0).
RUN_DEFAULTS: dict[str, Any] = {"skip_op_error": False, "use_cache": False, "export_shard_size": 0}

SKIP_OP_ERROR = (
    "an op that fails would drop the samples it failed on and the job would still succeed; sandflow runs every "
    "op with skip_op_error false, so a failing op fails its job: remove it or write false"
)
EXPORT_SHARD_SIZE = (
    "sandflow exports one file, export_path, which later jobs read as one path (Data-Juicer would write "
    "<base>-NN-of-MM shards instead): remove it or write 0"
)
OP_FUSION = (
    "Data-Juicer's fusion reorders the filters (by their measured speed with the default fusion_strategy probe), "
    "so a job's stats file differs from run to run, and its fused filters import PyAV; remove it (sandflow's "
    "stats cache computes each stat once instead)"
)
TRACER_ON_RAY = (
    "with executor_type ray Data-Juicer's tracer keeps the first trace_num samples to reach it from parallel "
    "blocks, which differ between runs; trace with the default executor"
)
USE_CACHE = (
    "true changes nothing here: sandflow reuses a finished job by its key, and Data-Juicer's datasets cache "
    "would last only the job's own run, so it runs with use_cache false"
)
CACHE_COMPRESS = "changes nothing here: it compresses Data-Juicer's datasets cache, which is off (use_cache false)"


def _op_arguments(recipe: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(place under dj_configs, arguments) of each well-formed op of the recipe's process list."""
    process = recipe.get("process")
    for index, entry in enumerate(process if isinstance(process, list) else []):
        if isinstance(entry, Mapping) and len(entry) == 1:
            ((name, args),) = entry.items()
            if isinstance(args, Mapping):
                yield f"process[{index}].{name}", args


def refused_setting(recipe: Any) -> tuple[str, str] | None:
    """(place under dj_configs, why) of the first setting sandflow will not run, or None."""
    if not isinstance(recipe, Mapping):
        return None
    if recipe.get("skip_op_error", False) is not False:
        return "skip_op_error", f"is {describe_value(recipe['skip_op_error'])}: {SKIP_OP_ERROR}"
    for place, args in _op_arguments(recipe):
        if args.get("skip_op_error", False) is not False:
            return f"{place}.skip_op_error", f"is {describe_value(args['skip_op_error'])}: {SKIP_OP_ERROR}"
    shard_size = recipe.get("export_shard_size", 0)
    if shard_size != 0 or isinstance(shard_size, bool):
        return "export_shard_size", f"is {describe_value(shard_size)}: {EXPORT_SHARD_SIZE}"
    if recipe.get("op_fusion", False) is not False:
        return "op_fusion", f"is {describe_value(recipe['op_fusion'])}: {OP_FUSION}"
    tracer = recipe.get("open_tracer", False)
    if not isinstance(tracer, bool):
        return "open_tracer", f"must be true or false, got {describe_value(tracer)}"
    if tracer and recipe.get("executor_type") == "ray":
        return "open_tracer", TRACER_ON_RAY
    trace_num = recipe.get("trace_num", 1)
    if tracer and (isinstance(trace_num, bool) or not isinstance(trace_num, int) or trace_num < 1):
        return "trace_num", f"must be a positive whole number of samples per op, got {describe_value(trace_num)}"
    return None


def setting_notes(recipe: Any) -> list[tuple[str, str]]:
    """(place under dj_configs, note) of each setting the recipe gives that changes nothing here."""
    if not isinstance(recipe, Mapping):
        return []
    notes = []
    if recipe.get("use_cache") is True:
        notes.append(("use_cache", USE_CACHE))
    if recipe.get("cache_compress") is not None:
        notes.append(("cache_compress", CACHE_COMPRESS))
    return notes
