"""EvaluateDataHook type ``coco_caption``: caption metrics as InternVLCOCOCaptionEvaluator reports them.

Compares predicted captions with reference captions, sample by sample (line order, as ``accuracy``
and ``mse``), with pycocoevalcap, the COCO caption evaluation code InternVL's own evaluation uses:
Bleu_1..4, METEOR, ROUGE_L, CIDEr, and their mean as ``avg_score``. Config (``extra_configs``):
``predicted_dataset_path`` (one path or a list), ``ground_truth_dataset_path`` (as many, or none: the
references are read from the predicted datasets), ``predicted_caption_key`` and
``ground_truth_caption_key`` (a reference is one caption or a list of them).

Upstream has no data-side caption evaluator: it reads these scores from InternVL's log on a GPU
(EvaluateModelHook ``internvl_coco_caption``). This one runs on a CPU over any inference output.
Captions are tokenized with pycocoevalcap's PTB tokenizer and METEOR computed when Java is on PATH
(both are Java programs shipped in the package); without Java, a lowercase word tokenizer is used and
METEOR is left out, and the job log says so. SPICE is left out: it downloads Stanford CoreNLP models
on first use, and these machines have no internet.

Returns two outputs, as ``accuracy``: one result per predicted dataset (``pred_path``, ``gt_path`` and
the scores) and the best ``avg_score``.
"""

from __future__ import annotations

import re
import shutil
from typing import Any

from sandflow.hooks.base import JobRun
from sandflow.hooks.data_evaluators import score_each

WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def references(value: Any, where: str) -> list[str]:
    captions = [value] if isinstance(value, str) else value
    if not isinstance(captions, list) or not captions or not all(isinstance(c, str) for c in captions):
        raise ValueError(f"{where}: a reference must be a caption or a list of captions, got {value!r}")
    return captions


def tokenized(captions: dict[int, list[str]], use_java: bool) -> dict[int, list[str]]:
    if use_java:
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

        return PTBTokenizer().tokenize({i: [{"caption": c} for c in cs] for i, cs in captions.items()})
    return {i: [" ".join(WORD.findall(c.lower())) for c in cs] for i, cs in captions.items()}


def caption_scores(predicted: list[str], refs: list[list[str]], use_java: bool) -> dict[str, float]:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    gts = tokenized(dict(enumerate(refs)), use_java)
    res = tokenized({i: [p] for i, p in enumerate(predicted)}, use_java)
    scores: dict[str, float] = {}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    scores.update({f"Bleu_{n}": float(b) for n, b in enumerate(bleu, 1)})
    if use_java:
        from pycocoevalcap.meteor.meteor import Meteor

        scores["METEOR"] = float(Meteor().compute_score(gts, res)[0])
    scores["ROUGE_L"] = float(Rouge().compute_score(gts, res)[0])
    scores["CIDEr"] = float(Cider().compute_score(gts, res)[0])
    scores["avg_score"] = sum(scores.values()) / len(scores)
    return scores


def coco_caption_evaluator(job: JobRun) -> tuple[list[dict[str, Any]], float]:
    use_java = shutil.which("java") is not None
    if not use_java:
        job.log.warning("no java on PATH: captions are split into lowercase words and METEOR is left out")

    def score(pred_rows: Any, truth_rows: Any, pred_key: str, truth_key: str) -> dict[str, float]:
        if len(pred_rows) != len(truth_rows):
            raise ValueError(
                f"{len(pred_rows)} predicted captions but {len(truth_rows)} references: give one per sample"
            )
        predicted = [str(row.get(pred_key, "")) for row in pred_rows]
        refs = [references(row.get(truth_key), f"reference {n + 1} ({truth_key})") for n, row in enumerate(truth_rows)]
        return caption_scores(predicted, refs, use_java)

    results = score_each(job, "predicted_caption_key", "ground_truth_caption_key", score)
    return results, max(r["avg_score"] for r in results)
