"""The results of an hpo_config search: the best trial, a table of every trial, a plot of the metric.

Writes ``<work_dir>/hpo/best.json`` ({trial, params, metric: {name, goal, value}}, and with a
``metric.target`` {target: {value, reached_by}}: the first trial, in trial order, that reached it),
``hpo/trials.csv`` (one row per trial: its number, parameter values and metric) and
``hpo/metric.png`` (the metric per trial, the best marked). A trial whose metric is not a number
(a failed evaluation writes none) is listed but never best.
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from sandflow.config.hpo_spec import reaches_target
from sandflow.core.atomic import write_text_atomic


def metric_value(context_path: str, index: int) -> float | None:
    with open(context_path) as handle:
        value = json.load(handle)["values"][index]
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def trial_results(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"trial": trial["number"], "params": trial["values"], "value": metric_value(trial["context"], trial["index"])}
        for trial in spec["trials"]
    ]


def best_of(results: list[dict[str, Any]], goal: str) -> dict[str, Any] | None:
    """The best trial; ties go to the earliest, as a search would have found it first."""
    scored = [r for r in results if r["value"] is not None]
    if not scored:
        return None
    sign = -1 if goal == "maximize" else 1
    return min(scored, key=lambda r: (sign * r["value"], r["trial"]))


def first_at_target(results: list[dict[str, Any]], goal: str, target: float) -> int | None:
    """The first trial, in trial order, whose metric reached the target (all were planned and run: grid and
    random are planned whole, and a bayes search stops asking once one reaches it)."""
    return next((r["trial"] for r in results if reaches_target(goal, target, r["value"])), None)


def trials_table(results: list[dict[str, Any]], names: list[str], metric: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["trial", *names, metric])
    for result in results:
        writer.writerow(
            [
                result["trial"],
                *(json.dumps(result["params"][n]) for n in names),
                "" if result["value"] is None else repr(result["value"]),
            ]
        )
    return out.getvalue()


def plot_metric(results: list[dict[str, Any]], best: dict[str, Any] | None, metric: str, goal: str, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = [r for r in results if r["value"] is not None]
    figure, axes = plt.subplots(figsize=(max(4.0, 0.35 * len(results) + 2), 3.2), dpi=100)
    axes.plot([r["trial"] for r in scored], [r["value"] for r in scored], "o-", color="#4477aa")
    if best is not None:
        axes.plot([best["trial"]], [best["value"]], "*", color="#cc3311", markersize=14)
    axes.set_xlabel("trial")
    axes.set_ylabel(metric.rsplit(".", 1)[-1])
    axes.set_title(f"{metric} per trial (star: best, {goal})", fontsize="medium")
    figure.tight_layout()
    figure.savefig(path, metadata={"Software": None})  # no version string: the same results give the same bytes
    plt.close(figure)


def summarise(spec: dict[str, Any], best_path: str, table_path: str, plot_path: str) -> dict[str, Any]:
    """Writes the three files; returns best.json's record."""
    results = trial_results(spec)
    best = best_of(results, spec["goal"])
    names = spec["parameters"]
    write_text_atomic(table_path, trials_table(results, names, spec["metric"]), sole_writer=True)
    plot_metric(results, best, spec["metric"], spec["goal"], plot_path)
    record = {
        "trial": None if best is None else best["trial"],
        "params": None if best is None else best["params"],
        "metric": {"name": spec["metric"], "goal": spec["goal"], "value": None if best is None else best["value"]},
        "trials": len(results),
    }
    if spec.get("target") is not None:
        reached_by = first_at_target(results, spec["goal"], spec["target"])
        record["target"] = {"value": spec["target"], "reached_by": reached_by}
    write_text_atomic(best_path, json.dumps(record, indent=2) + "\n", sole_writer=True)
    return record
