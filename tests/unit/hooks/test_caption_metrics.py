"""EvaluateDataHook `coco_caption`: pycocoevalcap's scores, checked by hand on captions small enough to count."""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path

import pytest

from sandflow.hooks.caption_metrics import caption_scores, coco_caption_evaluator, references

from helpers.job_runs import job_run

JAVA = shutil.which("java") is not None


def test_bleu_1_and_rouge_l_of_a_short_caption_by_hand():
    # "a cat sat" against "a cat sat on the mat": every word matches (precision 1), the brevity penalty
    # is exp(1 - 6/3); the longest common subsequence is 3 words, precision 3/3, recall 3/6, and
    # ROUGE-L's F with beta 1.2 is (1 + 1.2^2) P R / (R + 1.2^2 P).
    scores = caption_scores(["a cat sat"], [["a cat sat on the mat"]], use_java=False)
    assert scores["Bleu_1"] == pytest.approx(math.exp(1 - 6 / 3), rel=1e-6)
    assert scores["ROUGE_L"] == pytest.approx((1 + 1.44) * 1 * 0.5 / (0.5 + 1.44 * 1), rel=1e-6)
    assert "METEOR" not in scores
    assert scores["avg_score"] == pytest.approx(sum(v for k, v in scores.items() if k != "avg_score") / 6)


def test_the_closest_reference_counts_and_a_disjoint_caption_scores_zero():
    perfect = caption_scores(
        ["a dog runs on grass", "two birds in a tree"],
        [["a dog runs on grass", "a puppy on a lawn"], ["two birds in a tree"]],
        use_java=False,
    )
    assert [perfect[f"Bleu_{n}"] for n in (1, 2, 3, 4)] == pytest.approx([1.0] * 4, rel=1e-6)
    assert perfect["ROUGE_L"] == pytest.approx(1.0)
    disjoint = caption_scores(["blue sky", "red car"], [["a dog runs"], ["two birds"]], use_java=False)
    assert (
        disjoint["Bleu_1"] == pytest.approx(0.0, abs=1e-9) and disjoint["ROUGE_L"] == 0.0 and disjoint["CIDEr"] == 0.0
    )


@pytest.mark.slow  # Java start-up: about 35 s here
@pytest.mark.skipif(not JAVA, reason="METEOR and the PTB tokenizer are Java programs")
def test_with_java_the_evaluator_reports_internvls_keys_for_each_dataset(tmp_path: Path):
    predicted = tmp_path / "pred.jsonl"
    predicted.write_text(
        "".join(
            json.dumps(row) + "\n"
            for row in [
                {"caption": "A man riding a horse.", "refs": ["A man rides a horse.", "Someone on a horse."]},
                {"caption": "A bowl of fruit.", "refs": "A bowl full of fruit."},
            ]
        )
    )
    job = job_run(
        "EvaluateDataHook",
        tmp_path,
        log=logging.getLogger("test_caption_metrics"),
        extra_configs={
            "type": "coco_caption",
            "predicted_dataset_path": str(predicted),
            "predicted_caption_key": "caption",
            "ground_truth_caption_key": "refs",
        },
    )
    results, best = coco_caption_evaluator(job)
    (result,) = results
    assert list(result) == [
        "pred_path",
        "gt_path",
        "Bleu_1",
        "Bleu_2",
        "Bleu_3",
        "Bleu_4",
        "METEOR",
        "ROUGE_L",
        "CIDEr",
        "avg_score",
    ]
    assert 0 < result["METEOR"] < 1 and 0 < result["Bleu_1"] <= 1 and best == result["avg_score"]


def test_a_reference_that_is_not_a_caption_names_its_sample():
    assert references("ok", "reference 1 (refs)") == ["ok"]
    with pytest.raises(
        ValueError, match=r"^reference 2 \(refs\): a reference must be a caption or a list of captions, got 3$"
    ):
        references(3, "reference 2 (refs)")
