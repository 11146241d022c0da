"""Which argument of which Data-Juicer filter is a threshold on which stat: the table k-sigma (and model-feedback)
refinement rewrites, and why the filters it leaves alone are left alone.

A filter is in ``THRESHOLDS`` when it keeps a sample (or, with ``any_or_all``, each image, video or audio of it)
whose stat lies in [min argument, max argument]: the analysis summarises that same stat (per item for
multimodal stats, which are lists), so mean -/+ k * std maps onto the pair without interpretation. Names,
types and defaults are py-data-juicer 1.6.1's (tests/unit/hooks/test_dj_hooks.py checks them against Data-Juicer).
Every other filter a recipe names is listed in k_sigma_changes as unchanged, with ``unrefined_reason``.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

INT_MAX = 9223372036854775807  # sys.maxsize: Data-Juicer's default for "no upper bound"
FLOAT_MAX = sys.float_info.max  # video_motion_score_filter's


@dataclass(frozen=True)
class Threshold:
    """One threshold argument of a Data-Juicer filter and the stat it is compared with."""

    arg: str
    stat: str
    bound: str  # "min" or "max"
    integer: bool
    default: int | float | str
    # Only when the op's ``tokenization`` argument has this value (alphanumeric_filter); None: always.
    tokenization: bool | None = None
    # A size in bytes written as text ("1048576"), the form Data-Juicer's size_to_bytes reads ("1TB" too).
    byte_size: bool = False

    def written(self, value: float) -> int | float | str:
        """A refined value as the op reads it: whole numbers rounded outwards (a min down, a max up), so rounding
        never drops a sample that the exact value keeps (Data-Juicer's intervals are closed by default)."""
        if self.integer or self.byte_size:
            whole = math.floor(value) if self.bound == "min" else math.ceil(value)
            return str(whole) if self.byte_size else whole
        return float(value)


def _pair(
    stat: str,
    low: str,
    high: str | None,
    integer: bool,
    low_default: float | str,
    high_default: float | str | None,
    tokenization: bool | None = None,
    byte_size: bool = False,
) -> tuple[Threshold, ...]:
    pair = [Threshold(low, stat, "min", integer, low_default, tokenization, byte_size)]
    if high is not None:
        pair.append(Threshold(high, stat, "max", integer, high_default, tokenization, byte_size))
    return tuple(pair)


def _scores(stat: str, low_default: float, high_default: float) -> tuple[Threshold, ...]:
    return _pair(stat, "min_score", "max_score", False, low_default, high_default)


def _shape(prefix: str) -> tuple[Threshold, ...]:
    return _pair(f"{prefix}_width", "min_width", "max_width", True, 1, INT_MAX) + _pair(
        f"{prefix}_height", "min_height", "max_height", True, 1, INT_MAX
    )


# op name -> its threshold arguments.
THRESHOLDS: dict[str, tuple[Threshold, ...]] = {
    "text_length_filter": _pair("text_len", "min_len", "max_len", True, 10, INT_MAX),
    "alphanumeric_filter": (
        _pair("alnum_ratio", "min_ratio", "max_ratio", False, 0.25, INT_MAX, tokenization=False)
        + _pair("alpha_token_ratio", "min_ratio", "max_ratio", False, 0.25, INT_MAX, tokenization=True)
    ),
    "special_characters_filter": _pair("special_char_ratio", "min_ratio", "max_ratio", False, 0.0, 0.25),
    "character_repetition_filter": _pair("char_rep_ratio", "min_ratio", "max_ratio", False, 0.0, 0.5),
    "word_repetition_filter": _pair("word_rep_ratio", "min_ratio", "max_ratio", False, 0.0, 0.5),
    "words_num_filter": _pair("num_words", "min_num", "max_num", True, 10, INT_MAX),
    "average_line_length_filter": _pair("avg_line_length", "min_len", "max_len", True, 10, INT_MAX),
    "maximum_line_length_filter": _pair("max_line_length", "min_len", "max_len", True, 10, INT_MAX),
    "language_id_score_filter": _pair("lang_score", "min_score", None, False, 0.8, None),
    "perplexity_filter": _pair("perplexity", "min_ppl", "max_ppl", False, 0, 1500),
    "stopwords_filter": _pair("stopwords_ratio", "min_ratio", "max_ratio", False, 0.3, 1.0),
    "flagged_words_filter": _pair("flagged_words_ratio", "min_ratio", "max_ratio", False, 0.0, 0.045),
    "token_num_filter": _pair("num_token", "min_num", "max_num", True, 10, INT_MAX),
    "text_action_filter": _pair("num_action", "min_action_num", None, True, 1, None),
    "text_entity_dependency_filter": _pair("num_dependency_edges", "min_dependency_num", None, True, 1, None),
    # images (each image's stat; any_or_all decides for the sample)
    "image_aesthetics_filter": _scores("image_aesthetics_scores", 0.5, 1.0),
    "image_aspect_ratio_filter": _pair("aspect_ratios", "min_ratio", "max_ratio", False, 0.333, 3.0),
    "image_face_count_filter": _pair("face_counts", "min_face_count", "max_face_count", True, 1, 1),
    "image_face_ratio_filter": _pair("face_ratios", "min_ratio", "max_ratio", False, 0.0, 0.4),
    "image_nsfw_filter": _scores("image_nsfw_score", 0.0, 0.5),
    "image_pair_similarity_filter": _scores("image_pair_similarity", 0.1, 1.0),
    "image_shape_filter": _shape("image"),
    "image_size_filter": _pair("image_sizes", "min_size", "max_size", False, "0", "1TB", byte_size=True),
    "image_text_matching_filter": _scores("image_text_matching_score", 0.003, 1.0),
    "image_text_similarity_filter": _scores("image_text_similarity", 0.1, 1.0),
    "phrase_grounding_recall_filter": _pair("phrase_grounding_recall", "min_recall", "max_recall", False, 0.1, 1.0),
    # videos (video_aspect_ratio_filter reads its bounds with Fraction(str(value)): a float is read exactly)
    "video_aesthetics_filter": _scores("video_frames_aesthetics_score", 0.4, 1.0),
    "video_aspect_ratio_filter": _pair("video_aspect_ratios", "min_ratio", "max_ratio", False, "9/21", "21/9"),
    "video_duration_filter": _pair("video_duration", "min_duration", "max_duration", False, 0, INT_MAX),
    "video_frames_text_similarity_filter": _scores("video_frames_text_similarity", 0.1, 1.0),
    "video_motion_score_filter": _scores("video_motion_score", 0.25, FLOAT_MAX),
    "video_motion_score_raft_filter": _scores("video_motion_score", 1.0, FLOAT_MAX),
    "video_motion_score_ptlflow_filter": _scores("video_motion_score", 1.0, FLOAT_MAX),
    "video_nsfw_filter": _scores("video_nsfw_score", 0.0, 0.5),
    "video_ocr_area_ratio_filter": _pair("video_ocr_area_ratio", "min_area_ratio", "max_area_ratio", False, 0, 1.0),
    "video_resolution_filter": _shape("video"),
    # audio
    "audio_duration_filter": _pair("audio_duration", "min_duration", "max_duration", True, 0, INT_MAX),
    "audio_nmf_snr_filter": _pair("audio_nmf_snr", "min_snr", "max_snr", False, 0, INT_MAX),
    "audio_size_filter": _pair("audio_sizes", "min_size", "max_size", False, "0", "1TB", byte_size=True),
}

_ONE_PROBABILITY = "one threshold, prob_threshold, above which it drops: not a [min, max] pair of a stat"
# Filters whose thresholds are no [min, max] of one analysed stat, and why.
UNREFINED: dict[str, str] = {
    "image_watermark_filter": _ONE_PROBABILITY,
    "video_watermark_filter": _ONE_PROBABILITY,
    "image_subplot_filter": "its thresholds tune a line detector (line counts, confidence), not a [min, max] of a stat",
    "video_face_ratio_filter": "its threshold is the share of frames with a face, which the analysis does not summarise",
    "video_tagging_from_frames_filter": "it keeps samples by their tags, not by a number",
}


def unrefined_reason(op_name: str) -> str | None:
    """Why a filter of the recipe is left as it is; None for an op that is no filter, or one in THRESHOLDS."""
    if op_name in THRESHOLDS or not op_name.endswith("_filter"):
        return None
    return UNREFINED.get(op_name, "sandflow has no k-sigma rule for this filter: its thresholds are not in its table")
