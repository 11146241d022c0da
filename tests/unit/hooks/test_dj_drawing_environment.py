"""What keys an analysis figure besides its data (hooks/dj_analysis_cache.drawing_environment): matplotlib's
settings as stored, without the backend, which stays unpicked until pyplot picks it; no key under a Cairo backend,
which prints PNGs itself."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import data_juicer.analysis.column_wise_analysis  # noqa: F401  (the key covers its source: it must be imported)
import matplotlib
from matplotlib import rcsetup

from sandflow.hooks.dj_analysis_cache import COLUMN_WISE_MODULE, drawing_environment


@contextlib.contextmanager
def stored_backend(value: object) -> Iterator[None]:
    """rcParams["backend"] stored as value for the block (stored as is: no backend is picked or switched to)."""
    before = dict.__getitem__(matplotlib.rcParams, "backend")
    dict.__setitem__(matplotlib.rcParams, "backend", value)
    try:
        yield
    finally:
        dict.__setitem__(matplotlib.rcParams, "backend", before)


def test_the_key_is_the_same_before_and_after_pyplot_picks_the_backend():
    with stored_backend(rcsetup._auto_backend_sentinel):
        unpicked = drawing_environment(COLUMN_WISE_MODULE)
    with stored_backend("agg"):
        picked = drawing_environment(COLUMN_WISE_MODULE)
    assert unpicked is not None
    assert unpicked == picked


def test_choosing_a_backend_leaves_the_key_as_it_was():
    with stored_backend("agg"):
        before = drawing_environment(COLUMN_WISE_MODULE)
        with matplotlib.rc_context({"backend_fallback": False}):  # what matplotlib.use sets
            chosen = drawing_environment(COLUMN_WISE_MODULE)
    assert before == chosen


def test_any_other_setting_changes_the_key():
    with stored_backend("agg"):
        before = drawing_environment(COLUMN_WISE_MODULE)
        with matplotlib.rc_context({"figure.dpi": 123}):
            changed = drawing_environment(COLUMN_WISE_MODULE)
    assert before is not None and changed is not None
    assert before["rc"] != changed["rc"]


def test_a_cairo_backend_leaves_every_figure_drawn():
    with stored_backend("cairo"):
        assert drawing_environment(COLUMN_WISE_MODULE) is None
