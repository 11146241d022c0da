"""A job's file objects through run/input_shortcuts.py are the objects Snakemake's own code makes, with less work:

* a rule's input function: each path it returns the same three nested file objects (same types, paths, flags and
  rule), without Snakemake's three rounds of ``IOFile``;
* an output, log or benchmark pattern filled with a job's wildcards: the same file object, flags copied, without
  ``IOFile``; anything else (a flagged input function, a path object) as Snakemake makes it;
* a rule's unnamed log patterns filled one by one: the same log; named ones as Snakemake fills them;
* a file's existence, once Snakemake's IO cache holds it, answered from the cache, and else looked up and kept
  there as Snakemake's cache keeps it (run/file_shortcuts.py).

Each replacement keeps Snakemake's own as ``__wrapped__``; a real workflow is parsed here by Snakemake's API.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from snakemake import io
from snakemake.io import AnnotatedString, IOFile, protected, temp

from sandflow.run import file_shortcuts, input_shortcuts

from helpers.snakemake_api import parsed_workflow

SNAKEFILE = """
from pathlib import Path

def inputs(wildcards):
    return [f"in/{wildcards.k}.txt", "in/shared.txt", "in/shared.txt"]

rule plain:
    input: inputs
    output: "out/{k}.txt"
    log: "logs/{k}.log"
    shell: "touch {output}"

rule named_logs:
    output: "named/{k}.txt"
    log: run="logs/{k}.run.log", tool=temp("logs/{k}.tool.log")
    shell: "touch {output}"

rule flagged:
    input: ancient(inputs)
    output: "flagged/{k}.txt"
    shell: "touch {output}"

rule path_objects:
    input: lambda wildcards: [Path("in") / f"{wildcards.k}.txt"]
    output: "paths/{k}.txt"
    shell: "touch {output}"
"""


@pytest.fixture(scope="module")
def workflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    directory = tmp_path_factory.mktemp("workflow")
    (directory / "Snakefile").write_text(SNAKEFILE)
    cwd = os.getcwd()
    os.chdir(directory)
    try:
        with parsed_workflow(directory) as parsed:
            input_shortcuts.wildcards_applied_directly()
            input_shortcuts.plain_inputs_built_directly()
            input_shortcuts.logs_filled_directly()
            yield parsed
    finally:
        os.chdir(cwd)


def described(f: Any) -> tuple[Any, ...]:
    """Everything of a file object Snakemake reads: its type and path, and for a file object its attributes and
    what it wraps, for an annotated string its flags."""
    if type(f) is io._IOFile:
        return ("_IOFile", str(f), f._is_callable, f.rule, f._regex, f._wildcard_constraints, described(f._file))
    if type(f) is AnnotatedString:
        return ("AnnotatedString", str(f), f.flags, f.callable)
    return (type(f).__name__, f)


@pytest.fixture
def iofiles_made(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Snakemake's IOFile calls (its module function, which Snakemake's own expansions go through)."""
    made: list[object] = []
    real = io.IOFile

    def counted(file: Any, rule: Any = None) -> Any:
        made.append(file)
        return real(file, rule=rule)

    monkeypatch.setattr(io, "IOFile", counted)
    monkeypatch.setattr("snakemake.rules.IOFile", counted)
    return made


def test_an_input_functions_paths_become_the_file_objects_snakemake_makes(workflow: Any, iofiles_made: list[object]):
    from snakemake.rules import Rule

    snakemakes_own = Rule.expand_input.__wrapped__
    rule = workflow.get_rule("plain")
    files, mapping, depends, incomplete = rule.expand_input({"k": "x"})
    assert iofiles_made == []  # built directly
    own_files, own_mapping, own_depends, own_incomplete = snakemakes_own(rule, {"k": "x"})
    assert [described(f) for f in files] == [described(f) for f in own_files]
    assert [str(f) for f in files] == ["in/x.txt", "in/shared.txt", "in/shared.txt"]
    assert described(files[0])[-1][0] == "_IOFile"  # the path modifier's file object of a file object
    assert mapping == own_mapping and list(mapping.values()) == [rule.input[0]] * 2
    assert (depends, incomplete) == (own_depends, own_incomplete) == ({}, False)
    assert files._names == own_files._names == {}


@pytest.mark.parametrize("name", ["flagged", "path_objects"])
def test_other_inputs_are_made_by_snakemakes_own(workflow: Any, name: str):
    from snakemake.rules import Rule

    rule = workflow.get_rule(name)
    files = rule.expand_input({"k": "x"})[0]
    own = Rule.expand_input.__wrapped__(rule, {"k": "x"})[0]
    assert [described(f) for f in files] == [described(f) for f in own] and str(files[0]) == "in/x.txt"
    if name == "flagged":
        assert files[0].flags == {"ancient": True}


def test_filled_patterns_are_the_file_objects_snakemake_makes(workflow: Any, iofiles_made: list[object]):
    rule = workflow.get_rule("plain")
    patterns = [
        IOFile("out/{k}.txt", rule=rule),
        IOFile(temp("tmp/{k}.txt"), rule=rule),
        IOFile(protected("kept/{k}/{k}.txt"), rule=rule),
        IOFile("no/wildcards.txt", rule=rule),
    ]
    iofiles_made.clear()
    for pattern in patterns:
        filled = pattern.apply_wildcards({"k": "x"})
        own = io._IOFile.apply_wildcards.__wrapped__(pattern, {"k": "x"})
        assert described(filled) == described(own)
        assert filled.flags is not pattern.flags  # a copy, as Snakemake's clone_flags makes
    assert len(iofiles_made) == len(patterns)  # Snakemake's own only
    assert [str(p.apply_wildcards({"k": "x"})) for p in patterns][:3] == ["out/x.txt", "tmp/x.txt", "kept/x/x.txt"]
    assert patterns[1].apply_wildcards({"k": "y"}).flags == {"temp": True}
    with pytest.raises(io.WildcardError):
        patterns[0].apply_wildcards({"other": "x"})


@pytest.mark.parametrize("name", ["plain", "named_logs"])
def test_logs_are_the_file_objects_snakemake_makes(workflow: Any, name: str):
    from snakemake.rules import Rule

    rule = workflow.get_rule(name)
    log = rule.expand_log({"k": "x"})
    own = Rule.expand_log.__wrapped__(rule, {"k": "x"})
    assert type(log) is type(own) and [described(f) for f in log] == [described(f) for f in own]
    assert log._names == own._names
    expected = ["logs/x.log"] if name == "plain" else ["logs/x.run.log", "logs/x.tool.log"]
    assert [str(f) for f in log] == expected
    with pytest.raises(io.WildcardError, match="Wildcards in log files cannot be determined"):
        rule.expand_log({"other": "x"})  # Snakemake's own words


def test_a_files_existence_known_to_the_io_cache_is_answered_from_it(workflow: Any, monkeypatch: pytest.MonkeyPatch):
    file_shortcuts.known_existence_first()
    rule = workflow.get_rule("plain")
    looked_up: list[str] = []  # Snakemake's cache lookup (its own asks it on every call)
    real_lookup = io.ExistsDict.__contains__

    def counted(self: Any, path: Any) -> bool:
        looked_up.append(str(path))
        return real_lookup(self, path)

    monkeypatch.setattr(io.ExistsDict, "__contains__", counted)
    monkeypatch.setattr(workflow, "iocache", io.IOCache(0), raising=False)  # what Snakemake sets to execute
    os.makedirs("in", exist_ok=True)
    Path("in/present.txt").write_text("")
    present, absent = IOFile("in/present.txt", rule=rule), IOFile("in/absent.txt", rule=rule)
    assert [asyncio.run(f.exists()) for f in (present, absent)] == [True, False]
    assert dict(workflow.iocache.exists_local) == {present: True, absent: False}  # looked, and kept as Snakemake keeps
    Path("in/absent.txt").write_text("")  # the cache keeps what it saw, as Snakemake's own does
    assert [asyncio.run(f.exists()) for f in (present, absent)] == [True, False]
    assert [asyncio.run(io._IOFile.exists.__wrapped__(f)) for f in (present, absent)] == [True, False]
    assert looked_up == ["in/present.txt", "in/absent.txt"]  # Snakemake's own asks; the shortcut's asked nothing
    listed = IOFile("listed/x.txt", rule=rule)  # in a directory a storage inventory listed: Snakemake's own says
    workflow.iocache.exists_local.has_inventory.add("listed")
    os.makedirs("listed", exist_ok=True)
    Path("listed/x.txt").write_text("")
    assert asyncio.run(listed.exists()) is asyncio.run(io._IOFile.exists.__wrapped__(listed)) is False
    monkeypatch.setattr(workflow.iocache, "active", False)
    assert asyncio.run(absent.exists()) is True
