"""Data-Juicer's own refinement recipes (tests/data/dj_recipes/): every package their text ops import is pinned
and installed, a missing one is named at plan time, and the ops that need no downloaded model give through
ProcessDataHook exactly the rows `dj-process` gives on the same data."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sandflow.hooks.dj_requirements import PINNED_PACKAGES, lazy_packages, missing_requirements, op_requirements

from helpers.dj_jobs import HIT_LINE
from helpers.env import OFFLINE_ENV, environ
from helpers.job_runs import file_logger, job_run
from helpers.paths import REPO

RECIPES = REPO / "tests" / "data" / "dj_recipes"
DJ_PROCESS = Path(sys.executable).parent / "dj-process"
# The ops of each recipe that need a downloaded model or word list, so the test drops them.
MODEL_OPS = {
    "pile-hackernews-refine.yaml": {
        "flagged_words_filter",  # a word list and, tokenization: true, en.sp.model
        "language_id_score_filter",  # lid.176.bin
        "perplexity_filter",  # en.sp.model, en.arpa.bin
        "words_num_filter",  # tokenization: true
        "word_repetition_filter",  # tokenization: true
    },
    "redpajama-arxiv-refine.yaml": {
        "flagged_words_filter",
        "perplexity_filter",
        "words_num_filter",
        "word_repetition_filter",
    },
    "stack-code-refine.yaml": {"alphanumeric_filter"},  # its second one: tokenization: true, a Hugging Face tokenizer
}


def ops_of(recipe: dict) -> list[tuple[str, dict]]:
    return [(name, args or {}) for entry in recipe["process"] for name, args in entry.items()]


def recipe(name: str) -> dict:
    return yaml.safe_load((RECIPES / name).read_text())


@pytest.fixture
def no_models(tmp_path, monkeypatch) -> None:
    """Empty model, word-list and Hugging Face caches: every op that needs one is reported."""
    for variable in ("CACHE_HOME", "DATA_JUICER_MODELS_CACHE", "DATA_JUICER_ASSETS_CACHE", "HF_HOME"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.delenv("DATA_JUICER_EXTERNAL_MODELS_HOME", raising=False)
    monkeypatch.setenv("DATA_JUICER_CACHE_HOME", str(tmp_path / "dj"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.chdir(tmp_path)


def model_free(name: str) -> dict:
    """The recipe without the ops that need a model (or word list) this machine lacks."""
    kept = [{op: args} for op, args in ops_of(recipe(name)) if not op_requirements(op, args)]
    return {**recipe(name), "process": kept}


def test_every_package_the_recipes_ops_import_is_pinned_and_installed():
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        match = re.match(r"([A-Za-z0-9_.-]+)==(\S+)", line.split("#")[0].strip())
        if match:
            pins[match.group(1).lower()] = match.group(2)
    needed = {
        package
        for path in RECIPES.glob("*.yaml")
        for op, _ in ops_of(recipe(path.name))
        for _, package in lazy_packages(op)
    }
    assert needed == {"ftfy", "simhash-pybind"}  # fix_unicode_mapper, document_simhash_deduplicator
    assert {package: pins.get(package) for package in needed} == {p: PINNED_PACKAGES[p] for p in needed}
    assert {package: pins.get(package.lower()) for package in PINNED_PACKAGES} == PINNED_PACKAGES
    for path in RECIPES.glob("*.yaml"):
        assert not [line for line in missing_requirements(recipe(path.name)) if "Python package" in line]


def test_an_op_whose_package_is_missing_is_named_with_what_to_install():
    # opencc is not installed here (nor pinned): chinese_convert_mapper imports it lazily
    lines = missing_requirements(
        {"process": [{"fix_unicode_mapper": None}, {"chinese_convert_mapper": {"mode": "s2t"}}]}
    )
    assert lines == ["process[1] chinese_convert_mapper needs the Python package opencc: pip install opencc"]
    # a package named apart from its module, from the op's own LazyLoader call
    assert lazy_packages("document_simhash_deduplicator") == (("simhash", "simhash-pybind"),)
    [line] = missing_requirements({"process": [{"video_ffmpeg_wrapped_mapper": None}]})
    assert line == (
        "process[0] video_ffmpeg_wrapped_mapper needs the Python package ffmpeg-python (import ffmpeg): "
        "pip install ffmpeg-python"
    )


def test_the_model_ops_are_the_ones_dropped(no_models):
    for name, expected in MODEL_OPS.items():
        dropped = [op for op, args in ops_of(recipe(name)) if op_requirements(op, args)]
        assert set(dropped) == expected, name
        kept = [op for entry in model_free(name)["process"] for op in entry]
        assert {"fix_unicode_mapper", "document_simhash_deduplicator"} <= set(kept)


# ---- rows, against dj-process ----------------------------------------------------------------------------------

PROSE = (
    "sandflow keeps every job in its own directory and data juicer cleans the text before training small "
    "models on it while the sandbox compares recipes and keeps the best one for the next round of work"
).split()
CODE_LINES = [
    "def add(a, b):",
    "    return a + b  # the sum of two numbers",
    "class Pool:",
    "    def __init__(self, rows):",
    "        self.rows = list(rows)",
    "for index, row in enumerate(rows):",
    "    print(index, row)  # show each row",
]


def documents() -> list[str]:
    """Prose and code with what the recipes' mappers clean (emails, links, mojibake, curly quotes, odd spaces,
    copyright headers) and what their filters and the simhash deduplicator drop (short, repetitive, near copies)."""
    rng = random.Random(26)
    docs = []
    for number in range(36):
        kind = number % 6
        if kind == 0:
            lines = [" ".join(rng.choice(PROSE) for _ in range(rng.randint(8, 14))) for _ in range(rng.randint(3, 6))]
            docs.append(
                "\n".join(lines) + f"\nWrite to someone{number}@example.com or see https://example.org/p/{number}"
            )
        elif kind == 1:
            body = " ".join(rng.choice(PROSE) for _ in range(40))
            docs.append(f"The caf\u00c3\u00a9 said \u201cit\u2019s fine\u201d \u2014 really\u00a0so.\u2003{body}")
        elif kind == 2:
            code = "\n".join(rng.choice(CODE_LINES) for _ in range(rng.randint(6, 12)))
            docs.append(f"# Copyright (c) 2024 Someone\n# All rights reserved.\n{code}\n")
        elif kind == 3:
            docs.append("too short")
        elif kind == 4:
            docs.append("aaaaaaaaaa" * 30 + "\n" + "bbbbbbbbbb" * 30)
        else:
            docs.append(docs[-5].replace(" ", ", ", 2) + "!")  # a near copy of the prose above: its punctuation differs
    return docs


def write_dataset(path: Path, text_key: str) -> int:
    docs = documents()
    path.write_text("".join(json.dumps({text_key: doc, "meta": {"id": i}}) + "\n" for i, doc in enumerate(docs)))
    return len(docs)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODEL_OPS))
def test_model_free_ops_give_dj_process_rows_byte_for_byte(name, tmp_path, no_models):
    from sandflow.hooks.data_juicer import process_data

    reduced = model_free(name)
    dataset = tmp_path / "data.jsonl"
    total = write_dataset(dataset, reduced.get("text_keys", "text"))
    settings = {"dataset_path": str(dataset), "np": 1, "skip_op_error": False, "open_tracer": False}
    settings["use_cache"] = False

    dj_recipe = {**reduced, **settings, "export_path": str(tmp_path / "dj" / "out.jsonl")}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(dj_recipe, sort_keys=False))
    with environ({**OFFLINE_ENV, "HF_DATASETS_CACHE": str(tmp_path / "hf_datasets")}):
        upstream = subprocess.run(
            [str(DJ_PROCESS), "--config", str(tmp_path / "recipe.yaml")],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
            env=dict(os.environ),
        )
        assert upstream.returncode == 0, upstream.stderr[-3000:]
        # a job of a work_dir, as a run lays it out: the stats cache is on, and fills as the recipe runs
        job_dir = tmp_path / "work" / "jobs" / "ProcessDataHook" / "recipe.partial-1"
        job_dir.mkdir(parents=True)
        ours = {**reduced, **settings, "export_path": str(job_dir / "export" / "out.jsonl")}
        job = job_run(
            "ProcessDataHook", job_dir, dj_configs=ours, log=file_logger(f"recipes.{name}", tmp_path / "job.log")
        )
        exported = Path(process_data(job))

    expected = (tmp_path / "dj" / "out.jsonl").read_bytes()
    assert exported.read_bytes() == expected
    computed = [int(match[3]) for match in HIT_LINE.finditer((tmp_path / "job.log").read_text())]
    assert computed and all(computed)  # the covered filters computed through the stats cache
    rows = [json.loads(line) for line in expected.decode().splitlines()]
    text_key = reduced.get("text_keys", "text")
    assert 0 < len(rows) < total
    texts = [row[text_key] for row in rows]
    assert not any("@example.com" in text or "\u00c3" in text for text in texts)  # emails and mojibake cleaned
    if name != "stack-code-refine.yaml":
        assert any("caf\u00e9" in text for text in texts)  # ftfy repaired it
        kept_ids = {row["meta"]["id"] for row in rows}
        assert {i for i in kept_ids if i % 6 == 0}  # originals survive: their copies had something to match
        assert not {i for i in kept_ids if i % 6 == 5 and i - 5 in kept_ids}  # no near copy kept beside its original
