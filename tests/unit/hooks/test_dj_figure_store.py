"""The analysis cache's store (hooks/dj_figure_store.py) and the digest that keys a figure by its data
(hooks/dj_analysis_cache.series_digest): no Data-Juicer import, real files and processes."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sandflow.core.layout import stats_cache_dir
from sandflow.core.private_fs import UnsafePath
from sandflow.hooks.dj_analysis_cache import frame_digest, series_digest
from sandflow.hooks.dj_figure_store import ANALYSIS_SUBDIR, KEY_RECORD, FigureStore, figures_size
from sandflow.hooks.dj_stats_store import OpStats, cache_size

FIGURE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40  # any bytes: the store never parses them


def store_of(work_dir: Path) -> FigureStore:
    return FigureStore(Path(stats_cache_dir(str(work_dir))) / ANALYSIS_SUBDIR, work_dir)


def add_figures(work_dir: Path, writer: int, rounds: int) -> None:
    for round_ in range(rounds):
        store = store_of(work_dir)
        for index in range(20):
            shared = index % 2 == 0  # half the keys every writer adds (the same figure), half its own
            key = f"{index:02d}" + ("shared" if shared else f"w{writer}r{round_}")
            store.add(key, {"figure": key}, FIGURE + (b"" if shared else key.encode()), ".png")
        store.flush()


def test_concurrent_writers_leave_whole_figures_only(tmp_path):
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=add_figures, args=(tmp_path, writer, 3)) for writer in range(4)]
    for process in writers:
        process.start()
    seen = set()
    while any(process.is_alive() for process in writers):  # read while they write: a whole figure or none
        reader = store_of(tmp_path)
        found = reader.get("00shared", ".png")
        assert found in (None, FIGURE) and reader.skipped == [] and reader.ambiguous == []
        seen.add(found is not None)
    for process in writers:
        process.join()
        assert process.exitcode == 0
    store = store_of(tmp_path)
    assert store.get("00shared", ".png") == FIGURE and store.get("01w3r2", ".png") == FIGURE + b"01w3r2"
    shared = store.directory / "00shared"
    assert sorted(p.name for p in shared.iterdir()) == sorted([KEY_RECORD, hashlib.sha256(FIGURE).hexdigest() + ".png"])
    assert figures_size(store.directory).keys == 10 + 4 * 3 * 10
    assert figures_size(store.directory).figures == 10 + 4 * 3 * 10
    assert not [p for p in store.directory.rglob(".*")]  # no temp file left


def test_a_figure_whose_bytes_do_not_match_its_name_or_not_a_file_is_skipped(tmp_path):
    store = store_of(tmp_path)
    store.add("k1", {}, FIGURE, ".png")
    store.add("k2", {}, FIGURE, ".png")
    store.flush()
    (torn,) = (store.directory / "k1").glob("*.png")
    torn.write_bytes(FIGURE[:100])
    (kept,) = (store.directory / "k2").glob("*.png")
    kept.unlink()
    os.mkfifo(kept)  # a FIFO under the right name: never opened (reading it would block the job)
    reader = store_of(tmp_path)
    assert reader.get("k1", ".png") is None and reader.get("k2", ".png") is None
    assert reader.skipped == [f"k1/{torn.name}", f"k2/{kept.name}"]


def test_a_key_holding_two_different_figures_is_drawn_again(tmp_path):
    store = store_of(tmp_path)
    store.add("k", {}, FIGURE, ".png")
    store.flush()
    store.add("k", {}, FIGURE + b"other", ".png")
    store.flush()
    reader = store_of(tmp_path)
    assert reader.get("k", ".png") is None and reader.ambiguous == ["k"]


def test_an_analysis_cache_leading_out_of_the_work_dir_is_refused(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    work_dir = tmp_path / "work"
    (work_dir / "stats-cache").mkdir(parents=True)
    (work_dir / "stats-cache" / ANALYSIS_SUBDIR).symlink_to(elsewhere)
    store = store_of(work_dir)
    with pytest.raises(UnsafePath, match="outside"):
        store.get("k", ".png")
    store.add("k", {}, FIGURE, ".png")
    with pytest.raises(UnsafePath, match="outside"):
        store.flush()
    assert list(elsewhere.iterdir()) == []


def test_the_stats_cache_size_leaves_the_figures_out(tmp_path):
    stats = OpStats(stats_cache_dir(str(tmp_path)), "a" * 32, {"op": "test"})
    stats.add("d1", {"text_len": 5})
    stats.flush(tmp_path)
    store = store_of(tmp_path)
    store.add("k", {"figure": "draw_hist"}, FIGURE, ".png")
    store.flush()
    assert (cache_size(stats_cache_dir(str(tmp_path))).ops, cache_size(stats_cache_dir(str(tmp_path))).segments) == (
        1,
        1,
    )
    size = figures_size(store.directory)
    assert (size.keys, size.figures) == (1, 1) and size.bytes == len(FIGURE) + (
        store.directory / "k/key.json"
    ).stat().st_size


# --- the data digest: what a draw call is handed ---------------------------------------------------------------


def test_series_digest_follows_every_part_of_the_drawn_series():
    base = pd.Series([1.5, 2.0, float("nan")], name="text_len")
    digest = series_digest(base)
    assert digest is not None and series_digest(base.copy()) == digest
    variants = [
        base.rename("num_words"),
        base.astype("float32"),
        pd.Series([1.5, 2.0, 3.0], name="text_len"),
        pd.Series([2.0, 1.5, float("nan")], name="text_len"),
        pd.Series([1.5, 2.0, float("nan")], name="text_len", index=[0, 0, 1]),  # exploded lists repeat the index
        pd.Series([1, 2, 3], name="text_len"),
    ]
    assert len({digest, *(series_digest(v) for v in variants)}) == 1 + len(variants)
    strings = pd.Series(["en", "zh", None], name="lang")  # pandas' str dtype: the missing one is NaN
    others = [pd.Series(["en", "zh", text], name="lang") for text in ("None", "NaN", "nan")]
    assert len({series_digest(strings), *(series_digest(other) for other in others)} - {None}) == 4
    assert series_digest(pd.Series(["en", None], dtype=object, name="lang")) not in (None, series_digest(strings))


def test_series_digest_is_none_for_what_it_cannot_read_exactly():
    assert series_digest(pd.Series([np.float64(1.0), "x"], dtype=object, name="s")) is None  # numpy scalar
    assert series_digest(pd.Series([1, None], dtype="Int64", name="s")) is None  # an extension dtype
    assert series_digest(pd.Series(["a", None], dtype=pd.StringDtype(na_value=pd.NA), name="s")) is None  # pd.NA
    assert series_digest(pd.Series([1.0], name=("a", "b"))) is None
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3, 4]})
    assert frame_digest(frame) not in (None, frame_digest(frame[["b", "a"]]))
