"""Data-Juicer's config init with jsonargparse's action lookups answered once per parse.

Data-Juicer's ``init_configs`` parses a recipe three times with a parser of about 300 arguments (its own, then
those of the recipe's ops). For every key of the config, jsonargparse finds the key's action with
``find_action_and_subcommand``, a scan of all the parser's actions, about 680 times per parse: a fifth of a config
init (0.06 of 0.32 s here), paid by every Data-Juicer job.

Inside each ``parse_args`` (the parser's actions are not added to or changed while it parses) the answer for a
parser, key and excluded action types is kept and handed out again; each parse starts with none. Parsers with
subcommands are left to jsonargparse's own lookup, which reaches into their subparsers.

jsonargparse is pinned (requirements.txt, CHECKED_WITH); the lookup is replaced only with that version and where
its functions are as this module knows them, a no-op otherwise.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import threading
from collections.abc import Callable, Iterator
from typing import Any

from sandflow.core.replaced import replaced

__all__ = ["CHECKED_WITH", "lookups_once_per_parse"]

# The jsonargparse this was checked against (requirements.txt pins it); any other keeps its own way.
CHECKED_WITH = "4.53.0"
LOOKUP_PARAMETERS = ["parser", "dest", "exclude"]


class ParseLookups(threading.local):
    """The answers of the parse under way in this thread (None outside a parse): by parser as its actions are
    (None for a parser with subcommands), then by key and excluded types."""

    def __init__(self, lookup: Callable[..., Any], subcommands: type) -> None:
        self.lookup = lookup
        self.subcommands = subcommands
        self.depth = 0
        self.answers: dict[tuple[int, int, int], tuple[Any, dict[tuple[Any, ...], Any] | None]] | None = None

    def find_action_and_subcommand(self, parser: Any, dest: str, exclude: Any = None) -> Any:
        if self.answers is None:
            return self.lookup(parser, dest, exclude)
        actions = parser._actions
        state = (id(parser), id(actions), len(actions))
        kept = self.answers.get(state)
        if kept is None:
            with_subcommands = any(isinstance(action, self.subcommands) for action in actions)
            kept = self.answers[state] = (parser, None if with_subcommands else {})  # the parser kept: its id stays
        answers = kept[1]
        if answers is None:
            return self.lookup(parser, dest, exclude)
        key = (dest, exclude)
        if key not in answers:
            answers[key] = self.lookup(parser, dest, exclude)
        return answers[key]

    def parsing(self, parse_args: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(parse_args)
        def parse_args_with_lookups_kept(parser: Any, *args: Any, **kwargs: Any) -> Any:
            if self.depth == 0:
                self.answers = {}
            self.depth += 1
            try:
                return parse_args(parser, *args, **kwargs)
            finally:
                self.depth -= 1
                if self.depth == 0:
                    self.answers = None

        return parse_args_with_lookups_kept


def known_lookup() -> Callable[..., Any] | None:
    """jsonargparse's find_action_and_subcommand where this module knows it, else None."""
    import jsonargparse
    from jsonargparse import _core, _subcommands

    lookup = inspect.getattr_static(_subcommands, "find_action_and_subcommand", None)
    if (
        getattr(jsonargparse, "__version__", None) != CHECKED_WITH
        or not inspect.isfunction(lookup)
        or list(inspect.signature(lookup).parameters) != LOOKUP_PARAMETERS
        or getattr(_core, "find_action_and_subcommand", None) is not lookup
    ):
        return None
    return lookup


@contextlib.contextmanager
def lookups_once_per_parse() -> Iterator[None]:
    """jsonargparse's action lookups answered once per parse inside the block."""
    lookup = known_lookup()
    if lookup is None:
        yield
        return
    from jsonargparse import ArgumentParser, _core, _subcommands

    lookups = ParseLookups(lookup, _subcommands.ActionSubCommands)
    parse_args = lookups.parsing(inspect.getattr_static(ArgumentParser, "parse_args"))
    with (
        replaced(_subcommands, find_action_and_subcommand=lookups.find_action_and_subcommand),
        replaced(_core, find_action_and_subcommand=lookups.find_action_and_subcommand),
        replaced(ArgumentParser, parse_args=parse_args),
    ):
        yield
