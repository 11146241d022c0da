"""Data-pool components on hand-made pools: which samples land where, file names, counts, order, errors.

Samples carry Data-Juicer's ``__dj__stats__`` written by hand, so nothing here
imports Data-Juicer. Expected pools are worked out in the comments.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from sandflow.hooks import data_pools, pool_construction
from sandflow.hooks.base import JobRun

from helpers.job_runs import job_run

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
STATS = "__dj__stats__"

# text_len ascending, stable:  f(1) b(2) d(2) a(5) é(7) c(9)  -> tie b/d keeps input order
# scores by mean:              c(0, empty) é(0.5) a(2) f(2) d(4) b(10) -> tie a/f keeps input order
# lang is a string stat: no pools for it.
DEMO = [
    {"text": "a", "meta": {"z": 1, "y": 2}, STATS: {"text_len": 5, "lang": "en", "scores": [1, 3]}},
    {"text": "b", STATS: {"text_len": 2, "lang": "zh", "scores": [10]}},
    {"text": "c", STATS: {"text_len": 9, "lang": "en", "scores": []}},
    {"text": "d", STATS: {"text_len": 2, "lang": "en", "scores": [4, 4]}},
    {"text": "é", STATS: {"text_len": 7, "lang": "fr", "scores": [0.5]}},
    {"text": "f", STATS: {"text_len": 1, "lang": "en", "scores": [2, 2, 2]}},
]


def write_pool(path: Path, samples: list[dict]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples), encoding="utf-8")
    return str(path)


def read_pool(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").split("\n") if line.strip()]


def texts(path: str | Path) -> list[str]:
    return [s["text"] for s in read_pool(path)]


def make_job(job_dir: Path, extra: dict, export: str | None = "export") -> JobRun:
    """A JobRun as the runner builds it: export_path already points inside the job directory."""
    job_dir.mkdir(parents=True)
    if export is not None:
        extra = {**extra, "export_path": str(job_dir / "extra_configs.export_path" / export)}
    log = logging.getLogger(f"test_data_pools.{job_dir.name}")
    return job_run("DataPoolManipulationHook", job_dir, extra_configs=extra, key=job_dir.name, log=log)


def is_png(path: Path) -> bool:
    data = path.read_bytes()
    return data.startswith(PNG_SIGNATURE) and len(data) > 1000


def files_of(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def demo(tmp_path) -> str:
    return write_pool(tmp_path / "data" / "demo.jsonl", DEMO)


# ---------------------------------------------------------------- construction


def test_construction_splits_each_numeric_stat_at_thirds(tmp_path, demo):
    job = make_job(tmp_path / "job", {"type": "data_pool_construction", "dataset_path": demo})
    out = pool_construction.data_pool_construction(job)
    export = job.job_dir / "extra_configs.export_path" / "export"
    # n=6, ratios 1/3, 2/3: split at int(6/3+0.5)=2 and int(12/3+0.5)=4
    assert out == [str(export / "text_len" / f"demo_text_len_{i}.jsonl") for i in range(3)] + [
        str(export / "scores" / f"demo_scores_{i}.jsonl") for i in range(3)
    ]
    assert [texts(p) for p in out] == [["f", "b"], ["d", "a"], ["é", "c"], ["c", "é"], ["a", "f"], ["d", "b"]]
    assert sorted(p.name for p in export.iterdir()) == ["scores", "text_len"]  # no pools for the string stat
    # samples are written as they were: key order, nested order, non-ASCII as is
    first = (export / "text_len" / "demo_text_len_1.jsonl").read_text(encoding="utf-8").splitlines()[1]
    assert first == json.dumps(DEMO[0], ensure_ascii=False)
    assert '"é"' in (export / "text_len" / "demo_text_len_2.jsonl").read_text(encoding="utf-8")
    plots = job.job_dir / "plots" / "demo"
    assert sorted(p.name for p in plots.iterdir()) == ["scores_hist.png", "text_len_hist.png"]
    assert all(is_png(p) for p in plots.iterdir())


def test_construction_reruns_are_byte_identical(tmp_path, demo):
    extra = {"type": "data_pool_construction", "dataset_path": demo, "split_ratios": ["1/2"]}
    first = make_job(tmp_path / "one", extra)
    second = make_job(tmp_path / "two", extra)
    pool_construction.data_pool_construction(first)
    pool_construction.data_pool_construction(second)
    assert files_of(first.job_dir) == files_of(second.job_dir)
    assert len(files_of(first.job_dir)) == 6  # 2 stats x 2 pools + 2 histograms


def test_split_num_is_the_pool_size_and_wins_over_ratios(tmp_path, demo):
    job = make_job(
        tmp_path / "job",
        {"type": "data_pool_construction", "dataset_path": demo, "split_num": 4, "split_ratios": [0.5]},
    )
    out = pool_construction.data_pool_construction(job)
    assert [Path(p).name for p in out] == [
        "demo_text_len_0.jsonl",
        "demo_text_len_1.jsonl",
        "demo_scores_0.jsonl",
        "demo_scores_1.jsonl",
    ]
    assert [texts(p) for p in out] == [["f", "b", "d", "a"], ["é", "c"], ["c", "é", "a", "f"], ["d", "b"]]


def test_ignore_stats_with_split_num_1_gives_one_pool_per_sample(tmp_path):
    # the auto-prompt-optimization habit; samples need no stats at all
    prompts = write_pool(tmp_path / "prompts.jsonl", [{"prompt": f"p{i}"} for i in range(3)])
    job = make_job(
        tmp_path / "job",
        {"type": "data_pool_construction", "dataset_path": [prompts], "split_num": 1, "ignore_stats": True},
        export="single_prompt_data_pools/",
    )
    out = pool_construction.data_pool_construction(job)
    export = job.job_dir / "extra_configs.export_path" / "single_prompt_data_pools"
    assert out == [str(export / f"prompts_ignore_stats_{i}.jsonl") for i in range(3)]
    assert [read_pool(p) for p in out] == [[{"prompt": "p0"}], [{"prompt": "p1"}], [{"prompt": "p2"}]]
    assert not (job.job_dir / "plots").exists()


def test_ratios_rounding_to_the_same_index_give_an_empty_pool_file(tmp_path, demo):
    # int(6*0.25+0.5) = 2 and int(6*0.3+0.5) = 2: pool 1 is empty, pool 2 starts at index 2
    job = make_job(
        tmp_path / "job", {"type": "data_pool_construction", "dataset_path": demo, "split_ratios": ["1/4", 0.3]}
    )
    out = pool_construction.data_pool_construction(job)
    assert [Path(p).name for p in out[:3]] == [
        "demo_text_len_0.jsonl",
        "demo_text_len_1.jsonl",
        "demo_text_len_2.jsonl",
    ]
    assert [texts(p) for p in out[:3]] == [["f", "b"], [], ["d", "a", "é", "c"]]
    assert Path(out[1]).read_bytes() == b""


def test_split_points_round_half_up(tmp_path):
    # n=5, ratio 1/2: int(2.5+0.5) = 3 (upstream's rounding; round() would give 2)
    five = write_pool(tmp_path / "five.jsonl", DEMO[:5])
    out = pool_construction.data_pool_construction(
        make_job(tmp_path / "job", {"dataset_path": five, "split_ratios": [0.5]})
    )
    assert [texts(p) for p in out[:2]] == [["b", "d", "a"], ["é", "c"]]


def test_nan_sorts_last_and_mapping_stats_are_skipped(tmp_path):
    samples = [{"text": t, STATS: {"ppl": v, "nested": {"k": 1}}} for t, v in (("x", 3), ("y", float("nan")), ("z", 1))]
    path = write_pool(tmp_path / "nan.jsonl", samples)
    out = pool_construction.data_pool_construction(
        make_job(tmp_path / "job", {"dataset_path": path, "split_ratios": [0.5]})
    )
    assert [Path(p).name for p in out] == ["nan_ppl_0.jsonl", "nan_ppl_1.jsonl"]
    assert [texts(p) for p in out] == [["z", "x"], ["y"]]


def test_one_sample_lands_in_the_middle_pool(tmp_path):
    # n=1: split points int(0.83)=0 and int(1.17)=1 -> pools [], [s], []
    one = write_pool(tmp_path / "one.jsonl", [{"text": "x", STATS: {"num_words": 3}}])
    out = pool_construction.data_pool_construction(make_job(tmp_path / "job", {"dataset_path": one}))
    assert [Path(p).name for p in out] == [f"one_num_words_{i}.jsonl" for i in range(3)]
    assert [texts(p) for p in out] == [[], ["x"], []]


def test_stats_key_missing_from_a_sample_names_key_and_first_sample(tmp_path):
    samples = [
        {"text": "a", STATS: {"text_len": 1}},
        {"text": "b", STATS: {"text_len": 2, "ratio": 0.1}},
        {"text": "c", STATS: {}},
    ]
    path = write_pool(tmp_path / "gaps.jsonl", samples)
    with pytest.raises(ValueError) as error:
        pool_construction.data_pool_construction(make_job(tmp_path / "job", {"dataset_path": path}))
    assert (
        str(error.value) == f"extra_configs.dataset_path: stats key 'text_len' is missing from sample 2 (0-based) "
        f"of {path}"
    )
    samples[2][STATS]["text_len"] = 3
    write_pool(tmp_path / "gaps.jsonl", samples)
    with pytest.raises(ValueError, match=r"stats key 'ratio' is missing from sample 0 \(0-based\)"):
        pool_construction.data_pool_construction(make_job(tmp_path / "job2", {"dataset_path": path}))


def test_construction_errors(tmp_path, demo):
    no_stats = write_pool(tmp_path / "plain.jsonl", [{"text": "a"}])
    cases = [
        ({"dataset_path": no_stats}, r"sample 0 \(0-based\) of .*plain.jsonl has no __dj__stats__ .*ignore_stats"),
        ({"dataset_path": str(tmp_path / "nope.jsonl")}, r"^extra_configs.dataset_path: .*nope.jsonl does not exist"),
        ({"dataset_path": [demo, [str(tmp_path / "gone.jsonl")]]}, r"^extra_configs.dataset_path: .*gone.jsonl"),
        ({"dataset_path": [demo, demo]}, r"same base name 'demo'"),
        ({"dataset_path": demo, "split_ratios": [0, 0.5]}, r"^extra_configs.split_ratios must be .* in \(0, 1\)"),
        ({"dataset_path": demo, "split_ratios": [0.6, 0.3]}, r"^extra_configs.split_ratios must be in ascending"),
        ({"dataset_path": demo, "split_num": 0}, r"^extra_configs.split_num must be an integer >= 1"),
        ({"dataset_path": write_pool(tmp_path / "empty.jsonl", [])}, r"empty.jsonl has no samples"),
        ({"dataset_path": write_pool(tmp_path / "tags.jsonl", [{STATS: {"lang": "en"}}])}, r"no numeric stats"),
        (
            {"dataset_path": write_pool(tmp_path / "mixed.jsonl", [{STATS: {"s": 1}}, {STATS: {"s": [1]}}])},
            r"stats key 's' mixes lists and single values \(sample 1",
        ),
    ]
    for index, (extra, pattern) in enumerate(cases):
        with pytest.raises(ValueError, match=pattern):
            pool_construction.data_pool_construction(make_job(tmp_path / f"job{index}", extra))


# ---------------------------------------------------------------- combination


def test_combination_intersects_every_subset_in_level_order(tmp_path):
    a, b, c, d, e, f = ({"text": t} for t in "abcdef")
    b_reordered = {"text": "b"}  # equal to b
    pools = [
        write_pool(tmp_path / "pool_r0.jsonl", [a, b, a, c, d]),  # a twice: counted once
        write_pool(tmp_path / "pool_r1.jsonl", [c, b_reordered, e]),
        write_pool(tmp_path / "pool_r2.jsonl", [d, e, f]),
    ]
    job = make_job(tmp_path / "job", {"type": "data_pool_combination", "dataset_path": pools})
    out = data_pools.data_pool_combination(job)
    export = job.job_dir / "extra_configs.export_path" / "export"
    # 0_1_2 is empty: not written
    assert out == [
        str(export / name)
        for name in (
            "pool_r_top_0_num_4.jsonl",
            "pool_r_top_1_num_3.jsonl",
            "pool_r_top_2_num_3.jsonl",
            "pool_r_top_0_1_num_2.jsonl",
            "pool_r_top_0_2_num_1.jsonl",
            "pool_r_top_1_2_num_1.jsonl",
        )
    ]
    # samples in the order of the best-ranked pool of each combination
    assert [texts(p) for p in out] == [["a", "b", "c", "d"], ["c", "b", "e"], ["d", "e", "f"], ["b", "c"], ["d"], ["e"]]


def test_combination_order_of_four_pools_matches_upstream(tmp_path):
    same = [{"text": "x"}]
    pools = [write_pool(tmp_path / f"{name}.jsonl", same) for name in ("alpha", "beta", "gamma", "delta")]
    out = data_pools.data_pool_combination(make_job(tmp_path / "job", {"dataset_path": pools}))
    ranks = [Path(p).name.removeprefix("default_prefix_top_").removesuffix("_num_1.jsonl") for p in out]
    assert ranks == [
        "0",
        "1",
        "2",
        "3",
        "0_1",
        "0_2",
        "1_2",
        "0_3",
        "1_3",
        "2_3",
        "0_1_2",
        "0_1_3",
        "0_2_3",
        "1_2_3",
        "0_1_2_3",
    ]


# ---------------------------------------------------------------- duplication, downsampling


def test_duplication_repeats_and_shuffles_with_the_seed(tmp_path):
    pool = write_pool(tmp_path / "small.jsonl", [{"text": t} for t in "abc"])
    job = make_job(
        tmp_path / "job", {"type": "data_pool_duplication", "dataset_path": [[pool]], "duplicating_times": [1, 3]}
    )
    out = data_pools.data_pool_duplication(job)
    assert [Path(p).name for p in out] == ["small_x1.jsonl", "small_x3.jsonl"]
    assert [texts(p) for p in out] == [["a", "b", "c"], ["a", "b", "c"] * 3]
    shuffled = make_job(tmp_path / "shuffled", {"dataset_path": pool, "duplicating_times": [2], "shuffle": True})
    # datasets' Dataset.shuffle(seed=42) orders 6 rows 3,2,5,4,1,0 (checked against datasets 5.2.0)
    assert texts(data_pools.data_pool_duplication(shuffled)[0]) == ["a", "c", "c", "b", "b", "a"]
    with pytest.raises(ValueError, match=r"^extra_configs.duplicating_times must be a non-empty list"):
        data_pools.data_pool_duplication(
            make_job(tmp_path / "bad", {"dataset_path": pool, "duplicating_times": [2, 0]})
        )


def test_downsampling_takes_a_seeded_sample_of_the_smallest_size(tmp_path):
    six = write_pool(tmp_path / "six.jsonl", [{"i": i} for i in range(6)])
    twelve = write_pool(tmp_path / "twelve.jsonl", [{"i": i} for i in range(12)])
    out = data_pools.data_pool_downsampling(make_job(tmp_path / "job", {"dataset_path": [six, twelve]}))
    assert [Path(p).name for p in out] == ["six_6.jsonl", "twelve_6.jsonl"]
    # Dataset.shuffle(seed=42): 6 rows -> 3,2,5,4,1,0; 12 rows -> 0,7,6,9,11,3,...
    assert [[s["i"] for s in read_pool(p)] for p in out] == [[3, 2, 5, 4, 1, 0], [0, 7, 6, 9, 11, 3]]
    seeded = make_job(tmp_path / "seeded", {"dataset_path": six, "target_num_samples": 3, "shuffle_seed": 7})
    assert [s["i"] for s in read_pool(data_pools.data_pool_downsampling(seeded)[0])] == [5, 2, 0]
    larger = make_job(tmp_path / "larger", {"dataset_path": six, "target_num_samples": 8})
    path = data_pools.data_pool_downsampling(larger)[0]
    assert Path(path).name == "six_8.jsonl" and len(read_pool(path)) == 6  # named by the target, as upstream


# ---------------------------------------------------------------- ranking


@pytest.fixture
def four_pools(tmp_path) -> list[str]:
    return [write_pool(tmp_path / "pools" / f"p{i}.jsonl", [{"text": str(i)}]) for i in range(4)]


def ranking_job(job_dir: Path, paths: list[str], **extra) -> JobRun:
    return make_job(job_dir, {"type": "data_pool_ranking", "dataset_path": paths, **extra}, export=None)


def test_ranking_sorts_by_keys_with_stable_ties_and_keeps_top_n(tmp_path, four_pools):
    metrics = [
        {"pred_path": "x0", "mse": 0.3, "format_error": 1},
        {"mse": 0.1, "format_error": 2},
        {"mse": 0.3, "format_error": 0},
        {"mse": 0.1, "format_error": 2},
    ]
    job = ranking_job(
        tmp_path / "job", four_pools, metrics=metrics, ranking_keys=["mse", "format_error"], descending=False, top_n=3
    )
    # ascending (mse, format_error): p1 and p3 tie at (0.1, 2) and keep input order
    assert data_pools.data_pool_ranking(job) == [four_pools[1], four_pools[3], four_pools[2]]
    plots = job.job_dir / "plots"
    assert (plots / "ranking.csv").read_text() == (
        "rank,pool,mse,format_error,selected,path\n"
        f"1,p1.jsonl,0.1,2,true,{four_pools[1]}\n2,p3.jsonl,0.1,2,true,{four_pools[3]}\n"
        f"3,p2.jsonl,0.3,0,true,{four_pools[2]}\n4,p0.jsonl,0.3,1,false,{four_pools[0]}\n"
    )
    md = (plots / "ranking.md").read_text().splitlines()
    assert md[0] == "| rank | pool | mse | format_error | selected | path |" and len(md) == 6
    assert is_png(plots / "ranking.png")

    # descending (the default) on mse alone: ties (p0, p2) and (p1, p3) keep input order too
    job = ranking_job(tmp_path / "desc", four_pools, metrics=metrics, ranking_keys="mse")
    assert data_pools.data_pool_ranking(job) == [four_pools[0], four_pools[2], four_pools[1], four_pools[3]]


def test_ranking_nested_keys_plain_numbers_and_one_pool(tmp_path, four_pools):
    nested = [{"scores": {"acc": a}} for a in (0.2, 0.9, 0.5, 0.1)]
    job = ranking_job(tmp_path / "nested", four_pools, metrics=nested, ranking_keys=["scores.acc"], top_n=2)
    assert data_pools.data_pool_ranking(job) == [four_pools[1], four_pools[2]]
    job = ranking_job(tmp_path / "numbers", four_pools[:3], metrics=[0.5, 0.9, 0.5])
    assert data_pools.data_pool_ranking(job) == [four_pools[1], four_pools[0], four_pools[2]]
    # a ref that unpacked one-element lists hands over a path and a metric
    job = ranking_job(tmp_path / "one", four_pools[0], metrics={"mse": 1.0}, ranking_keys=["mse"])
    assert data_pools.data_pool_ranking(job) == [four_pools[0]]


def test_ranking_errors(tmp_path, four_pools):
    metrics = [
        {"mse": 0.1, "format_error": 0},
        {"mse": 0.2, "format_error": 0},
        {"mse": 0.3},
        {"mse": 0.4, "format_error": 1},
    ]
    with pytest.raises(ValueError) as error:
        data_pools.data_pool_ranking(
            ranking_job(tmp_path / "missing", four_pools, metrics=metrics, ranking_keys=["mse", "format_error"])
        )
    assert str(error.value) == (
        "extra_configs.metrics[2] has no 'format_error' (named in extra_configs.ranking_keys); it has keys ['mse']"
    )
    with pytest.raises(ValueError, match=r"dataset_path has 4 pool\(s\) but extra_configs.metrics has 3 entries"):
        data_pools.data_pool_ranking(ranking_job(tmp_path / "count", four_pools, metrics=metrics[:3]))
    with pytest.raises(ValueError, match=r"cannot be ordered .* \(set extra_configs.ranking_keys\)"):
        data_pools.data_pool_ranking(ranking_job(tmp_path / "dicts", four_pools, metrics=metrics))
    with pytest.raises(ValueError, match=r"^extra_configs.top_n must be an integer >= 1"):
        data_pools.data_pool_ranking(ranking_job(tmp_path / "top", four_pools, metrics=[1, 2, 3, 4], top_n=0))


# ---------------------------------------------------------------- merging, cartesian join


def test_merging_concatenates_in_order_into_one_file(tmp_path):
    first = write_pool(tmp_path / "pool_a.jsonl", [{"text": "a1"}, {"text": "a2"}])
    second = write_pool(tmp_path / "pool_b.jsonl", [{"text": "b1\u2028b2"}])  # a raw line separator inside
    # upstream's config names a file; it becomes a directory holding <prefix>_merged.jsonl
    job = make_job(
        tmp_path / "job", {"type": "data_pool_merging", "dataset_path": [[first], [second]]}, export="new_prompts.jsonl"
    )
    out = data_pools.data_pool_merging(job)
    assert out == str(job.job_dir / "extra_configs.export_path" / "new_prompts.jsonl" / "pool__merged.jsonl")
    assert texts(out) == ["a1", "a2", "b1\u2028b2"]
    assert Path(out).read_bytes() == Path(first).read_bytes() + Path(second).read_bytes()
    other = write_pool(tmp_path / "zzz.jsonl", [{"text": "z"}])
    out = data_pools.data_pool_merging(make_job(tmp_path / "job2", {"dataset_path": [first, other]}))
    assert Path(out).name == "default_prefix_merged.jsonl"


def test_cartesian_join_pairs_every_sample_of_both_pools(tmp_path):
    m = [write_pool(tmp_path / "m_0.jsonl", [{"q": "A"}, {"q": "B"}]), write_pool(tmp_path / "m_1.jsonl", [{"q": "C"}])]
    n = [write_pool(tmp_path / "n_0.jsonl", [{"a": 1}]), write_pool(tmp_path / "n_1.jsonl", [{"a": 2}, {"a": 3}])]
    job = make_job(tmp_path / "job", {"type": "data_pool_cartesian_join", "dataset_path_1": m, "dataset_path_2": n})
    out = data_pools.data_pool_cartesian_join(job)
    assert [Path(p).name for p in out] == [f"m__n__cartesian_join_{i}_{j}.jsonl" for i in (0, 1) for j in (0, 1)]
    joined = [[(s["q"], s["a"]) for s in read_pool(p)] for p in out]
    assert joined == [[("A", 1), ("B", 1)], [("A", 2), ("A", 3), ("B", 2), ("B", 3)], [("C", 1)], [("C", 2), ("C", 3)]]
    assert list(read_pool(out[1])[0]) == ["q", "a"]  # first pool's keys first

    empty = write_pool(tmp_path / "empty.jsonl", [])
    job = make_job(tmp_path / "empty_job", {"dataset_path_1": m[0], "dataset_path_2": empty})
    (path,) = data_pools.data_pool_cartesian_join(job)
    assert Path(path).name == "m_0_empty_cartesian_join_0_0.jsonl" and Path(path).read_bytes() == b""
    with pytest.raises(ValueError, match=r"both have the key 'q'"):
        data_pools.data_pool_cartesian_join(
            make_job(tmp_path / "clash", {"dataset_path_1": m[0], "dataset_path_2": m[1]})
        )
    with pytest.raises(ValueError, match=r"^extra_configs.dataset_path_2: .*missing.jsonl does not exist"):
        data_pools.data_pool_cartesian_join(
            make_job(tmp_path / "missing", {"dataset_path_1": m, "dataset_path_2": str(tmp_path / "missing.jsonl")})
        )
