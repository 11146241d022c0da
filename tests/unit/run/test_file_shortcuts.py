"""Snakemake's file objects through run/file_shortcuts.py give what Snakemake's own code gives, with less work:

* a file's flags, read without an isinstance check against Snakemake's abstract string interface;
* a file without flags formatted as its path without asking for its flags, a flagged one as Snakemake formats it;
* the check that no job's output is inside another's, on path components as pathlib sorts them: it refuses what
  Snakemake's own refuses (its own raises the error) and lets pass what it lets pass.

The shortcuts replace Snakemake's functions in this process, as they do in Snakemake's (tests/workflow dry runs
list the same jobs); each replacement keeps Snakemake's own as ``__wrapped__``.
"""

from __future__ import annotations

import abc
import os
from pathlib import Path

import pytest
from snakemake import api  # noqa: F401 (Snakemake's entry point first: its modules import each other)
from snakemake.dag import DAG
from snakemake.exceptions import ChildIOException
from snakemake.io import AnnotatedString, IOFile, directory, pipe, temp
from snakemake_interface_common.io import AnnotatedStringInterface

from sandflow.run import file_shortcuts


@pytest.fixture(scope="module", autouse=True)
def shortcuts() -> None:
    file_shortcuts.flags_without_abc_checks()
    file_shortcuts.unflagged_files_as_they_are()
    file_shortcuts.output_paths_as_strings()


def files() -> list[object]:
    """What Snakemake asks for flags: plain paths, annotated strings, file objects of both, a file object of a
    file object (a path modifier's result), a file object of a function."""
    flagged = temp("out/t.txt")
    return [
        "out/a.txt",
        flagged,
        AnnotatedString("out/b.txt"),
        IOFile("out/c.txt"),
        IOFile(flagged),
        IOFile(IOFile(pipe("out/p"))),
        IOFile(IOFile("out/d.txt")),
        IOFile(directory("out/dir")),
        IOFile(lambda wildcards: "out/e.txt"),
    ]


def test_flags_are_read_as_snakemake_reads_them_without_abc_checks(monkeypatch: pytest.MonkeyPatch):
    from snakemake import io

    checked: list[object] = []
    real_check = abc.ABCMeta.__instancecheck__

    def counted_check(cls, instance):  # the abstract class check Snakemake's is_flagged starts with
        if cls is AnnotatedStringInterface:
            checked.append(instance)
        return real_check(cls, instance)

    monkeypatch.setattr(abc.ABCMeta, "__instancecheck__", counted_check)
    for value in files():
        for flag in ("temp", "pipe", "directory", "storage_object", "ancient"):
            expected = isinstance(value, AnnotatedStringInterface) and value.is_flagged(flag)  # Snakemake's own
            assert io.is_flagged(value, flag) is expected, (value, flag)
    assert io.is_flagged(IOFile("out/t.txt"), "temp") is False and io.is_flagged(IOFile(temp("x")), "temp") is True
    *known, function_file = files()
    checked.clear()
    for value in known:  # all but the file object of a function, which goes to Snakemake's own
        io.is_flagged(value, "temp")
    assert checked == []
    io.is_flagged(function_file, "temp")
    assert checked == [function_file]


def test_files_without_flags_are_formatted_as_their_paths_without_asking_for_flags(monkeypatch: pytest.MonkeyPatch):
    from snakemake.io import fmt

    snakemakes_own = fmt.fmt_iofile.__wrapped__
    asked: list[str] = []
    real_is_flagged = fmt.is_flagged

    def counted(value, flag):
        asked.append(flag)
        return real_is_flagged(value, flag)

    monkeypatch.setattr(fmt, "is_flagged", counted)
    for f in files()[3:-1]:
        for as_input, as_output in ((False, False), (True, False), (False, True)):
            formatted = fmt.fmt_iofile(f, as_input=as_input, as_output=as_output)
            assert formatted == snakemakes_own(f, as_input=as_input, as_output=as_output) and type(formatted) is str
    assert fmt.fmt_iofile(IOFile(IOFile(pipe("out/p"))), as_output=True) == "out/p (pipe)"
    asked.clear()
    assert fmt.fmt_iofile(IOFile(IOFile("out/d.txt")), as_input=True) == "out/d.txt"
    assert fmt.fmt_iofile(IOFile("out/c.txt"), as_output=True) == "out/c.txt"
    assert asked == []  # Snakemake's own asks for eight flags of each


def test_path_parts_are_what_pathlib_compares(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    cwd = file_shortcuts.path_parts(os.getcwd(), ())
    for path in ["a/b", "a//b/", "./a/./b", "../x", "/x/../y", "//net/x", "///x", "/", "", ".", "s3://bucket/k"]:
        assert file_shortcuts.path_parts(path, cwd) == Path(path).absolute().parts, path


class Job:
    """What the output check reads of a job: its outputs; jobs compare by identity, and sort by name."""

    def __init__(self, name: str, *outputs: str):
        self.name, self.output = name, list(outputs)

    def __lt__(self, other: Job) -> bool:
        return self.name < other.name


class Jobs:
    def __init__(self, *jobs: Job):
        self.jobs = list(jobs)


CASES = {
    "inside another job's directory": [Job("a", "out/d"), Job("b", "out/d/f")],
    "inside its own directory": [Job("a", "out/d", "out/d/f")],
    "siblings": [Job("a", "out/d/f"), Job("b", "out/d/g"), Job("c", "out/d.txt"), Job("d", "out/d-x/f")],
    "a name that starts like another's": [Job("a", "out/d"), Job("b", "out/dd/f")],
    "an absolute path inside a relative one": [Job("a", "out"), Job("b", "{cwd}/out/x/y")],
    "the same output of two jobs": [Job("a", "out/x"), Job("b", "out/x"), Job("c", "out/x/y")],
    "through dots and slashes": [Job("a", "./out//d/"), Job("b", "out/./d/f")],
    # Snakemake compares neighbours in sorted order only: out/d/b follows its own job's out/d/a, not out/d.
    "not behind a job in between": [Job("a", "out/d", "out/d/a"), Job("b", "out/d/b")],
}


@pytest.mark.parametrize("case", CASES)
def test_outputs_inside_others_are_refused_as_snakemake_refuses_them(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(tmp_path)
    for job in CASES[case]:
        job.output = [output.format(cwd=tmp_path) for output in job.output]
    snakemakes_own = DAG.check_directory_outputs.__wrapped__
    outcomes = []
    for check in (snakemakes_own, DAG.check_directory_outputs):
        try:
            check(Jobs(*CASES[case]))
            outcomes.append("passed")
        except ChildIOException as exc:
            outcomes.append(str(exc))
    assert outcomes[0] == outcomes[1], case
    refused = {"inside another job's directory", "an absolute path inside a relative one", "through dots and slashes"}
    refused.add("the same output of two jobs")
    assert (outcomes[0] != "passed") is (case in refused), outcomes
