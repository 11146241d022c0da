"""Shortcuts through Snakemake's file objects, each the same result with less work (as in run/dag_shortcuts.py:
only with the Snakemake it was checked against, a no-op wherever an internal is not as this module knows it).

In a ``snakemake -n`` of 4,000 distinct jobs (benchmarks/RESULTS.md, "Shortcuts through Snakemake's per-job
internals"), Snakemake:

* asks its file objects for their flags (``temp``, ``pipe``, ``storage_object``...) half a million times, each
  time through an isinstance check against an abstract base class, which runs Python code:
  ``flags_without_abc_checks`` answers for the types it knows from their flags directly;
* formats each file of each job it lists by asking it for eight flags in turn: ``unflagged_files_as_they_are``
  formats a file without flags (nearly all of them) as the path it is;
* checks that no output is inside another job's by building a ``pathlib.Path`` of every output and sorting those:
  ``output_paths_as_strings`` sorts the same path components as plain tuples of strings;
* asks whether a file exists several times per job (the inventory, the needrun check, the outputs' mtimes), each
  answer (the first one too) from its IO cache through two coroutines and a directory lookup for a storage inventory:
  ``known_existence_first`` answers from the cache's dictionary when it holds the answer, and else looks and keeps
  the answer there as Snakemake's cache does.
"""

from __future__ import annotations

import inspect
import os
import sys
import types
from typing import Any

from sandflow.run.dag_shortcuts import INSTALLED, checked_snakemake, installed


def _replace_where_imported(original: Any, replacement: Any, name: str) -> None:
    """``replacement`` for ``name`` in each Snakemake module that holds ``original`` under it (its own, and those
    that imported it by name); a module imported later keeps the original, the same result. Read from each
    module's namespace: a module's ``__getattr__`` (a stand-in's, run/import_shortcuts.py) would import."""
    for module_name, module in list(sys.modules.items()):
        if module_name.startswith("snakemake") and getattr(module, "__dict__", {}).get(name) is original:
            setattr(module, name, replacement)


def _known_file_types() -> tuple[type, type] | None:
    """Snakemake's (AnnotatedString, _IOFile) when their flags are where these shortcuts read them: an annotated
    string's in ``_flags``, a file object's those of what it wraps (``_file``: a string, or a file object); else
    None."""
    from snakemake import io
    from snakemake_interface_common.io import AnnotatedStringInterface

    annotated, iofile = getattr(io, "AnnotatedString", None), getattr(io, "_IOFile", None)
    if annotated is None or iofile is None or "_file" not in getattr(iofile, "__slots__", ()):
        return None
    interface_check = inspect.getattr_static(AnnotatedStringInterface, "is_flagged", None)
    if not all(inspect.getattr_static(cls, "is_flagged", None) is interface_check for cls in (annotated, iofile)):
        return None  # one of them answers in its own way
    if not all(isinstance(inspect.getattr_static(cls, "flags", None), property) for cls in (annotated, iofile)):
        return None
    if "_flags" not in vars(annotated("probe")) or isinstance("", AnnotatedStringInterface):
        return None
    return annotated, iofile


def flags_without_abc_checks() -> None:
    """``snakemake.io.is_flagged(value, flag)`` without ``isinstance(value, AnnotatedStringInterface)`` for the
    three types that make up nearly all of its calls: a plain ``str`` has no flags; an ``AnnotatedString`` keeps
    them in ``_flags``; an ``_IOFile`` has those of what it wraps. Anything else, and a file wrapping anything
    else (a function), goes to Snakemake's own."""
    from snakemake import io

    original = getattr(io, "is_flagged", None)
    known = _known_file_types()
    if not isinstance(original, types.FunctionType) or getattr(original, INSTALLED, False) or known is None:
        return
    annotated, iofile = known

    @installed
    def is_flagged(value: Any, flag: str) -> bool:
        flagged = value
        while type(flagged) is iofile:  # a file object's flags are those of what it wraps (a path modifier's
            flagged = flagged._file  # result wraps a file object)
        cls = type(flagged)
        if cls is str:
            return False
        if cls is annotated:
            flags = flagged._flags
            return flag in flags and bool(flags[flag])
        return original(value, flag)

    is_flagged.__wrapped__ = original  # type: ignore[attr-defined]
    _replace_where_imported(original, is_flagged, "is_flagged")


def unflagged_files_as_they_are() -> None:
    """``snakemake.io.fmt.fmt_iofile(f, ...)``, which a dry run calls for each file of each job it lists, gives a
    file object without flags as ``f"{f}"`` (every flag it asks for is unset, so no annotation is added): that
    directly, anything else through Snakemake's own."""
    from snakemake.io import fmt

    original = getattr(fmt, "fmt_iofile", None)
    known = _known_file_types()
    if not isinstance(original, types.FunctionType) or getattr(original, INSTALLED, False) or known is None:
        return
    if list(inspect.signature(original).parameters) != ["f", "as_input", "as_output"]:
        return
    annotated, iofile = known

    @installed
    def fmt_iofile(f: Any, as_input: bool = False, as_output: bool = False) -> str:
        if type(f) is iofile:
            wrapped = f._file
            while type(wrapped) is iofile:  # as in flags_without_abc_checks
                wrapped = wrapped._file
            if type(wrapped) is str or (type(wrapped) is annotated and not wrapped._flags):
                return f"{f}"
        return original(f, as_input=as_input, as_output=as_output)

    fmt_iofile.__wrapped__ = original  # type: ignore[attr-defined]
    _replace_where_imported(original, fmt_iofile, "fmt_iofile")


def path_parts(path: str, cwd: tuple[str, ...]) -> tuple[str, ...]:
    """What ``pathlib.PurePosixPath(path).absolute()`` compares and sorts by (its parts): the root ("/", or "//"
    for exactly two leading slashes), then each name but "" and "."; a relative path's after ``cwd``'s."""
    if path.startswith("/"):
        names = path.lstrip("/")
        root = "//" if len(path) - len(names) == 2 else "/"
        return (root, *[name for name in names.split("/") if name and name != "."])
    return (*cwd, *[name for name in path.split("/") if name and name != "."])


def output_paths_as_strings() -> None:
    """``DAG.check_directory_outputs``: Snakemake sorts (``Path(f).absolute()``, job) for every output and raises
    when one path is inside the next one's and their jobs differ (``os.path.commonpath``). The same sort and test
    on ``path_parts`` (what Path compares), without a Path per output; where they find such a pair, or one output
    of two jobs, Snakemake's own check runs (and raises its error)."""
    from snakemake.dag import DAG

    original = inspect.getattr_static(DAG, "check_directory_outputs", None)
    if not isinstance(original, types.FunctionType) or getattr(original, INSTALLED, False) or os.sep != "/":
        return

    @installed
    def check_directory_outputs(self: Any) -> None:
        cwd = path_parts(os.getcwd(), ())
        outputs = sorted({(path_parts(f, cwd), job) for job in self.jobs for f in job.output})
        for (a, job_a), (b, job_b) in zip(outputs, outputs[1:]):
            # commonpath compares the names only (the root's slashes aside): a's are the first of b's. Also when
            # a == b: two jobs with one output, whose order (set order, then sort) decides what Snakemake finds.
            if b[1 : len(a)] == a[1:] and job_a != job_b:
                original(self)
                return

    check_directory_outputs.__wrapped__ = original  # type: ignore[attr-defined]
    DAG.check_directory_outputs = check_directory_outputs


def known_existence_first() -> None:
    """``_IOFile.exists()`` of a local file whose answer Snakemake's IO cache holds: that answer; of one it holds
    none for, while no storage inventory has listed a directory: ``os.path.exists`` of it, kept in the cache.
    Snakemake's own asks the cache (``ExistsDict``: the answer it holds; else False for a file in a directory a
    storage inventory listed; else it looks and keeps the answer) through ``exists_local``'s cache wrapper; with
    such an inventory, for a storage file, and for every file while the cache is off, Snakemake's own answers."""
    from snakemake import io

    original = inspect.getattr_static(io._IOFile, "exists", None)
    exists_dict = getattr(io, "ExistsDict", None)
    if not inspect.iscoroutinefunction(original) or getattr(original, INSTALLED, False) or exists_dict is None:
        return
    if not issubclass(exists_dict, dict) or not isinstance(getattr(io.IOCache, "exists_local", None), property):
        return
    probe = io.IOCache(0)
    if type(vars(probe).get("_exists_local")) is not exists_dict or probe.exists_local is not probe._exists_local:
        return
    if vars(probe._exists_local).keys() != {"cache", "has_inventory"} or "__setitem__" in vars(exists_dict):
        return  # its answers are kept, and the inventory's directories listed, otherwise than this module knows
    looks = inspect.getsource(inspect.unwrap(io._IOFile.exists_local)).strip().splitlines()[-1].strip()
    if looks != "return os.path.exists(self.file)":
        return
    unknown = object()

    @installed
    async def exists(self: Any) -> bool:
        rule = self.rule
        if rule is not None and not self.is_storage:
            cache = rule.workflow.iocache
            if cache.active:
                local = cache._exists_local
                known = dict.get(local, self, unknown)
                if known is not unknown:
                    return known
                if not local.has_inventory and not self._is_callable:
                    # What Snakemake's cache wrapper does for a file it holds no answer for (no storage inventory
                    # to say it is absent): look (``exists_local``) and keep the answer.
                    answer = os.path.exists(self._file)
                    dict.__setitem__(local, self, answer)
                    return answer
        return await original(self)

    exists.__wrapped__ = original  # type: ignore[attr-defined]
    io._IOFile.exists = exists


def take_file_shortcuts() -> None:
    """All of the above, in the process that builds Snakemake's DAG (after its modules are imported)."""
    if not checked_snakemake():
        return
    flags_without_abc_checks()
    unflagged_files_as_they_are()
    output_paths_as_strings()
    known_existence_first()
