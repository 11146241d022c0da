"""RefineRecipeViaModelFeedbackHook: turn the pools a model liked best back into a recipe.

Upstream this hook is a stub. Here it closes the paper's loop: pools were built
from analysed stats (each sample carries Data-Juicer's ``__dj__stats__``) and
ranked by a model metric; given the best-ranked pool(s) in
``extra_configs.dataset_path`` and the recipe whose ops produced those stats in
``dj_configs``, every threshold argument of every op whose stat the pools hold
becomes the stat's observed range over those pools: min arguments the observed
minimum, max arguments the observed maximum (integers rounded outwards, so the
recipe keeps every sample of the pools). Processing the original data with the
refined recipe then keeps the region of stat space the model did best on.

Ops with ``reversed_range`` or open intervals are left unchanged, as in the
k-sigma hook (``sandflow.hooks.k_sigma``), whose op -> stat table this uses.
The recipe goes to ``extra_configs.path_model_feedback_recipe``; the job also
writes ``model_feedback_changes.csv`` / ``.md``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sandflow.hooks.base import JobRun
from sandflow.hooks.data_juicer import summarise_stats
from sandflow.hooks.k_sigma import Change, change_row, recipe_ops, refinement_target, thresholds_for, write_refinement

CHANGES_CSV = "model_feedback_changes.csv"
CHANGES_MD = "model_feedback_changes.md"
HEADING = (
    "# Model-feedback refinement",
    "Each threshold becomes its stat's observed [min, max] over extra_configs.dataset_path (the best-ranked",
    "pool(s); in the single-file form the model's answers, or without a model the analysed data itself);",
    "integer thresholds are rounded outwards (min down, max up).",
)


def pool_paths(value: Any) -> list[str]:
    """A path, a list of paths or a list of lists (as refs pass pools), flattened in order."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        return [path for item in value for path in pool_paths(item)]
    raise ValueError(f"extra_configs.dataset_path must be the best-ranked pool path(s), got {value!r}")


def observed_ranges(paths: list[str]) -> dict[str, dict[str, float]]:
    """{stat: {"min", "max"}} over every sample of every pool."""
    ranges: dict[str, dict[str, float]] = {}
    for path in paths:
        if not Path(path).is_file():
            raise FileNotFoundError(f"extra_configs.dataset_path: pool {path} does not exist")
        for stat, summary in summarise_stats(path).items():
            known = ranges.setdefault(stat, {"min": summary["min"], "max": summary["max"]})
            known["min"], known["max"] = min(known["min"], summary["min"]), max(known["max"], summary["max"])
    if not ranges:
        raise ValueError(
            f"extra_configs.dataset_path: no sample of {', '.join(paths)} carries Data-Juicer stats "
            f"(__dj__stats__); build the pools from an analysed dataset"
        )
    return ranges


def refine_to_ranges(
    recipe: Mapping[str, Any], ranges: Mapping[str, Mapping[str, float]]
) -> tuple[dict[str, Any], list[Change]]:
    refined = copy.deepcopy(dict(recipe))
    changes: list[Change] = []
    for index, entry, op_name, args in recipe_ops(refined):
        args = dict(args)
        keeps_outside = (
            args.get("reversed_range")
            or args.get("min_closed_interval") is False
            or args.get("max_closed_interval") is False
        )
        for threshold in thresholds_for(op_name, args):
            observed = ranges.get(threshold.stat)
            row = change_row(index, op_name, args, threshold, observed or {})
            before = row["before"]
            if observed is None:
                changes.append(Change(after=before, note=f"stat {threshold.stat} not in the pools: unchanged", **row))
                continue
            if keeps_outside:
                changes.append(Change(after=before, note="op keeps samples outside [min, max]: unchanged", **row))
                continue
            value = threshold.written(float(observed[threshold.bound]))
            args[threshold.arg] = value
            changes.append(Change(after=value, **row))
        entry[op_name] = args
    refined["skip_op_error"] = False
    return refined, changes


def refine_recipe_via_model_feedback(job: JobRun) -> str:
    """Write the recipe refined to the best pools' stat ranges; return its path."""
    extra, target = refinement_target(
        job, "RefineRecipeViaModelFeedbackHook", "path_model_feedback_recipe", "the recipe whose stats built the pools"
    )
    paths = pool_paths(extra.get("dataset_path"))
    refined, changes = refine_to_ranges(job.dj_configs, observed_ranges(paths))
    for change in changes:
        job.log.info(
            "model feedback: %s.%s: %r -> %r %s", change.op, change.arg, change.before, change.after, change.note
        )
    table = ((CHANGES_CSV, CHANGES_MD), HEADING)
    return write_refinement(job, refined, changes, table, target, "extra_configs.path_model_feedback_recipe")
