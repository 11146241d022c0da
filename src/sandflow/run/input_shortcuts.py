"""Shortcuts through how Snakemake turns a job's paths into its file objects, each the same objects with less work
(as in run/dag_shortcuts.py: only with the Snakemake it was checked against, a no-op wherever an internal is not as
this module knows it).

In a ``snakemake -n`` of 20,000 distinct jobs (benchmarks/RESULTS.md, "Third pass"), Snakemake:

* makes each path a job's input function returns into a file object three times over (``IOFile``, then
  ``apply_wildcards`` on a path that has none, then a path modifier that changes nothing, each checking the path
  for wildcards, path variables, flags and storage): ``plain_inputs_built_directly`` builds the same nested objects
  directly for a rule whose input is one plain function and whose modifier and default flags change nothing;
* fills each job's output, log and benchmark pattern by making a file object of the filled path (checking it for
  functions, path variables and storage) and then copying the pattern's flags onto it:
  ``wildcards_applied_directly`` builds the same object directly for a pattern without storage or functions;
* fills each job's log patterns through the machinery that applies input functions, names and ``unpack`` to a
  rule's input: ``logs_filled_directly`` fills a rule's plain patterns one by one.
"""

from __future__ import annotations

import inspect
import types
from typing import Any

from sandflow.run.dag_shortcuts import INSTALLED, checked_snakemake, installed


def _known_file_internals() -> tuple[type, type, Any] | None:
    """Snakemake's (_IOFile, AnnotatedString, its module's apply_wildcards) when a file object is made as this module
    makes one (the attributes ``_IOFile.__new__`` sets, the flags an AnnotatedString keeps in ``_flags``); else None."""
    from snakemake import io

    iofile, annotated = getattr(io, "_IOFile", None), getattr(io, "AnnotatedString", None)
    fill = getattr(io, "apply_wildcards", None)
    if iofile is None or annotated is None or not isinstance(fill, types.FunctionType):
        return None
    if set(getattr(iofile, "__slots__", ())) != {"_is_callable", "_file", "rule", "_regex", "_wildcard_constraints"}:
        return None
    probe = iofile("probe.txt", rule=None)
    if vars(annotated("probe")) != {"_flags": {}, "callable": None} or type(probe._file) is not str:
        return None
    return iofile, annotated, fill


def _file_object(iofile: type, path: str, wrapped: Any, rule: Any) -> Any:
    """What ``_IOFile(path, rule)`` makes of a path without a trailing slash or path variables, wrapping ``wrapped``."""
    made = str.__new__(iofile, path)
    made._is_callable = False
    made._file = wrapped
    made.rule = rule
    made._regex = None
    made._wildcard_constraints = None
    return made


def _plain_path(path: Any) -> bool:
    """A path ``_IOFile`` keeps as it is: a str without wildcards, path variables (``<name>``) or a trailing slash."""
    return type(path) is str and "{" not in path and "<" not in path and not path.endswith("/")


def wildcards_applied_directly() -> None:
    """``_IOFile.apply_wildcards`` for a pattern that is a path (no function, no storage): Snakemake fills it
    (``snakemake.io.apply_wildcards``), makes a file object of the result and copies the pattern's flags onto it
    (``clone_flags``: the path becomes an AnnotatedString with a copy of the pattern's flags, or none). The same
    object directly, from the same filled path; anything else through Snakemake's own."""
    from snakemake import io

    original = inspect.getattr_static(io._IOFile, "apply_wildcards", None)
    known = _known_file_internals()
    if not isinstance(original, types.FunctionType) or getattr(original, INSTALLED, False) or known is None:
        return
    iofile, annotated, fill = known

    @installed
    def apply_wildcards(self: Any, wildcards: Any) -> Any:
        pattern = self._file
        kind = type(pattern)
        if self._is_callable or not (kind is str or (kind is annotated and "storage_object" not in pattern._flags)):
            return original(self, wildcards)
        path = fill(pattern, wildcards)  # raises WildcardError as Snakemake's does
        if type(path) is not str or "<" in path or path.endswith("/"):
            return original(self, wildcards)
        flagged = annotated(path)
        if kind is annotated:
            flagged._flags = pattern._flags.copy()
        return _file_object(iofile, path, flagged, self.rule)

    apply_wildcards.__wrapped__ = original  # type: ignore[attr-defined]
    io._IOFile.apply_wildcards = apply_wildcards


def _unmodified(rule: Any) -> bool | None:
    """Whether Snakemake's input path modifier leaves every path as it is: True when there is one that does (the
    default, no prefix, no default storage), False when there is none; None when it may change a path."""
    from snakemake.path_modifier import PathModifier

    modifier = rule.input_modifier
    if modifier is None:
        return False
    while modifier is not None:
        if type(modifier) is not PathModifier or modifier.prefix is not None or modifier._prefix_replacements:
            return None
        modifier = modifier.inner_modifier
    return None if rule.workflow.storage_settings.default_storage_provider is not None else True


def plain_inputs_built_directly() -> None:
    """``Rule.expand_input`` for a rule whose input is one plain function (no flags, name, dependencies), whose path
    modifier changes nothing and with no default input flags: Snakemake applies the function, then makes each path
    it returns a file object (``_IOFile``), applies the job's wildcards to it (a path without any: a second file
    object, of an AnnotatedString without flags) and wraps that in a third through the path modifier. The same
    three objects directly, for paths without wildcards or path variables; anything else through Snakemake's own
    (which applies the function again)."""
    from snakemake.iocontainers import InputFiles
    from snakemake.rules import Rule

    original = inspect.getattr_static(Rule, "expand_input", None)
    known = _known_file_internals()
    if not isinstance(original, types.FunctionType) or getattr(original, INSTALLED, False) or known is None:
        return
    if list(inspect.signature(original).parameters) != ["self", "wildcards", "groupid"]:
        return
    iofile, annotated, _ = known

    def plain_function(rule: Any) -> Any:
        inputs = rule.input
        if len(inputs) != 1 or inputs._names or rule.dependencies:
            return None
        item = inputs[0]  # the function as the rule gives it (flags would make it an AnnotatedString)
        if type(item) is not types.FunctionType or hasattr(item, "flags"):
            return None
        return None if list(rule.workflow.modifier.default_input_flags) else item

    @installed
    def expand_input(self: Any, wildcards: Any, groupid: Any = None) -> Any:
        item = plain_function(self)
        wrapped = _unmodified(self) if item is not None else None
        if item is None or wrapped is None:
            return original(self, wildcards, groupid=groupid)
        paths, incomplete = self.apply_input_function(
            item, wildcards, incomplete_checkpoint_func=lambda e: e.targetfile, is_unpack=False, groupid=groupid
        )
        if incomplete or type(paths) is not list or not all(_plain_path(path) for path in paths):
            return original(self, wildcards, groupid=groupid)
        files = InputFiles()
        mapping = {}
        for path in paths:
            made = _file_object(iofile, path, annotated(path), self)
            if wrapped:
                made = _file_object(iofile, path, made, self)
            files.append(made)
            mapping[made] = item
        for made in files:
            made.check()
        return files, mapping, {}, False

    expand_input.__wrapped__ = original  # type: ignore[attr-defined]
    Rule.expand_input = expand_input


def logs_filled_directly() -> None:
    """``Rule.expand_log`` for a rule whose log patterns are all unnamed paths (no function, no ``unpack``): Snakemake
    passes each through ``Rule._apply_wildcards``, which for such a pattern fills it (``_IOFile.apply_wildcards``)
    and appends it; the same, pattern by pattern, then Snakemake's check of each file. Anything else, and a pattern
    it cannot fill (Snakemake words that error), through Snakemake's own."""
    from snakemake import io
    from snakemake.iocontainers import Log
    from snakemake.rules import Rule

    original = inspect.getattr_static(Rule, "expand_log", None)
    if not isinstance(original, types.FunctionType) or getattr(original, INSTALLED, False):
        return
    if list(inspect.signature(original).parameters) != ["self", "wildcards"]:
        return
    iofile, wildcard_error = getattr(io, "_IOFile", None), getattr(io, "WildcardError", None)
    if iofile is None or wildcard_error is None:
        return

    def plain(patterns: Any) -> bool:
        return not patterns._names and all(
            type(pattern) is iofile and not pattern._is_callable and not pattern.flags.get("unpack")
            for pattern in patterns
        )

    @installed
    def expand_log(self: Any, wildcards: Any) -> Any:
        patterns = self.log
        if not plain(patterns):
            return original(self, wildcards)
        log = Log()
        try:
            log.extend(pattern.apply_wildcards(wildcards) for pattern in patterns)
        except wildcard_error:
            return original(self, wildcards)
        for f in log:
            f.check()
        return log

    expand_log.__wrapped__ = original  # type: ignore[attr-defined]
    Rule.expand_log = expand_log


def take_input_shortcuts() -> None:
    """All of the above, in the process that builds Snakemake's DAG (after its modules are imported)."""
    if not checked_snakemake():
        return
    wildcards_applied_directly()
    plain_inputs_built_directly()
    logs_filled_directly()
