"""The stats cache (hooks/dj_stats_cache.py, dj_stats_store.py): each covered filter's stats are computed once
per work_dir, and every output is the same bytes as Data-Juicer's own result with the cache off.

Hooks run in-process on real py-data-juicer (offline) in job directories laid out as a run lays them out
(<work_dir>/jobs/<hook>/<key>.partial-<pid>). The demo end to end with real snakemake, with the cache on and off, is
in test_demo_run (its cold run is the run with the cache on).
"""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest
import yaml

from sandflow.core.layout import stats_cache_dir
from sandflow.core.private_fs import UnsafePath
from sandflow.hooks.dj_stats_cache import COVERED
from sandflow.hooks.dj_stats_store import OpStats, cache_size

from helpers.dj_jobs import process_recipe, run_dj_job, run_hook
from helpers.env import OFFLINE_ENV, environ
from helpers.paths import REPO

DEMO_ROWS = (REPO / "configs/data/demo/demo-dataset.jsonl").read_text().splitlines(keepends=True)
# The progress bars of Data-Juicer's maps that add the stats column and prepare the stats file.
STATS_COLUMN_MAP = "Adding new column for stats"
STATS_EXPORT_MAP = "Preparing meta/stats for UTF-8 export"
# Edge cases next to demo rows: short, multi-line, non-ASCII, repetitive, symbols only.
EDGE_TEXTS = [
    "ok",
    "line one\nline two is a bit longer\n\nline four",
    "Grüße aus Köln — naïve café, 東京 and Zürich!",
    "la la la la la la la la la la la la la la la la la la la la",
    "### $$$ @@@ !!! %%% ^^^",
]


@pytest.fixture(scope="module")
def offline_env():
    with environ(OFFLINE_ENV):
        yield


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    path = tmp_path / "data.jsonl"
    path.write_text("".join(DEMO_ROWS[:40]) + "".join(json.dumps({"text": t, "meta": {}}) + "\n" for t in EDGE_TEXTS))
    return path


# --- the store: content-addressed segments, many writers -----------------------------------------------------


def add_entries(cache_dir: str, writer: int, rounds: int) -> None:
    for round_ in range(rounds):
        stats = OpStats(cache_dir, "f" * 32, {"op": "test"})
        for index in range(500):
            shared = index % 2 == 0  # half the entries every writer adds, half its own
            digest = f"{index:04d}-shared" if shared else f"{index:04d}-{writer}-{round_}"
            stats.add(digest, {"value": index if shared else writer * 1000 + round_})
        stats.flush(str(Path(cache_dir).parent))


def test_concurrent_writers_leave_every_entry_readable(tmp_path):
    cache_dir = stats_cache_dir(str(tmp_path))
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=add_entries, args=(cache_dir, writer, 4)) for writer in range(4)]
    for process in writers:
        process.start()
    reads = []
    while any(process.is_alive() for process in writers):  # read while they write: never a torn segment
        reader = OpStats(cache_dir, "f" * 32, {})
        reader.load(tmp_path)
        reads.append((len(reader.known), reader.skipped_segments))
    for process in writers:
        process.join()
        assert process.exitcode == 0
    final = OpStats(cache_dir, "f" * 32, {})
    final.load(tmp_path)
    assert final.skipped_segments == [] and all(skipped == [] for _, skipped in reads)
    assert len(final.known) == 250 + 4 * 4 * 250
    assert final.known["0002-shared"] == {"value": 2} and final.known["0001-3-2"] == {"value": 3002}
    directory = Path(cache_dir) / ("f" * 32)
    assert sorted(p.name for p in directory.iterdir() if p.name.startswith(".")) == []  # no temp file left
    size = cache_size(cache_dir)
    assert (size.ops, size.segments) == (1, 16)
    assert size.bytes == sum(p.stat().st_size for p in directory.iterdir())


def test_a_segment_whose_bytes_do_not_match_its_name_is_skipped(tmp_path):
    cache_dir = stats_cache_dir(str(tmp_path))
    stats = OpStats(cache_dir, "a" * 32, {"op": "test"})
    stats.add("d1", {"text_len": 5})
    stats.flush(tmp_path)
    (segment,) = (p for p in (Path(cache_dir) / ("a" * 32)).iterdir() if p.name != "op.json")
    segment.write_text(segment.read_text().replace("5", "6"))
    reader = OpStats(cache_dir, "a" * 32, {})
    reader.load(tmp_path)
    assert reader.known == {} and reader.skipped_segments == [segment.name]


def test_a_cache_directory_leading_out_of_the_work_dir_is_refused(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    work_dir = tmp_path / "work"
    work_dir.mkdir()
    (work_dir / "stats-cache").symlink_to(elsewhere)
    stats = OpStats(stats_cache_dir(str(work_dir)), "b" * 32, {})
    stats.add("d1", {"text_len": 5})
    with pytest.raises(UnsafePath, match="outside"):
        stats.flush(work_dir)
    assert list(elsewhere.iterdir()) == []


# --- the fingerprint: thresholds out, stat-determining arguments in -------------------------------------------


@pytest.mark.slow  # imports Data-Juicer
def test_thresholds_do_not_change_the_fingerprint_and_rep_len_does():
    from data_juicer.ops.filter import character_repetition_filter

    from sandflow.hooks.dj_stats_cache import op_fingerprint

    module = character_repetition_filter.__name__

    def fingerprint(**args):
        return op_fingerprint("character_repetition_filter", {"text_key": "text", **args}, module)[0]

    base = fingerprint(rep_len=10, min_ratio=0.0, max_ratio=0.5)
    assert fingerprint(rep_len=10, min_ratio=0.2, max_ratio=0.9, reversed_range=True, batch_size=7) == base
    assert fingerprint(rep_len=11, min_ratio=0.0, max_ratio=0.5) != base
    assert fingerprint(rep_len=10, min_ratio=0.0, max_ratio=0.5, text_key="body") != base


# --- faithful: every covered op, the same bytes as Data-Juicer's own result -----------------------------------

COVERED_ARGS = {
    "text_length_filter": {"min_len": 30, "max_len": 600},
    "alphanumeric_filter": {"tokenization": False, "min_ratio": 0.75, "max_ratio": 0.9},
    "special_characters_filter": {"min_ratio": 0.0, "max_ratio": 0.22},
    "character_repetition_filter": {"rep_len": 10, "min_ratio": 0.0, "max_ratio": 0.1},
    "words_num_filter": {"lang": "en", "tokenization": False, "min_num": 10, "max_num": 90},
    "word_repetition_filter": {"lang": "en", "tokenization": False, "rep_len": 3, "min_ratio": 0.0, "max_ratio": 0.1},
    "average_line_length_filter": {"min_len": 20, "max_len": 500},
    "maximum_line_length_filter": {"min_len": 20, "max_len": 500},
}


def test_every_covered_op_has_a_test_case():
    assert sorted(COVERED_ARGS) == sorted(COVERED)


@pytest.mark.slow
@pytest.mark.parametrize("op", sorted(COVERED_ARGS))
def test_covered_op_reads_its_stats_and_matches_data_juicer(op, tmp_path, dataset, offline_env, capfd):
    """The same bytes as Data-Juicer's own run (the cache off), cold and warm; with the cache on, the stats column
    is added, and the stats file written, without Data-Juicer's row-by-row maps (their progress bars not shown)."""
    recipe = process_recipe(dataset, [{op: COVERED_ARGS[op]}])
    work = tmp_path / "work"
    own, off_lines = run_hook(tmp_path / "off", "ProcessDataHook", "off", recipe, cache=False)
    shown = capfd.readouterr().err
    assert STATS_COLUMN_MAP in shown and STATS_EXPORT_MAP in shown
    cold, cold_lines = run_hook(work, "ProcessDataHook", "cold", recipe)
    warm, warm_lines = run_hook(work, "ProcessDataHook", "warm", recipe)
    shown = capfd.readouterr().err
    assert STATS_COLUMN_MAP not in shown and STATS_EXPORT_MAP not in shown
    rows = len(DEMO_ROWS[:40]) + len(EDGE_TEXTS)
    assert off_lines == {} and cold_lines == {op: (0, rows, 0)} and warm_lines == {op: (rows, 0, 0)}
    kept = [json.loads(line) for line in own.splitlines()]
    assert 0 < len(kept) < rows and all(row["__dj__stats__"] for row in kept)  # thresholds dropped some rows
    assert cold == own and warm == own


# --- the demo recipe: process after probe, thresholds and rep_len changed ------------------------------------


@pytest.mark.slow
def test_process_after_probe_reads_every_stat_and_thresholds_apply_to_cached_stats(tmp_path, dataset, offline_env):
    ops = yaml.safe_load((REPO / "configs/demo/process.yaml").read_text())["process"]
    probe_recipe = process_recipe(dataset, ops)
    work = tmp_path / "work"
    probe_stats, probe_lines = run_hook(work, "ProbeViaAnalyzerHook", "probe", probe_recipe)
    rows = len(DEMO_ROWS[:40]) + len(EDGE_TEXTS)
    assert probe_lines == {name: (0, rows, 0) for op in ops for name in op}

    tight = yaml.safe_load(yaml.safe_dump(ops))
    tight[0]["text_length_filter"].update(min_len=40, max_len=700)
    tight[3]["character_repetition_filter"]["max_ratio"] = 0.08
    processed, lines = run_hook(work, "ProcessDataHook", "tight", process_recipe(dataset, tight))
    assert all(computed == 0 for _, computed, _ in lines.values()) and lines["text_length_filter"][0] == rows
    assert processed == run_hook(tmp_path / "off", "ProcessDataHook", "tight", process_recipe(dataset, tight), False)[0]
    assert 0 < len(processed.splitlines()) < rows

    longer = yaml.safe_load(yaml.safe_dump(tight))
    longer[3]["character_repetition_filter"]["rep_len"] = 12
    processed, lines = run_hook(work, "ProcessDataHook", "rep_len", process_recipe(dataset, longer))
    assert lines["character_repetition_filter"][1] > 0 and lines["character_repetition_filter"][0] == 0
    assert all(lines[name][1] == 0 for name in lines if name != "character_repetition_filter")
    off = run_hook(tmp_path / "off", "ProcessDataHook", "rep_len", process_recipe(dataset, longer), False)[0]
    assert processed == off

    # another project name: the same stats, but not the stored probe's key (hooks/dj_probe_reuse.py), so it runs
    again_recipe = {**probe_recipe, "project_name": "again"}
    again, again_lines = run_hook(work, "ProbeViaAnalyzerHook", "probe-again", again_recipe)
    assert again == probe_stats and again_lines == {name: (rows, 0, 0) for op in ops for name in op}


@pytest.mark.slow
def test_a_traced_op_and_its_own_stats_file_are_the_same_with_the_cache(tmp_path, dataset, offline_env):
    """open_tracer and an op's stats_export_path, which Data-Juicer's filter run serves itself: the trace of the
    dropped rows, the op's stats file and the processed rows are the same bytes with the cache off, cold and warm."""
    work = tmp_path / "work"
    outputs = {}
    for name, directory, cache in (("off", tmp_path / "off", False), ("cold", work, True), ("warm", work, True)):
        op = {**COVERED_ARGS["text_length_filter"], "stats_export_path": str(tmp_path / f"{name}-op-stats.jsonl")}
        recipe = {**process_recipe(dataset, [{"text_length_filter": op}]), "open_tracer": True, "trace_num": 4}
        job = run_dj_job(directory, "ProcessDataHook", name, recipe, cache)
        trace = job.job_dir / "dj_work/trace/sample_trace-text_length_filter.jsonl"
        outputs[name] = (
            job.result.read_bytes(),
            trace.read_bytes(),
            (tmp_path / f"{name}-op-stats.jsonl").read_bytes(),
        )
        assert job.stats_lines() == (
            {} if not cache else {"text_length_filter": (45, 0, 0) if name == "warm" else (0, 45, 0)}
        )
    assert len(outputs["off"][1].splitlines()) == 4  # the trace holds dropped rows
    assert outputs["cold"] == outputs["off"] and outputs["warm"] == outputs["off"]


@pytest.mark.slow
def test_a_mapper_between_covered_filters_changes_what_the_next_one_reads(tmp_path, dataset, offline_env):
    """The second filter gets the mapper's rows (with the first one's stats), not the rows the first filter
    returned, and keys them by their content after the mapper: the same bytes as the cache off, cold and warm, and
    warm reads every stat of both filters."""
    ops = [
        {"text_length_filter": COVERED_ARGS["text_length_filter"]},
        {"punctuation_normalization_mapper": {}},
        {"words_num_filter": COVERED_ARGS["words_num_filter"]},
    ]
    recipe = process_recipe(dataset, ops)
    own, _ = run_hook(tmp_path / "off", "ProcessDataHook", "off", recipe, cache=False)
    cold, cold_lines = run_hook(tmp_path / "work", "ProcessDataHook", "cold", recipe)
    warm, warm_lines = run_hook(tmp_path / "work", "ProcessDataHook", "warm", recipe)
    assert cold == own and warm == own
    kept = cold_lines["words_num_filter"][1]
    assert 0 < kept < len(DEMO_ROWS[:40]) + len(EDGE_TEXTS)
    assert warm_lines == {
        "text_length_filter": (cold_lines["text_length_filter"][1], 0, 0),
        "words_num_filter": (kept, 0, 0),
    }


@pytest.mark.slow
def test_thresholds_decide_on_the_stats_as_the_stats_column_holds_them(tmp_path, offline_env):
    """The stats column keeps 10 decimals and Data-Juicer's filter pass reads it back: alnum_ratio 1/7 is
    0.142857142857... computed and 0.1428571429 read back, above a max_ratio of 0.14285714286 between them, so
    Data-Juicer drops that row. With the cache cold and warm (the ratio then comes from the cache, at full
    precision), after another covered op, the same rows."""
    texts = ["a!!!!!!", "a!!!!!!!", "ab!!!!!", "a!!!!!!!!"]  # alnum_ratio 1/7, 1/8, 2/7, 1/9
    data = tmp_path / "ratios.jsonl"
    data.write_text("".join(json.dumps({"text": text}) + "\n" for text in texts))
    ops = [
        {"text_length_filter": {"min_len": 1, "max_len": 100}},
        {"alphanumeric_filter": {"tokenization": False, "min_ratio": 0.0, "max_ratio": 0.14285714286}},
    ]
    recipe = process_recipe(data, ops)
    own, _ = run_hook(tmp_path / "off", "ProcessDataHook", "off", recipe, cache=False)
    assert [json.loads(line)["text"] for line in own.splitlines()] == ["a!!!!!!!", "a!!!!!!!!"]
    cold, cold_lines = run_hook(tmp_path / "work", "ProcessDataHook", "cold", recipe)
    warm, warm_lines = run_hook(tmp_path / "work", "ProcessDataHook", "warm", recipe)
    assert cold_lines["alphanumeric_filter"] == (0, 4, 0) and warm_lines["alphanumeric_filter"] == (4, 0, 0)
    assert cold == own and warm == own


def test_a_covered_op_that_changes_a_stat_the_sample_had_fails_naming_the_op(
    tmp_path, dataset, offline_env, monkeypatch
):
    """The cache stores what an op adds: an op that also rewrote a stat already there could not have that change
    given back on a rerun, so its job fails in one line rather than give other bytes warm than cold."""
    from data_juicer.ops.filter.text_length_filter import TextLengthFilter

    own = TextLengthFilter.compute_stats_batched

    def rewrites_words(self, samples, *args, **kwargs):
        samples = own(self, samples, *args, **kwargs)
        for stats in samples["__dj__stats__"]:
            stats["num_words"] = -1
        return samples

    monkeypatch.setattr(TextLengthFilter, "compute_stats_batched", rewrites_words)
    ops = [{"words_num_filter": {"min_num": 1}}, {"text_length_filter": {"min_len": 1}}]
    with pytest.raises(RuntimeError, match=r"text_length_filter changed a stat a sample already had.*=off"):
        run_hook(tmp_path / "work", "ProcessDataHook", "rewrites", process_recipe(dataset, ops))
