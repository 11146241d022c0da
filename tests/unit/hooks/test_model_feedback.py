"""RefineRecipeViaModelFeedbackHook: the best pools' stat ranges become the recipe's thresholds."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import yaml

from sandflow.hooks.base import JobRun
from sandflow.hooks.model_feedback import CHANGES_CSV, refine_recipe_via_model_feedback

from helpers.job_runs import job_run

RECIPE = {
    "project_name": "p",
    "process": [
        {"text_length_filter": {"min_len": 5}},
        {"alphanumeric_filter": None},
        {"special_characters_filter": {"reversed_range": True}},
        {"words_num_filter": {}},
    ],
}


def write_pool(path: Path, stats: list[dict]) -> str:
    path.write_text("".join(json.dumps({"text": f"t{i}", "__dj__stats__": s}) + "\n" for i, s in enumerate(stats)))
    return str(path)


def job_for(tmp_path: Path, dataset_path, recipe=RECIPE, target: str = "recipe.yaml") -> JobRun:
    job_dir = tmp_path / "job"
    job_dir.mkdir(parents=True)
    return job_run(
        "RefineRecipeViaModelFeedbackHook",
        job_dir,
        dj_configs=recipe,
        extra_configs={"dataset_path": dataset_path, "path_model_feedback_recipe": str(job_dir / target)},
        log=logging.getLogger("test"),
    )


def test_thresholds_become_the_observed_ranges_of_the_best_pools(tmp_path: Path):
    first = write_pool(
        tmp_path / "a.jsonl",
        [
            {"text_len": 40, "alnum_ratio": 0.71, "special_char_ratio": 0.2},
            {"text_len": 52, "alnum_ratio": 0.8, "special_char_ratio": 0.3},
        ],
    )
    second = write_pool(tmp_path / "b.jsonl", [{"text_len": 33.5, "alnum_ratio": 0.75, "special_char_ratio": 0.1}])
    job = job_for(tmp_path, [[first], second])  # refs may pass lists of lists
    path = refine_recipe_via_model_feedback(job)
    refined = yaml.safe_load(Path(path).read_text())
    assert refined["process"] == [
        {"text_length_filter": {"min_len": 33, "max_len": 52}},  # integers rounded outwards
        {"alphanumeric_filter": {"min_ratio": 0.71, "max_ratio": 0.8}},
        {"special_characters_filter": {"reversed_range": True}},  # keeps the outside: unchanged
        {"words_num_filter": {}},  # no num_words stat in the pools: unchanged
    ]
    assert refined["skip_op_error"] is False and refined["project_name"] == "p"
    rows = (job.job_dir / CHANGES_CSV).read_text().splitlines()
    assert rows[1].startswith("0,text_length_filter,min_len,text_len,5,33,")
    assert "stat num_words not in the pools: unchanged" in rows[-1]


def test_pools_without_stats_and_missing_pools_are_errors(tmp_path: Path):
    bare = tmp_path / "bare.jsonl"
    bare.write_text('{"text": "x"}\n')
    with pytest.raises(ValueError, match=r"no sample of .*bare\.jsonl carries Data-Juicer stats"):
        refine_recipe_via_model_feedback(job_for(tmp_path, str(bare)))
    with pytest.raises(FileNotFoundError, match=r"extra_configs\.dataset_path: pool .*missing\.jsonl does not exist"):
        refine_recipe_via_model_feedback(job_for(tmp_path / "other", str(tmp_path / "missing.jsonl")))


def test_the_recipe_file_suffix_decides_the_format(tmp_path: Path):
    pool = write_pool(tmp_path / "a.jsonl", [{"text_len": 12}])
    path = refine_recipe_via_model_feedback(job_for(tmp_path, pool, target="recipe.json"))
    assert json.loads(Path(path).read_text())["process"][0] == {"text_length_filter": {"min_len": 12, "max_len": 12}}
    with pytest.raises(ValueError, match=r"path_model_feedback_recipe must end with \.yaml, \.yml or \.json"):
        refine_recipe_via_model_feedback(job_for(tmp_path / "x", pool, target="recipe.txt"))


@pytest.mark.parametrize(
    ("extra_configs", "message"),
    [
        (
            {"dataset_path": "pools/best.jsonl"},
            "execution_job_configs[0].extra_configs.path_model_feedback_recipe: "
            "RefineRecipeViaModelFeedbackHook needs path_model_feedback_recipe",
        ),
        (
            {"path_model_feedback_recipe": "out/recipe.yaml"},
            "execution_job_configs[0].extra_configs.dataset_path: RefineRecipeViaModelFeedbackHook needs dataset_path",
        ),
        (
            {"dataset_path": "pools/missing.jsonl", "path_model_feedback_recipe": "out/recipe.yaml"},
            "execution_job_configs[0].extra_configs.dataset_path: file not found: pools/missing.jsonl",
        ),
    ],
)
def test_what_the_hook_needs_is_checked_when_planning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra_configs: dict, message: str
):
    # Found by `sandflow check` before any job runs, not by the job after everything upstream of it ran.
    from sandflow.config.errors import ConfigError
    from sandflow.config.load import load_config
    from sandflow.plan.planner import plan_config

    monkeypatch.chdir(tmp_path)
    config = {
        "work_dir": "work",
        "execution_job_configs": [
            {"hook": "RefineRecipeViaModelFeedbackHook", "dj_configs": RECIPE, "extra_configs": extra_configs}
        ],
    }
    with pytest.raises(ConfigError) as caught:
        plan_config(load_config(config))
    assert str(caught.value).startswith(message)
