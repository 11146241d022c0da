"""GeneralDataExecutorHook format conversions on shipped fixtures in the upstream formats.

tests/data/formats/: a three-sample InternVL COCO Caption annotation file
(images are only paths, never opened) and a Data-Juicer ``.json`` video
export (a JSON array); expected/ holds the byte-exact outputs upstream's code
writes for them (jsonlines lines for the DJ format, ``json.dump`` defaults for
EasyAnimate).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import logging
import os
import shutil
from pathlib import Path

import pytest
import yaml

from sandflow.hooks.base import JobRun
from sandflow.hooks.format_conversion import (
    coco_caption_meta_generation,
    coco_caption_to_dj_conversion,
    dj_to_easyanimate_video_dataset_conversion,
    special_token,
)

from helpers.job_runs import job_run
from helpers.paths import TEST_DATA
from helpers.snakemake import job_counts, snakemake

DATA = TEST_DATA / "formats"
COCO = DATA / "coco_karpathy_train_mini.jsonl"
VIDEOS = DATA / "demo-dataset-videos.json"
EXPECTED = DATA / "expected"


def make_job(tmp_path: Path, extra_configs: dict) -> JobRun:
    job_dir = tmp_path / "job"
    export_dir = job_dir / "extra_configs.export_path"
    export_dir.mkdir(parents=True, exist_ok=True)
    extra = {"export_path": str(export_dir), **extra_configs}
    return job_run(
        "GeneralDataExecutorHook", job_dir, extra_configs=extra, log=logging.getLogger("test_format_conversion")
    )


def test_coco_caption_to_dj_adds_images_and_text_with_the_image_token(tmp_path):
    job = make_job(tmp_path, {"type": "coco_caption_to_dj_conversion", "dataset_path": str(COCO)})
    outputs = coco_caption_to_dj_conversion(job)
    expected_path = job.extra_configs["export_path"] + "/coco_karpathy_train_mini_dj_fmt.jsonl"
    assert outputs == [expected_path]
    assert Path(expected_path).read_bytes() == (EXPECTED / "coco_karpathy_train_mini_dj_fmt.jsonl").read_bytes()


def test_coco_caption_to_dj_converts_each_input_in_order_and_honours_dj_token_override(tmp_path, monkeypatch):
    second = tmp_path / "val_split.jsonl"
    shutil.copy(COCO, second)
    monkeypatch.setenv("_DJ_SPECIAL_TOKEN_IMAGE", "<img>")
    job = make_job(tmp_path, {"dataset_path": [str(second), str(COCO)]})
    outputs = coco_caption_to_dj_conversion(job)
    assert [os.path.basename(p) for p in outputs] == ["val_split_dj_fmt.jsonl", "coco_karpathy_train_mini_dj_fmt.jsonl"]
    first_row = json.loads(Path(outputs[0]).read_text(encoding="utf-8").splitlines()[0])
    assert first_row["text"] == "<img> A man with a red helmet on a small moped on a dirt road."
    assert first_row["images"] == ["train2014/COCO_train2014_000000391895.jpg"]


def test_coco_caption_to_dj_names_the_sample_without_a_caption(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"image": "a.jpg", "conversations": [{"from": "human", "value": "<image>"}]}\n')
    with pytest.raises(ValueError, match=rf"^{bad} line 1 has no \['conversations'\]\[1\]$"):
        coco_caption_to_dj_conversion(make_job(tmp_path, {"dataset_path": str(bad)}))


def test_coco_caption_meta_generation_writes_internvl_meta_files(tmp_path):
    data_root = tmp_path / "internvl_chat"
    annotations = data_root / "data" / "coco" / "annotations"
    annotations.mkdir(parents=True)
    dataset = annotations / "pool_top_1.jsonl"
    shutil.copy(COCO, dataset)
    job = make_job(
        tmp_path,
        {
            "type": "coco_caption_meta_generation",
            "dataset_path": [str(dataset)],
            "data_root_path": str(data_root) + "/",
        },
    )
    outputs = coco_caption_meta_generation(job)
    assert outputs == [job.extra_configs["export_path"] + "/pool_top_1_meta.json"]
    assert Path(outputs[0]).read_text() == (
        '{"pool_top_1": {"root": "data/coco/", "annotation": "data/coco/annotations/pool_top_1.jsonl", '
        '"data_augment": false, "repeat_time": 1, "length": 3}}'
    )


def test_coco_caption_meta_generation_defaults_to_paths_relative_to_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    dataset = tmp_path / "pools" / "a.b.jsonl"
    dataset.parent.mkdir()
    dataset.write_text('{"id": 1}\n\n{"id": 2}\n')
    outputs = coco_caption_meta_generation(make_job(tmp_path, {"dataset_path": str(dataset)}))
    meta = json.loads(Path(outputs[0]).read_text())
    assert os.path.basename(outputs[0]) == "a.b_meta.json"
    assert meta == {
        "a.b": {
            "root": "data/coco/",
            "annotation": "pools/a.b.jsonl",
            "data_augment": False,
            "repeat_time": 1,
            "length": 2,
        }
    }


def test_dj_to_easyanimate_strips_the_video_token_and_drops_samples_without_videos(tmp_path):
    job = make_job(tmp_path, {"type": "dj_to_easyanimate_video_dataset_conversion", "dataset_path": str(VIDEOS)})
    outputs = dj_to_easyanimate_video_dataset_conversion(job)
    assert outputs == [job.extra_configs["export_path"] + "/demo-dataset-videos_ea_fmt.json"]
    assert Path(outputs[0]).read_bytes() == (EXPECTED / "demo-dataset-videos_ea_fmt.json").read_bytes()


def test_dj_to_easyanimate_also_reads_json_lines(tmp_path):
    pool = tmp_path / "pool.jsonl"
    pool.write_text('{"videos": ["v.mp4"], "text": "<__dj__video> a cat"}\n')
    outputs = dj_to_easyanimate_video_dataset_conversion(make_job(tmp_path, {"dataset_path": str(pool)}))
    assert Path(outputs[0]).read_text() == '[{"videos": ["v.mp4"], "text": "a cat", "file_path": "v.mp4"}]'


@pytest.mark.parametrize(
    "extra, message",
    [
        ({}, r"^extra_configs.dataset_path must be a dataset path or a non-empty list of them, got None$"),
        ({"dataset_path": "/nonexistent/x.json"}, r"^extra_configs.dataset_path: /nonexistent/x.json does not exist$"),
        (
            {"dataset_path": [str(VIDEOS), str(VIDEOS)]},
            r"^extra_configs.dataset_path: .* would both be written to .*"
            r"demo-dataset-videos_ea_fmt.json: their file names must differ$",
        ),
    ],
)
def test_bad_inputs_name_the_config_key(tmp_path, extra, message):
    with pytest.raises(ValueError, match=message):
        dj_to_easyanimate_video_dataset_conversion(make_job(tmp_path, extra))


def test_export_path_is_required(tmp_path):
    job = make_job(tmp_path, {"dataset_path": str(COCO)})
    job.extra_configs.pop("export_path")
    with pytest.raises(ValueError, match=r"^extra_configs.export_path must be a directory path, got None$"):
        coco_caption_to_dj_conversion(job)


def test_special_tokens_match_data_juicer():
    """Our copy of Data-Juicer's token rule, checked against its constants (read from source: importing costs seconds)."""
    source = Path(importlib.util.find_spec("data_juicer").origin).parent / "utils" / "constant.py"
    constants = {
        target.id: node.value.value
        for node in ast.parse(source.read_text()).body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    assert constants["DEFAULT_PREFIX"] == "__dj__" and constants["SPECIAL_TOKEN_ENV_PREFIX"] == "_DJ_SPECIAL_TOKEN_"
    assert (special_token("image"), special_token("video")) == ("<__dj__image>", "<__dj__video>")


@pytest.mark.slow
def test_conversions_run_through_the_rules_and_rerun_nothing(tmp_path):
    """Both conversions as GeneralDataExecutorHook jobs of one config, the second reading the first's output."""
    shutil.copy(COCO, tmp_path)
    shutil.copy(VIDEOS, tmp_path)
    (tmp_path / "sandbox.yaml").write_text(
        yaml.safe_dump(
            {
                "work_dir": "./out",
                "execution_job_configs": [
                    {
                        "hook": "GeneralDataExecutorHook",
                        "meta_name": "coco_to_dj",
                        "output": "dj_dataset",
                        "extra_configs": {
                            "type": "coco_caption_to_dj_conversion",
                            "dataset_path": "coco_karpathy_train_mini.jsonl",
                            "export_path": "./out/dj_fmt/",
                        },
                    },
                    {
                        "hook": "GeneralDataExecutorHook",
                        "meta_name": "convert_to_ea_fmt",
                        "output": "ea_dataset",
                        "extra_configs": {
                            "type": "dj_to_easyanimate_video_dataset_conversion",
                            "dataset_path": VIDEOS.name,
                            "export_path": "./out/",
                        },
                    },
                ],
            }
        )
    )
    assert job_counts(snakemake(tmp_path, "sandbox.yaml")) == {
        "general_data_executor": 2,
        "publication_record": 1,
        "context_infos": 1,
        "all": 1,
    }
    infos = json.loads((tmp_path / "out" / "context_infos.json").read_text())[0]["pipeline_infos"][0]["job_infos"]
    assert infos == [
        {"meta_name": "coco_to_dj", "dj_dataset": "out/dj_fmt/iter_1/coco_karpathy_train_mini_dj_fmt.jsonl"},
        {"meta_name": "convert_to_ea_fmt", "ea_dataset": "out/iter_1/demo-dataset-videos_ea_fmt.json"},
    ]
    for published, expected in zip(
        [i["dj_dataset" if "dj_dataset" in i else "ea_dataset"] for i in infos],
        ["coco_karpathy_train_mini_dj_fmt.jsonl", "demo-dataset-videos_ea_fmt.json"],
    ):
        assert (tmp_path / published).read_bytes() == (EXPECTED / expected).read_bytes()
    assert job_counts(snakemake(tmp_path, "sandbox.yaml")) == {}
