"""Tables and plots that data-pool jobs leave in ``<job_dir>/plots/`` (DJ-Sandbox writes none).

* data_pool_ranking: ``ranking.csv`` and ``ranking.md`` (one row per pool, in
  ranked order) and ``ranking.png`` (one bar chart per numeric ranking key);
* data_pool_construction: ``<base>/<stats_key>_hist.png``, the histogram of the
  value each sample was sorted by, with the split points marked.

They live in the job directory, not next to the pools under export_path, so
the published export directory holds exactly the files DJ-Sandbox writes
there (a later job reading that directory sees pools only).

matplotlib is imported inside the functions (Agg canvas, no pyplot state).
PNGs carry no software/date metadata, so the same data gives the same bytes.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PLOTS_DIR = "plots"
PNG_METADATA = {"Software": None}  # keep matplotlib's version out of the bytes


@dataclass(frozen=True)
class RankedPool:
    rank: int  # 1-based position after sorting
    path: str
    metric: dict[str, Any]  # ranking key (or "metric") -> value used for ranking
    selected: bool  # within top_n


def _cell(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)


def save_png(figure: Any, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, format="png", metadata=PNG_METADATA)


def write_ranking_report(out_dir: Path, pools: Sequence[RankedPool], keys: Sequence[str]) -> list[Path]:
    """ranking.csv, ranking.md and ranking.png in out_dir; returns their paths."""
    header = ["rank", "pool", *keys, "selected", "path"]
    rows = [
        [str(p.rank), Path(p.path).name, *(_cell(p.metric[k]) for k in keys), str(p.selected).lower(), p.path]
        for p in pools
    ]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([header, *rows])
    csv_path, md_path, png_path = out_dir / "ranking.csv", out_dir / "ranking.md", out_dir / "ranking.png"
    _write(csv_path, buffer.getvalue())
    escape = str.maketrans({"|": "\\|", "\n": " "})
    md_lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md_lines += ["| " + " | ".join(cell.translate(escape) for cell in row) + " |" for row in rows]
    _write(md_path, "\n".join(md_lines) + "\n")
    _plot_ranking(png_path, pools, keys)
    return [csv_path, md_path, png_path]


def _plot_ranking(path: Path, pools: Sequence[RankedPool], keys: Sequence[str]) -> None:
    from matplotlib.figure import Figure

    numeric = [k for k in keys if all(_is_number(p.metric[k]) for p in pools)]
    labels = [f"#{p.rank} {Path(p.path).name}" for p in pools]
    height = 1.2 + 0.35 * len(pools)
    figure = Figure(figsize=(8, height * max(1, len(numeric))), dpi=100)
    # fixed margins: a layout engine would cost a second draw (slow on a loaded 2-core machine)
    figure.subplots_adjust(left=0.4, right=0.97, hspace=0.6)
    if not numeric:
        figure.text(0.5, 0.5, "no numeric ranking metric to plot", ha="center", va="center")
    axes = figure.subplots(len(numeric), 1, squeeze=False)[:, 0] if numeric else []
    for position, (ax, key) in enumerate(zip(axes, numeric)):
        colours = ["tab:blue" if p.selected else "tab:gray" for p in pools]
        ax.barh(range(len(pools)), [p.metric[key] for p in pools], color=colours)
        ax.set_yticks(range(len(pools)), labels, fontsize=7)
        ax.invert_yaxis()  # rank 1 on top
        ax.set_xlabel(key)
        if position == 0:
            ax.set_title(f"data pools ranked by {', '.join(keys)} (blue: selected)", fontsize=9)
    save_png(figure, path)


def plot_stat_histogram(
    path: Path, values: Sequence[float], boundaries: Sequence[tuple[int, float]], stats_key: str, what: str
) -> None:
    """Histogram of one stat over a dataset; a dashed line at (pool index, its first value) for each split point."""
    from matplotlib.figure import Figure

    finite = [v for v in values if math.isfinite(v)]
    figure = Figure(figsize=(7, 4), dpi=100)
    ax = figure.subplots()
    figure.subplots_adjust(left=0.12, right=0.97, bottom=0.13, top=0.9)
    ax.hist(finite, bins=min(50, max(1, len(set(finite)))), color="tab:blue")
    for index, value in boundaries:
        if not math.isfinite(value):
            continue
        ax.axvline(value, color="tab:red", linestyle="--", linewidth=1)
        ax.annotate(
            f"pool {index} starts",
            (value, 1),
            xycoords=("data", "axes fraction"),
            xytext=(-2, -3),
            textcoords="offset points",
            fontsize=7,
            rotation=90,
            ha="right",
            va="top",
            color="tab:red",
        )
    ax.set_xlabel(what)
    ax.set_ylabel("samples")
    ax.set_title(f"{stats_key}: {len(finite)} sample(s), {len(boundaries)} split point(s)", fontsize=9)
    save_png(figure, path)
