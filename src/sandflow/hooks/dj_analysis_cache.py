"""Draw each Data-Juicer analysis figure once per work_dir: a figure whose stat column, settings and drawing code
an earlier job already drew is copied from <work_dir>/stats-cache/analysis/ (hooks/dj_figure_store.py).

How: while Data-Juicer's Analyzer runs, the classes it draws with are subclasses of its own.
``ColumnWiseAnalysis.draw_hist`` and ``draw_box`` (one PNG per stat and kind) and ``CorrelationAnalysis.analyze``
(one heatmap over the numeric stats) look up the figure's key; a stored figure is written where Data-Juicer would
save it, otherwise Data-Juicer draws it and its bytes are stored when the analysis finished. Data-Juicer's code
decides what is drawn and draws it; only the series it hands to a draw call (or the correlation's stats table) is
read, to key the figure.

A figure key is the sha256 of: the kind (hist, box, correlation and its method), a digest of the drawn data
(the stat's name, dtypes, index and values, exactly as handed to the draw call), the drawing settings, the
versions of py-data-juicer, matplotlib, pandas, numpy and Pillow, the sha256 of the source of the Data-Juicer
module that draws it (and of the Data-Juicer modules it names), of every matplotlib setting (rcParams: fonts,
dpi, ...; not the backend settings, see ``drawing_environment``) and of the font file matplotlib draws text with.
Not cached: word clouds (WordCloud places words at random, so they differ from run to run),
``save_stats_in_one_file: true`` (one figure of every stat), percentile lines, and the overall table (pandas'
describe, needed in memory by the other analyses; cheap).

An analysis whose figures are all stored does not import pyplot (0.2-0.3 s): the column-wise analysis's ``plt``
hands out matplotlib's rcParams (the object pyplot's are) and imports pyplot for anything else.

Matplotlib 3.11's PNGs hold no date, and a figure's bytes depend only on its data and settings once earlier
figures are closed: ``fresh_figures`` closes them around every analysis, with the cache on or off, so a job's
figures are the same bytes whatever ran before it in the process (a fresh job process has none open).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from sandflow.core.filehash import sha256_file
from sandflow.core.keys import canonical_json, library_version
from sandflow.core.layout import stats_cache_dir, work_dir_of_job_dir
from sandflow.core.replaced import replaced
from sandflow.hooks.base import JobRun
from sandflow.hooks.dj_covered_run import CANONICAL_ENCODER, plain_value
from sandflow.hooks.dj_figure_store import ANALYSIS_SUBDIR, FigureStore, size_line
from sandflow.hooks.dj_stats_cache import cache_off_reason, op_source_digest
from sandflow.hooks.hf_columns import whole_column

__all__ = ["analysis_cache", "fresh_figures", "series_digest"]

FORMAT = 2  # what a key covers; bump it when that changes
LIBRARIES = ("py-data-juicer", "matplotlib", "pandas", "numpy", "pillow")
FIGURE_SUFFIX = ".png"
COLUMN_WISE_MODULE = "data_juicer.analysis.column_wise_analysis"
CORRELATION_MODULE = "data_juicer.analysis.correlation_analysis"


def series_digest(data: Any) -> str | None:
    """sha256 of a pandas Series as a draw call sees it: name, dtypes, index and values. None when its values are
    not plain numbers, strings or JSON (another extension dtype, numpy scalars in an object column): such a figure
    is always drawn."""
    import numpy as np
    import pandas as pd

    index = data.index.to_numpy()
    if not isinstance(data.name, str) or index.dtype.kind not in "iu":
        return None
    if isinstance(data.dtype, np.dtype) and data.dtype.kind in "biuf":
        dtype, body = data.dtype.str, np.ascontiguousarray(data.to_numpy()).tobytes()
    elif (isinstance(data.dtype, np.dtype) and data.dtype.kind == "O") or isinstance(data.dtype, pd.StringDtype):
        dtype = data.dtype.str if isinstance(data.dtype, np.dtype) else f"{data.dtype!r}/{data.dtype.storage}"
        values = data.tolist()
        if not plain_value(values):
            return None
        # NaN (a missing string) is written NaN, None null: neither equals a string
        body = CANONICAL_ENCODER.encode(values).encode("utf-8", "surrogatepass")
    else:
        return None
    digest = hashlib.sha256(CANONICAL_ENCODER.encode([data.name, dtype, index.dtype.str, len(data)]).encode())
    digest.update(b"\0" + np.ascontiguousarray(index).tobytes() + b"\0" + body)
    return digest.hexdigest()


def frame_digest(frame: Any) -> str | None:
    """sha256 over a DataFrame's columns in order (their names and series_digest); None if one is not plain."""
    columns = [series_digest(frame[name]) for name in frame.columns]
    if any(column is None for column in columns) or frame.columns.has_duplicates:
        return None
    return hashlib.sha256(canonical_json(columns).encode()).hexdigest()


_font_digest = cache(sha256_file)


def drawing_environment(module_name: str) -> dict[str, Any] | None:
    """What a figure drawn by module_name depends on besides its data and settings, as it is right now; None when
    its PNG is not printed by Agg (a Cairo backend): such a figure is always drawn.

    The backend settings are left out of the key: savefig prints a PNG with Agg under the backend matplotlib picks
    by itself and under every other one but Cairo's. Reading the backend through rcParams would import pyplot to
    pick it, and ``matplotlib.use`` turns ``backend_fallback`` off, as sandflow's HPO report does in its process."""
    import matplotlib
    from matplotlib import font_manager

    settings = dict(dict.items(matplotlib.rcParams))  # as stored
    backend = settings.pop("backend")
    settings.pop("backend_fallback", None)
    if isinstance(backend, str) and "cairo" in backend.lower():
        return None
    return {
        "format": FORMAT,
        "libraries": {name: library_version(name) for name in LIBRARIES},
        "source": op_source_digest(module_name),
        "rc": hashlib.sha256(repr(sorted(settings.items())).encode()).hexdigest(),
        "font": _font_digest(font_manager.findfont(font_manager.FontProperties())),
    }


class PyplotWhenDrawing:
    """The column-wise analysis module's ``plt`` while an analysis runs through the cache: its ``rcParams`` are
    matplotlib's (the same object as pyplot's), anything else imports pyplot through Data-Juicer's lazy loader."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def __getattr__(self, name: str) -> Any:
        if name == "rcParams":
            import matplotlib

            return matplotlib.rcParams
        return getattr(self.loader, name)


class ColumnsReadOnce:
    """The analysed dataset as the analyses read it (``dataset[<column>]``), each column read once, in one batch.

    Each of Data-Juicer's three analyses reads the stats column, which Hugging Face datasets hands over as a lazy
    column formatted row by row (0.2-0.6 s per read of 3,000 rows on our loaded 2-core machine; 1.9 s per 25,000
    rows of stats quiet): the column is formatted once as one batch of the dataset less its other columns (0.4 s
    for those 25,000 rows), the same values in the same order, and kept for the other analyses."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset
        self.columns: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self.columns:
            value = self.dataset[name]
            lazy = isinstance(value, Sequence) and not isinstance(value, (list, str))
            self.columns[name] = whole_column(self.dataset, name) if lazy else value
        return self.columns[name]


@dataclass
class AnalysisCacheRun:
    """The figures of one Data-Juicer analysis: read from the store or drawn, and counted."""

    store: FigureStore
    from_cache: int = 0
    drawn: int = 0
    not_cacheable: int = 0
    read_once: ColumnsReadOnce | None = None

    def columns_of(self, dataset: Any) -> ColumnsReadOnce:
        if self.read_once is None or self.read_once.dataset is not dataset:
            self.read_once = ColumnsReadOnce(dataset)
        return self.read_once

    def figure(self, description: dict[str, Any], save_path: str, draw: Callable[[], Any]) -> Any:
        """Write the stored figure of this description to save_path, or draw it (and keep it to store)."""
        key = hashlib.sha256(canonical_json(description).encode()).hexdigest()[:32]
        stored = self.store.get(key, FIGURE_SUFFIX)
        if stored is not None:
            Path(save_path).write_bytes(stored)
            self.from_cache += 1
            return None
        result = draw()
        self.store.add(key, description, Path(save_path).read_bytes(), FIGURE_SUFFIX)
        self.drawn += 1
        return result

    def uncached(self, draw: Callable[[], Any]) -> Any:
        self.not_cacheable += 1
        return draw()

    def finish(self, log: Any) -> None:
        self.store.flush()
        for name in self.store.skipped:
            log.warning("analysis cache: skipped %s (its name is not the sha256 of its bytes)", name)
        for key in self.store.ambiguous:
            log.warning("analysis cache: %s holds different figures (drawing is not deterministic): drawn again", key)
        log.info(
            "analysis cache: %d figure(s) from cache, %d drawn and stored, %d not cacheable",
            self.from_cache,
            self.drawn,
            self.not_cacheable,
        )
        log.info("%s", size_line(self.store.directory))


def cached_analysis_classes(run: AnalysisCacheRun) -> dict[str, type]:
    """Data-Juicer's three analysis classes, reading the dataset's columns once and drawing through ``run``."""
    from data_juicer.analysis.column_wise_analysis import ColumnWiseAnalysis
    from data_juicer.analysis.correlation_analysis import CorrelationAnalysis
    from data_juicer.analysis.overall_analysis import OverallAnalysis

    class SharedOverallAnalysis(OverallAnalysis):
        def __init__(self, dataset: Any, *args: Any, **kwargs: Any) -> None:
            super().__init__(run.columns_of(dataset), *args, **kwargs)

    class CachedColumnWiseAnalysis(ColumnWiseAnalysis):
        def __init__(self, dataset: Any, *args: Any, **kwargs: Any) -> None:
            super().__init__(run.columns_of(dataset), *args, **kwargs)

        def _figure(self, kind: str, ax: Any, data: Any, save_path: str, percentiles: Any, show: bool) -> None:
            draw = functools.partial(
                getattr(ColumnWiseAnalysis, kind), self, ax, data, save_path, percentiles=percentiles, show=show
            )
            # One figure per file only: with save_stats_in_one_file Data-Juicer draws every stat into one figure.
            digest = None if ax is not None or show or percentiles is not None else series_digest(data)
            environment = None if digest is None else drawing_environment(COLUMN_WISE_MODULE)
            if environment is None:
                run.uncached(draw)
                return
            settings = {"save_stats_in_one_file": False, "percentiles": None, "font": self.font}
            run.figure({"figure": kind, "data": digest, "settings": settings, **environment}, save_path, draw)

        def draw_hist(self, ax: Any, data: Any, save_path: str, percentiles: Any = None, show: bool = False) -> None:
            self._figure("draw_hist", ax, data, save_path, percentiles, show)

        def draw_box(self, ax: Any, data: Any, save_path: str, percentiles: Any = None, show: bool = False) -> None:
            self._figure("draw_box", ax, data, save_path, percentiles, show)

        def draw_wordcloud(self, ax: Any, data: Any, save_path: str, show: bool = False) -> None:
            run.uncached(functools.partial(super().draw_wordcloud, ax, data, save_path, show=show))

    class CachedCorrelationAnalysis(CorrelationAnalysis):
        def __init__(self, dataset: Any, *args: Any, **kwargs: Any) -> None:
            super().__init__(run.columns_of(dataset), *args, **kwargs)

        def analyze(self, method: str = "pearson", show: bool = False, skip_export: bool = False) -> Any:
            draw = functools.partial(super().analyze, method=method, show=show, skip_export=skip_export)
            if skip_export or len(self.stats.columns) == 0:  # no figure
                return draw()
            digest = frame_digest(self.stats)
            environment = None if show or digest is None else drawing_environment(CORRELATION_MODULE)
            if environment is None:
                return run.uncached(draw)
            # Data-Juicer's own name for it (correlation_analysis.py); a test checks it is the file it writes.
            save_path = os.path.join(self.output_path, f"stats-corr-{method}.png")
            description = {"figure": f"correlation-{method}", "data": digest, **environment}
            drawn = run.figure(description, save_path, draw)
            return self.stats.corr(method) if drawn is None else drawn

    return {
        "OverallAnalysis": SharedOverallAnalysis,
        "ColumnWiseAnalysis": CachedColumnWiseAnalysis,
        "CorrelationAnalysis": CachedCorrelationAnalysis,
    }


def _close_figures() -> None:
    pyplot = sys.modules.get("matplotlib.pyplot")  # not imported: no figure is open
    if pyplot is not None:
        pyplot.close("all")


@contextlib.contextmanager
def fresh_figures() -> Iterator[None]:
    """No matplotlib figure open when the block starts or after it ends.

    Data-Juicer's histograms draw into pyplot's current figure: after an earlier analysis in the same process
    that is the last one drawn (the correlation heatmap), and every figure of the next analysis comes out
    different. Closed, each figure is the one a fresh process draws. Closing after frees the figures' memory."""
    _close_figures()
    try:
        yield
    finally:
        _close_figures()


@contextlib.contextmanager
def analysis_cache(job: JobRun) -> Iterator[None]:
    """Data-Juicer's Analyzer draws through the analysis cache inside this block.

    Analyzer.run names the analysis classes through its module's globals: they are replaced for the block and
    restored after (jobs run one per process, or one at a time in tests). The figures drawn are stored only when
    the block succeeds."""
    reason = cache_off_reason(job)
    if reason is not None:
        job.log.info("analysis cache off: %s", reason)
        yield
        return
    import data_juicer.analysis.column_wise_analysis as column_wise_module
    import data_juicer.core.analyzer as analyzer_module

    work_dir = work_dir_of_job_dir(str(job.job_dir))
    assert work_dir is not None
    run = AnalysisCacheRun(FigureStore(Path(stats_cache_dir(work_dir)) / ANALYSIS_SUBDIR, Path(work_dir)))
    pyplot = PyplotWhenDrawing(column_wise_module.plt)
    with replaced(analyzer_module, **cached_analysis_classes(run)), replaced(column_wise_module, plt=pyplot):
        yield
    run.finish(job.log)
