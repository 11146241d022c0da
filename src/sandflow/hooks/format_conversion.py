"""GeneralDataExecutorHook components: dataset format conversions of DJ-Sandbox.

Each takes ``extra_configs.dataset_path`` (one path or a list), writes one
file per input into the directory ``extra_configs.export_path`` and returns
the list of written paths, in input order (a one-element list becomes a single
output by DJ-Sandbox's rule):

* ``coco_caption_to_dj_conversion``: InternVL COCO Caption annotations (JSON
  lines with ``image`` and ``conversations``) -> ``<name>_dj_fmt.jsonl``: each
  sample keeps its fields and gains ``images: [image]`` and ``text: "<image
  token> <caption>"``, the caption being the second turn of the conversation.
* ``coco_caption_meta_generation``: -> ``<name>_meta.json``, InternVL's meta
  file ``{<name>: {root, annotation, data_augment, repeat_time, length}}``
  with ``annotation`` the dataset's path relative to
  ``extra_configs.data_root_path`` (default: the current directory, as
  upstream) and ``length`` its number of samples.
* ``dj_to_easyanimate_video_dataset_conversion``: a Data-Juicer video dataset
  -> ``<name>_ea_fmt.json`` (a JSON array): the video token is removed from
  ``text`` (then stripped), ``file_path`` is the first of ``videos``, and
  samples without videos are dropped.

Files are written as upstream writes them (jsonlines' ``ensure_ascii=False``
lines; ``json.dump`` defaults, no trailing newline, for the ``.json`` files).
Images and videos are never opened. The special tokens are Data-Juicer's
(``<__dj__image>``, ``<__dj__video>``, overridable by the same
``_DJ_SPECIAL_TOKEN_<NAME>`` environment variables), read without importing
Data-Juicer.

Differences from upstream: a missing input file, a missing field (named with
its file and line) and two inputs that would write the same output file are
errors (upstream skips missing inputs, crashes with a KeyError, or silently
overwrites); every input may be JSON lines or a JSON array (upstream reads
COCO annotations only as JSON lines and Data-Juicer video datasets only as a
JSON array).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sandflow.hooks.base import JobRun
from sandflow.hooks.data_evaluators import Samples, dataset_paths, read_samples
from sandflow.hooks.pool_io import Sample

__all__ = [
    "special_token",
    "coco_caption_to_dj_conversion",
    "coco_caption_meta_generation",
    "dj_to_easyanimate_video_dataset_conversion",
]

# data_juicer.utils.constant: SPECIAL_TOKEN_ENV_PREFIX and DEFAULT_PREFIX (a test checks them against Data-Juicer).
SPECIAL_TOKEN_ENV_PREFIX = "_DJ_SPECIAL_TOKEN_"
DEFAULT_PREFIX = "__dj__"

# InternVL's meta entry for COCO Caption (its shell/data/coco_caption.json); annotation and length are replaced.
COCO_META_ROOT = "data/coco/"


def special_token(modality: str) -> str:
    """Data-Juicer's SpecialTokens.<modality>: ``<__dj__image>`` unless its environment variable overrides it."""
    return os.environ.get(f"{SPECIAL_TOKEN_ENV_PREFIX}{modality.upper()}", f"<{DEFAULT_PREFIX}{modality}>")


def _export_dir(job: JobRun) -> Path:
    value = (job.extra_configs or {}).get("export_path")
    if not isinstance(value, str) or not value:
        raise ValueError(f"extra_configs.export_path must be a directory path, got {value!r}")
    os.makedirs(value, exist_ok=True)
    return Path(value)


def _convert_each(job: JobRun, output_name: Callable[[str], str], write: Callable[[str, Path], None]) -> list[str]:
    """Call write(input path, output path) for each input; the output paths in input order."""
    export_dir = _export_dir(job)
    outputs: dict[str, str] = {}
    for src_path in dataset_paths(job.extra_configs or {}, "dataset_path"):
        output_path = export_dir / output_name(src_path)
        if str(output_path) in outputs:
            raise ValueError(
                f"extra_configs.dataset_path: {src_path} and {outputs[str(output_path)]} would both be "
                f"written to {output_path}: their file names must differ"
            )
        outputs[str(output_path)] = src_path
        write(src_path, output_path)
        job.log.info("converted %s -> %s", src_path, output_path)
    return list(outputs)


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def _field(samples: Samples, index: int, *keys: str | int) -> Any:
    """samples[index][k1][k2]..., or a ValueError naming the file, line and missing field."""
    value: Any = samples[index]
    for depth, key in enumerate(keys):
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            path = "".join(f"[{k!r}]" for k in keys[: depth + 1])
            raise ValueError(f"{samples.where(index)} has no {path}") from None
    return value


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)


def _convert_samples(
    job: JobRun, suffix: str, convert: Callable[[Samples, int], Sample | None], dump: Callable[[list[Sample]], str]
) -> list[str]:
    """Convert each input sample by sample (None drops a sample); write ``<export_path>/<name><suffix>`` each."""

    def write(src_path: str, output_path: Path) -> None:
        samples = read_samples(src_path)
        converted = [row for index in range(len(samples)) if (row := convert(samples, index)) is not None]
        if samples and not converted:
            job.log.warning("%s has no sample to convert: %s holds none", src_path, output_path)
        _write_text(output_path, dump(converted))

    return _convert_each(job, lambda src: f"{_stem(src)}{suffix}", write)


def _json_lines(samples: list[Sample]) -> str:
    return "".join(json.dumps(sample, ensure_ascii=False) + "\n" for sample in samples)


def coco_caption_to_dj_conversion(job: JobRun) -> list[str]:
    """InternVL COCO Caption annotations -> Data-Juicer format, ``<export_path>/<name>_dj_fmt.jsonl`` each."""
    image_token = special_token("image")

    def convert(samples: Samples, index: int) -> Sample:
        sample = samples[index]
        sample["images"] = [_field(samples, index, "image")]
        sample["text"] = f"{image_token} {_field(samples, index, 'conversations', 1, 'value')}"
        return sample

    return _convert_samples(job, "_dj_fmt.jsonl", convert, _json_lines)


def coco_caption_meta_generation(job: JobRun) -> list[str]:
    """An InternVL meta file per COCO Caption dataset, ``<export_path>/<name>_meta.json`` each."""
    data_root = (job.extra_configs or {}).get("data_root_path") or os.curdir
    if not isinstance(data_root, str):
        raise ValueError(f"extra_configs.data_root_path must be a directory path, got {data_root!r}")

    def write(src_path: str, output_path: Path) -> None:
        meta = {
            "root": COCO_META_ROOT,
            "annotation": os.path.relpath(os.path.abspath(src_path), data_root),
            "data_augment": False,
            "repeat_time": 1,
            "length": len(read_samples(src_path)),
        }
        _write_text(output_path, json.dumps({_stem(src_path): meta}))

    return _convert_each(job, lambda src: f"{_stem(src)}_meta.json", write)


def dj_to_easyanimate_video_dataset_conversion(job: JobRun) -> list[str]:
    """Data-Juicer video datasets -> EasyAnimate's video dataset format, ``<export_path>/<name>_ea_fmt.json`` each.

    Samples without a video are dropped."""
    video_token = special_token("video")

    def convert(samples: Samples, index: int) -> Sample | None:
        text, videos = _field(samples, index, "text"), _field(samples, index, "videos")
        if not isinstance(text, str) or not isinstance(videos, list):
            raise ValueError(f"{samples.where(index)}: 'text' must be a string and 'videos' a list")
        if not videos:
            return None
        sample = samples[index]
        sample["text"] = text.replace(video_token, "").strip()
        sample["file_path"] = videos[0]
        return sample

    return _convert_samples(job, "_ea_fmt.json", convert, json.dumps)
