"""k-sigma refinement of image, video and audio filters, and the filters it leaves alone, said out loud.

The hook runs in-process on a stats_summary.json written by hand in the format the probe job writes
(hooks/data_juicer.py summarise_stats: {stat: {count, mean, std, min, max}}, multimodal stats per item).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from sandflow.hooks.k_sigma import refine_recipe, refine_recipe_via_k_sigma

from helpers.job_runs import file_logger, job_run

SUMMARY = {
    "image_sizes": {"count": 40, "mean": 200_000.0, "std": 50_000.0, "min": 20_000.0, "max": 900_000.0},
    "image_width": {"count": 40, "mean": 640.0, "std": 100.5, "min": 100.0, "max": 2000.0},
    "image_height": {"count": 40, "mean": 480.0, "std": 10.0, "min": 470.0, "max": 600.0},
    "video_duration": {"count": 12, "mean": 30.0, "std": 5.0, "min": 12.5, "max": 60.0},
    "video_aspect_ratios": {"count": 12, "mean": 1.5, "std": 0.1, "min": 1.0, "max": 1.8},
    "audio_duration": {"count": 9, "mean": 10.4, "std": 2.05, "min": 2.0, "max": 30.0},
}
RECIPE = {
    "project_name": "mm",
    "process": [
        {"image_size_filter": {"min_size": "10KB", "max_size": "1MB"}},
        {"image_shape_filter": None},
        {"video_duration_filter": {"min_duration": 2}},
        {"video_aspect_ratio_filter": {"min_ratio": "9/21", "max_ratio": "21/9"}},
        {"audio_duration_filter": {"max_duration": 100}},
        {"image_watermark_filter": {"prob_threshold": 0.8}},
        {"video_tagging_from_frames_filter": {"tags": ["people"]}},
        {"clean_email_mapper": None},
    ],
}


def test_image_video_and_audio_thresholds_become_mean_plus_minus_k_sigma():
    refined, changes = refine_recipe(RECIPE, SUMMARY, k=2)
    ops = [next(iter(entry.values())) for entry in refined["process"]]
    # sizes: bytes, written as the text Data-Juicer's size_to_bytes reads; outward rounding
    assert ops[0] == {"min_size": "100000", "max_size": "300000"}
    # width: 640 -/+ 201 -> [439, 841]; height: 480 -/+ 20 clipped to the observed minimum 470
    assert ops[1] == {"min_width": 439, "max_width": 841, "min_height": 470, "max_height": 500}
    assert ops[2] == {"min_duration": 20.0, "max_duration": 40.0}
    assert ops[3] == {"min_ratio": pytest.approx(1.3), "max_ratio": pytest.approx(1.7)}
    assert ops[4] == {"min_duration": 6, "max_duration": 15}  # int arguments: floor(6.3), ceil(14.5)
    assert ops[5:] == [{"prob_threshold": 0.8}, {"tags": ["people"]}, None]  # left as they are
    left = {(c.op_index, c.op): c.note for c in changes if not c.arg}
    assert left == {
        (5, "image_watermark_filter"): "unchanged: one threshold, prob_threshold, above which it drops: "
        "not a [min, max] pair of a stat",
        (6, "video_tagging_from_frames_filter"): "unchanged: it keeps samples by their tags, not by a number",
    }


def test_the_hook_writes_the_table_and_warns_once_in_the_log_and_on_stderr(
    tmp_path: Path, capfd: pytest.CaptureFixture
):
    analysis = tmp_path / "analysis"
    analysis.mkdir()
    (analysis / "stats_summary.json").write_text(json.dumps(SUMMARY))
    job_dir = tmp_path / "refine"
    job_dir.mkdir()
    target = tmp_path / "published" / "refined.yaml"
    job = job_run(
        "RefineRecipeViaKSigmaHook",
        job_dir,
        dj_configs=RECIPE,
        extra_configs={"path_k_sigma_recipe": str(target), "k": 2},
        linked_jobs={"analysis": analysis},
        log=file_logger("test_k_sigma_multimodal", tmp_path / "job.log"),
    )
    assert refine_recipe_via_k_sigma(job) == str(target)
    assert yaml.safe_load(target.read_text())["process"][0] == {
        "image_size_filter": {"min_size": "100000", "max_size": "300000"}
    }
    with open(job_dir / "k_sigma_changes.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["op"], row["argument"]) for row in rows if row["op"].startswith("image_s")] == [
        ("image_size_filter", "min_size"),
        ("image_size_filter", "max_size"),
        ("image_shape_filter", "min_width"),
        ("image_shape_filter", "max_width"),
        ("image_shape_filter", "min_height"),
        ("image_shape_filter", "max_height"),
    ]
    unchanged = [row for row in rows if row["argument"] == ""]
    assert [row["op"] for row in unchanged] == ["image_watermark_filter", "video_tagging_from_frames_filter"]
    assert all(row["note"].startswith("unchanged: ") for row in unchanged)
    assert "| 5 | image_watermark_filter |  |  |" in (job_dir / "k_sigma_changes.md").read_text()
    line = (
        "k-sigma: left unchanged, no k-sigma rule: image_watermark_filter, video_tagging_from_frames_filter "
        "(why: k_sigma_changes.md)"
    )
    log = (tmp_path / "job.log").read_text().splitlines()
    assert [entry for entry in log if "left unchanged" in entry] == [line]
    assert capfd.readouterr().err.splitlines() == [f"sandflow: warning: {line}"]


def test_a_mapper_is_no_filter_and_gets_no_unchanged_row():
    _, changes = refine_recipe({"process": [{"video_duration_filter": None}, {"clean_html_mapper": None}]}, SUMMARY)
    assert [(change.op, change.arg) for change in changes] == [
        ("video_duration_filter", "min_duration"),
        ("video_duration_filter", "max_duration"),
    ]
