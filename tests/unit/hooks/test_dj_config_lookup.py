"""jsonargparse's action lookups answered once per parse (hooks/dj_config_lookup.py): Data-Juicer's config init
gives the same config, and the same error, with fewer scans of the parser's actions."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml
from jsonargparse import ArgumentParser, _core, _subcommands

from sandflow.hooks import dj_config_lookup
from sandflow.hooks.dj_config_lookup import lookups_once_per_parse

from helpers.paths import REPO

DEMO = yaml.safe_load((REPO / "configs/demo/process.yaml").read_text())
# Ops of every kind, nested and list arguments, defaults left out.
MIXED_OPS = [
    {"clean_links_mapper": None},
    {"whitespace_normalization_mapper": {}},
    {"language_id_score_filter": {"lang": ["en", "zh"], "min_score": 0.5}},
    {"stopwords_filter": {"lang": "en", "tokenization": False, "min_ratio": 0.1}},
    {"text_length_filter": {"min_len": 10, "max_len": 10000}},
    {"document_deduplicator": {"lowercase": True, "ignore_non_character": True}},
    {"topk_specified_field_selector": {"field_key": "meta.score", "top_ratio": 0.5}},
]


def recipe(tmp_path: Path, ops: list[dict]) -> dict:
    return {
        **copy.deepcopy(DEMO),
        "process": copy.deepcopy(ops),
        "work_dir": str(tmp_path / "work"),
        "job_id": "dj_work",  # else a time and random suffix
        "export_path": str(tmp_path / "export/data.jsonl"),
    }


# get_init_configs writes the recipe to a temp file of a random name and parses that
TEMP_CONFIG = re.compile(r"job_dj_config_\w+\.json")


def without_temp_config(config: dict) -> dict:
    return {name: value for name, value in config.items() if name not in ("config", "backed_up_config_path")}


def config_init(config: dict) -> object:
    from data_juicer.config import get_init_configs

    return get_init_configs(copy.deepcopy(config), load_configs_only=True)


@pytest.fixture
def counted_lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every scan of a parser's actions (jsonargparse's own lookup, counted), by key."""
    original = _subcommands.find_action_and_subcommand
    scans: list[str] = []

    def find_action_and_subcommand(parser, dest, exclude=None):  # noqa: ANN001, ANN202 (jsonargparse's signature)
        scans.append(dest)
        return original(parser, dest, exclude)

    monkeypatch.setattr(_subcommands, "find_action_and_subcommand", find_action_and_subcommand)
    monkeypatch.setattr(_core, "find_action_and_subcommand", find_action_and_subcommand)
    return scans


@pytest.mark.parametrize("ops", [DEMO["process"], MIXED_OPS], ids=["demo", "mixed"])
def test_data_juicer_config_init_gives_the_same_config_with_fewer_scans(tmp_path, counted_lookups, ops):
    from jsonargparse import namespace_to_dict

    config = recipe(tmp_path, ops)
    plain = config_init(config)
    plain_scans = len(counted_lookups)
    counted_lookups.clear()
    with lookups_once_per_parse():
        kept = config_init(config)
    assert without_temp_config(namespace_to_dict(kept)) == without_temp_config(namespace_to_dict(plain))
    assert plain_scans > 1000
    assert len(counted_lookups) < plain_scans / 2


def test_a_bad_value_fails_with_the_same_error(tmp_path, capsys):
    config = {**recipe(tmp_path, DEMO["process"]), "np": "many"}
    with pytest.raises(SystemExit) as plain:
        config_init(config)
    plain_error = capsys.readouterr().err
    with lookups_once_per_parse(), pytest.raises(SystemExit) as kept:
        config_init(config)
    kept_error = capsys.readouterr().err
    assert plain.value.code == kept.value.code == 2
    assert "np" in plain_error
    assert TEMP_CONFIG.sub("<config>", kept_error) == TEMP_CONFIG.sub("<config>", plain_error)


def test_an_argument_added_between_parses_is_found():
    parser = ArgumentParser()
    parser.add_argument("--a", type=int, default=1)
    with lookups_once_per_parse():
        assert parser.parse_args([]).a == 1
        assert _subcommands.find_action(parser, "b") is None
        parser.add_argument("--b", type=int, default=2)
        assert _subcommands.find_action(parser, "b") is not None
        assert parser.parse_args(["--b", "3"]).b == 3


def test_another_jsonargparse_keeps_its_own_lookup(monkeypatch):
    monkeypatch.setattr(dj_config_lookup, "CHECKED_WITH", "0.0.0")
    original = _subcommands.find_action_and_subcommand
    with lookups_once_per_parse():
        assert _subcommands.find_action_and_subcommand is original
        assert _core.find_action_and_subcommand is original


def test_the_lookup_and_parse_are_restored_after_the_block():
    lookup, parse_args = _subcommands.find_action_and_subcommand, ArgumentParser.__dict__["parse_args"]
    with lookups_once_per_parse():
        assert _subcommands.find_action_and_subcommand is not lookup
    assert _subcommands.find_action_and_subcommand is lookup is _core.find_action_and_subcommand
    assert ArgumentParser.__dict__["parse_args"] is parse_args
