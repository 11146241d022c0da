"""The flagship recipe search's results, as people want to read them: tables, two plots and the final recipe.

    python -m sandflow.report.recipe_search outputs/paper      # after the run of configs/paper/recipe_search.yaml

Reads ``<work_dir>/context_infos.json`` (the pipelines single_op, multi_op,
duplicate and baseline of that config, by their meta_names) and writes
``<work_dir>/report/summary.md``, ``single_op_perplexity.png`` and
``perplexity_vs_duplication.png``. Where samples carry ``meta.kind`` (the
generated flagship data does), each pool's share of clean samples is shown:
the truth the search should recover.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sandflow.core.atomic import write_text_atomic

REPORT_DIR = "report"


def job_infos(context_infos: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(pipeline, meta_name) -> that job's outputs, from the last iteration."""
    jobs = {}
    for pipeline in context_infos[-1]["pipeline_infos"]:
        for info in pipeline["job_infos"]:
            jobs[(pipeline["pipeline_name"], info["meta_name"])] = info
    return jobs


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def pool_facts(path: Path) -> dict[str, Any]:
    """Size and share of clean samples (None when samples do not say) of one pool file."""
    kinds = [
        json.loads(line).get("meta", {}).get("kind") for line in path.read_text(encoding="utf-8").split("\n") if line
    ]
    known = [kind for kind in kinds if kind is not None]
    return {"size": len(kinds), "clean": sum(kind == "clean" for kind in known) / len(known) if known else None}


def rows_for(pools: list[str], metrics: list[dict[str, Any]], root: Path) -> list[dict[str, Any]]:
    if len(pools) != len(metrics):
        raise ValueError(f"{len(pools)} pools but {len(metrics)} evaluation results")
    return [
        {
            "pool": Path(pool).stem,
            **pool_facts(root / pool),
            "perplexity": result["perplexity"],
            "token_accuracy": result["token_accuracy"],
        }
        for pool, result in zip(pools, metrics)
    ]


def table(rows: list[dict[str, Any]], first_column: str = "pool") -> str:
    header = (
        f"| {first_column} | samples | clean share | perplexity | next-token accuracy |\n|---|---:|---:|---:|---:|\n"
    )
    lines = []
    for row in rows:
        clean = "" if row["clean"] is None else f"{row['clean']:.0%}"
        lines.append(
            f"| {row['pool']} | {row['size']} | {clean} | {row['perplexity']:.2f} | {row['token_accuracy']:.3f} |"
        )
    return header + "\n".join(lines) + "\n"


def plot_bars(rows: list[dict[str, Any]], baseline: float, path: Path) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 4.5))
    axes = figure.subplots()
    axes.bar(range(len(rows)), [r["perplexity"] for r in rows], color="#4c72b0")
    axes.axhline(baseline, color="#c44e52", linestyle="--", label="random pool of the same size")
    axes.set_xticks(range(len(rows)), [r["pool"] for r in rows], rotation=60, ha="right", fontsize=7)
    axes.set_ylabel("held-out perplexity (lower is better)")
    axes.set_title("Single-op pools, ranked")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, metadata={"Software": None})


def plot_duplication(factors: list[int], perplexities: list[float], path: Path) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5, 3.5))
    axes = figure.subplots()
    axes.plot(factors, perplexities, marker="o")
    axes.set_xscale("log", base=2)
    axes.set_xticks(factors, [f"x{f}" for f in factors])
    axes.set_xlabel("duplication factor of the best pool")
    axes.set_ylabel("held-out perplexity")
    axes.set_title("Metric vs duplication")
    figure.tight_layout()
    figure.savefig(path, metadata={"Software": None})


def summarize(work_dir: Path, root: Path = Path(".")) -> str:
    """Write the report files under work_dir/report; return the Markdown summary."""
    jobs = job_infos(json.loads((work_dir / "context_infos.json").read_text()))

    def evaluated(pipeline: str, pools_job: str, pools_output: str) -> list[dict[str, Any]]:
        """One row per pool a pipeline built, with the metrics of its evaluate job."""
        pools = as_list(jobs[(pipeline, pools_job)][pools_output])
        return rows_for(pools, as_list(jobs[(pipeline, "evaluate")]["metrics"]), root)

    by_perplexity = lambda row: row["perplexity"]
    single = sorted(evaluated("single_op", "equalise", "equal_pools"), key=by_perplexity)
    multi = sorted(evaluated("multi_op", "combine", "combined_pools"), key=by_perplexity)
    duplicated = evaluated("duplicate", "duplicate", "duplicated_pools")
    baseline = evaluated("baseline", "random_pool", "random_pool")[0]
    factors = [int(row["pool"].rsplit("_x", 1)[1]) for row in duplicated]
    recipe_path = root / jobs[("duplicate", "final_recipe")]["final_recipe"]

    out = work_dir / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    plot_bars(single, baseline["perplexity"], out / "single_op_perplexity.png")
    plot_duplication(factors, [row["perplexity"] for row in duplicated], out / "perplexity_vs_duplication.png")
    best_single, best_multi = single[0], multi[0]
    best_dup = min(duplicated, key=by_perplexity)
    summary = "\n".join(
        [
            "# Bottom-up recipe search: results",
            "",
            f"* Best single-op pool: **{best_single['pool']}** (perplexity {best_single['perplexity']:.2f}); "
            f"a random pool of the same size: {baseline['perplexity']:.2f}.",
            f"* Best combination: **{best_multi['pool']}** (perplexity {best_multi['perplexity']:.2f}, "
            f"{best_multi['size']} samples).",
            f"* Best duplication of it: **x{factors[duplicated.index(best_dup)]}** (perplexity {best_dup['perplexity']:.2f}).",
            "",
            "## Stage 1: single-op pools (equal size), best first",
            "",
            table(single),
            "![single-op pools](single_op_perplexity.png)",
            "",
            "## Baseline: a random pool of the same size",
            "",
            table([baseline]),
            "## Stage 2: combinations of the top pools, best first",
            "",
            table(multi),
            "## Stage 3: the best combination, duplicated",
            "",
            table(duplicated),
            "![perplexity vs duplication](perplexity_vs_duplication.png)",
            "",
            "## The final recipe (the best combination's stat ranges)",
            "",
            "```yaml",
            recipe_path.read_text(encoding="utf-8").rstrip(),
            "```",
            "",
        ]
    )
    write_text_atomic(out / "summary.md", summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sandflow.report.recipe_search", description=__doc__.splitlines()[0]
    )
    parser.add_argument("work_dir", type=Path, help="the work_dir of configs/paper/recipe_search.yaml")
    args = parser.parse_args(argv)
    if not (args.work_dir / "context_infos.json").is_file():
        print(f"recipe_search: error: no context_infos.json in {args.work_dir}: run the search first", file=sys.stderr)
        return 2
    print(summarize(args.work_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
