"""The model demo's parse_output_func: the first word of a completion, as the answer to compare with the truth.

Referenced from configs/model_demo/sandbox.yaml as ``configs.model_demo.answers:first_word``
(imported with the directory snakemake runs in on the import path).
"""

from __future__ import annotations

import string
from typing import Any

# Sentence punctuation around the word ("Quibb." -> "Quibb"); letters inside a word stay.
PUNCTUATION = string.punctuation + "“”‘’"


def first_word(output: str, item: dict[str, Any], **kwargs: Any) -> str:
    """The completion's first whitespace-separated word without surrounding punctuation ('' for an empty one)."""
    words = output.split()
    return words[0].strip(PUNCTUATION) if words else ""
