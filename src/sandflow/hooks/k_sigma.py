"""RefineRecipeViaKSigmaHook: rewrite each filter's min/max thresholds to mean -/+ k * std of its stat.

DJ-Sandbox delegates this to Data-Juicer's ``modify_recipe_k_sigma``, which
finds an op's stats keys through ``StatsKeys.get_access_log``: under
py-data-juicer 1.6.1 that crashes, under 1.4.4 it silently returns the recipe
unchanged. We implement the documented rule ourselves, with the op -> stats
key mapping written out in ``THRESHOLDS`` (hooks/k_sigma_thresholds.py: text,
image, video and audio filters; checked against Data-Juicer's ``StatsKeys`` and
each op's signature by tests/unit/hooks/test_dj_hooks.py).

The rule, for each op of ``process`` that appears in ``THRESHOLDS`` and whose
stat is in the probe job's ``stats_summary.json``:

* every min argument becomes ``mean - k * std`` and every max argument
  ``mean + k * std`` (k from ``extra_configs.k``, default 3, as upstream);
* every threshold argument the op accepts is set, also those the recipe leaves
  at their default (a recipe giving only ``min_len`` also gets ``max_len``):
  the refined recipe then states every threshold the data was filtered with;
* each value is clipped to the stat's observed ``[min, max]`` (upstream wrote
  ``min_len: -1348.35``), so a threshold never lies outside the data;
* integer arguments (``min_len``, ``max_num``, ...) stay integers: a min is
  rounded down and a max up, so rounding never drops a sample that the
  unrounded threshold keeps (Data-Juicer's intervals are closed by default);
* an op with ``reversed_range: true`` or open intervals is left unchanged (the
  rule assumes it keeps the samples inside [min, max]); so is an argument whose
  stat has no std (fewer than two samples).

Nothing else in the recipe changes, except ``skip_op_error: false`` (a failing
op must fail the run instead of silently dropping samples). The job also writes
``k_sigma_changes.csv`` / ``.md``: one row per threshold argument considered,
and one per other filter of the recipe, left unchanged with the reason
(``unrefined_reason``); those filters are also named in one warning line, in
the job log and on stderr.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sandflow.core.atomic import write_text_atomic
from sandflow.core.jobio import terminal_note
from sandflow.hooks.base import JobRun
from sandflow.hooks.k_sigma_thresholds import THRESHOLDS, Threshold, unrefined_reason

STATS_SUMMARY = "stats_summary.json"
CHANGES_CSV = "k_sigma_changes.csv"
CHANGES_MD = "k_sigma_changes.md"
DEFAULT_K = 3.0


@dataclass(frozen=True)
class Change:
    """One threshold argument considered by the refinement (a row of k_sigma_changes.*)."""

    op_index: int
    op: str
    arg: str
    stat: str
    before: Any  # the recipe's value, or the op's default when the recipe leaves it out
    before_is_default: bool
    after: Any  # == before when unchanged
    mean: float | None
    std: float | None
    observed_min: float | None
    observed_max: float | None
    note: str = ""


def thresholds_for(op_name: str, args: Mapping[str, Any]) -> tuple[Threshold, ...]:
    """The threshold arguments of one op as configured (alphanumeric_filter depends on tokenization)."""
    tokenization = bool(args.get("tokenization", False))
    return tuple(t for t in THRESHOLDS.get(op_name, ()) if t.tokenization is None or t.tokenization == tokenization)


def k_sigma_value(threshold: Threshold, summary: Mapping[str, Any], k: float) -> int | float | str:
    """mean -/+ k*std, clipped to the observed range; integers rounded outwards (min down, max up)."""
    mean, std = float(summary["mean"]), float(summary["std"])
    low, high = float(summary["min"]), float(summary["max"])
    value = mean - k * std if threshold.bound == "min" else mean + k * std
    return threshold.written(min(max(value, low), high))


def recipe_ops(recipe: dict[str, Any]) -> Iterator[tuple[int, dict[str, Any], str, dict[str, Any]]]:
    """(index, entry, op name, arguments) of every op of a recipe's ``process``; None arguments read as {}."""
    process = recipe.get("process") or []
    if not isinstance(process, list):
        raise ValueError(f"dj_configs.process must be a list of ops, got {type(process).__name__}")
    for index, entry in enumerate(process):
        if not isinstance(entry, dict) or len(entry) != 1:
            raise ValueError(f"dj_configs.process[{index}] must be a mapping with one op name, got {entry!r}")
        ((op_name, args),) = entry.items()
        args = {} if args is None else args
        if not isinstance(args, dict):
            raise ValueError(f"dj_configs.process[{index}].{op_name} must be a mapping of arguments, got {args!r}")
        yield index, entry, op_name, args


def refine_recipe(
    recipe: Mapping[str, Any], stats_summary: Mapping[str, Mapping[str, Any]], k: float = DEFAULT_K
) -> tuple[dict[str, Any], list[Change]]:
    """The refined recipe (a new dict) and every threshold argument considered."""
    refined = copy.deepcopy(dict(recipe))
    changes: list[Change] = []
    for index, entry, op_name, args in recipe_ops(refined):
        skipped_reason = ""
        open_interval = args.get("min_closed_interval") is False or args.get("max_closed_interval") is False
        if args.get("reversed_range") or open_interval:
            skipped_reason = "op keeps samples outside [min, max] or uses open intervals: left unchanged"
        changed = False
        reason = unrefined_reason(op_name)
        if reason is not None:
            changes.append(unrefined(index, op_name, reason))
        for threshold in thresholds_for(op_name, args):
            summary = stats_summary.get(threshold.stat)
            row = change_row(index, op_name, args, threshold, summary or {})
            before = row["before"]
            if summary is None:
                note = f"stat {threshold.stat} not in the analysis: unchanged"
                changes.append(Change(after=before, note=note, **row))
                continue
            if skipped_reason:
                changes.append(Change(after=before, note=skipped_reason, **row))
                continue
            if not _finite(summary.get("std")) or not all(_finite(summary.get(f)) for f in ("mean", "min", "max")):
                changes.append(Change(after=before, note="std undefined (fewer than 2 samples): unchanged", **row))
                continue
            after = k_sigma_value(threshold, summary, k)
            args[threshold.arg] = after
            changed = True
            changes.append(Change(after=after, **row))
        if changed:
            entry[op_name] = args
    refined["skip_op_error"] = False
    return refined, changes


def unrefined(index: int, op_name: str, reason: str) -> Change:
    """The row of a filter the refinement leaves as it is (no argument of it is a threshold it knows)."""
    return Change(index, op_name, "", "", None, False, None, None, None, None, None, f"unchanged: {reason}")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


COLUMNS = (
    "op_index",
    "op",
    "argument",
    "stat",
    "before",
    "after",
    "mean",
    "std",
    "observed_min",
    "observed_max",
    "note",
)


def _row(change: Change) -> list[Any]:
    before = f"{change.before} (default)" if change.before_is_default else change.before
    return [
        change.op_index,
        change.op,
        change.arg,
        change.stat,
        before,
        change.after,
        change.mean,
        change.std,
        change.observed_min,
        change.observed_max,
        change.note,
    ]


def changes_csv(changes: list[Change]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(_row(c) for c in changes)
    return out.getvalue()


def changes_markdown(changes: list[Change], heading: tuple[str, ...]) -> str:
    """A Markdown table of the changes under a title line and a few lines saying the rule."""
    lines = [heading[0], "", *heading[1:], "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for change in changes:
        cells = ["" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v)) for v in _row(change)]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    if not changes:
        lines.append("| " + " | ".join([""] * len(COLUMNS)) + " |")
    return "\n".join(lines) + "\n"


def load_stats_summary(analysis_dir: Path) -> dict[str, dict[str, Any]]:
    path = Path(analysis_dir) / STATS_SUMMARY
    if not path.is_file():
        raise FileNotFoundError(f"k-sigma refinement needs the probe job's {STATS_SUMMARY}, not found at {path}")
    with open(path) as handle:
        return json.load(handle)


def change_row(
    index: int, op_name: str, args: Mapping[str, Any], threshold: Threshold, stats: Mapping[str, Any]
) -> dict[str, Any]:
    """A Change's fields but the outcome: the threshold before refinement and the stat it is refined from."""
    before_is_default = threshold.arg not in args
    return dict(
        op_index=index,
        op=op_name,
        arg=threshold.arg,
        stat=threshold.stat,
        before=threshold.default if before_is_default else args[threshold.arg],
        before_is_default=before_is_default,
        mean=stats.get("mean"),
        std=stats.get("std"),
        observed_min=stats.get("min"),
        observed_max=stats.get("max"),
    )


def refine_recipe_via_k_sigma(job: JobRun) -> str:
    """RefineRecipeViaKSigmaHook: write the refined recipe to extra_configs.path_k_sigma_recipe and return that path."""
    extra, target = refinement_target(job, "RefineRecipeViaKSigmaHook", "path_k_sigma_recipe", "the recipe to refine")
    k = extra.get("k", DEFAULT_K)
    if isinstance(k, bool) or not isinstance(k, (int, float)) or not math.isfinite(k) or k < 0:
        raise ValueError(f"extra_configs.k must be a non-negative number, got {k!r}")
    if "analysis" not in job.linked_jobs:
        raise ValueError("RefineRecipeViaKSigmaHook needs the analysis of the probe job sharing its meta_name")
    summary = load_stats_summary(job.linked_jobs["analysis"])
    refined, changes = refine_recipe(job.dj_configs, summary, float(k))

    left_alone = [change.op for change in changes if not change.arg]
    if left_alone:
        # One line where a user looks (the job log and the console); the reasons are in the change table.
        warning = f"k-sigma: left unchanged, no k-sigma rule: {', '.join(left_alone)} (why: {CHANGES_MD})"
        job.log.warning("%s", warning)
        terminal_note(f"sandflow: warning: {warning}")
    for change in changes:
        if not change.arg:
            continue
        if change.note:
            job.log.info("k-sigma: %s.%s: %s", change.op, change.arg, change.note)
        else:
            job.log.info(
                "k-sigma: %s.%s: %r -> %r (stat %s: mean %.6g, std %.6g, observed [%g, %g])",
                change.op,
                change.arg,
                change.before,
                change.after,
                change.stat,
                change.mean,
                change.std,
                change.observed_min,
                change.observed_max,
            )
    heading = (
        f"# k-sigma refinement (k = {float(k):g})",
        "Each threshold becomes mean -/+ k * std of its stat, clipped to the observed [min, max];",
        "integer thresholds are rounded outwards (min down, max up).",
    )
    tables = (CHANGES_CSV, CHANGES_MD)
    return write_refinement(job, refined, changes, (tables, heading), target, "extra_configs.path_k_sigma_recipe")


def refinement_target(job: JobRun, hook: str, key: str, recipe: str) -> tuple[dict[str, Any], str]:
    """A refine hook's extra_configs and where its refined recipe goes (extra_configs.<key>)."""
    extra = job.extra_configs or {}
    target = extra.get(key)
    if not target:
        raise ValueError(f"{hook} needs extra_configs.{key}")
    if not isinstance(job.dj_configs, dict):
        raise ValueError(f"{hook} needs dj_configs: {recipe}")
    return extra, target


def write_refinement(
    job: JobRun,
    refined: dict[str, Any],
    changes: list[Change],
    table: tuple[tuple[str, str], tuple[str, ...]],
    target: str,
    where: str,
) -> str:
    """The change table (CSV and Markdown files, the Markdown's heading) in the job directory, then the recipe."""
    text = dump_recipe(refined, target, where)
    (csv_name, markdown_name), heading = table
    write_text_atomic(Path(job.job_dir) / csv_name, changes_csv(changes))
    write_text_atomic(Path(job.job_dir) / markdown_name, changes_markdown(changes, heading))
    write_text_atomic(Path(target), text)
    return str(target)


def dump_recipe(recipe: Mapping[str, Any], target: str, where: str) -> str:
    """The recipe as text in the format its target file's suffix names."""
    suffix = Path(target).suffix
    if suffix in (".yaml", ".yml"):
        return yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True)
    if suffix == ".json":
        return json.dumps(recipe, indent=2, ensure_ascii=False) + "\n"
    raise ValueError(f"{where} must end with .yaml, .yml or .json: {target}")
