"""Notices tests that touch the checkout's outputs/ and .snakemake/ (conftest's checkout_untouched fails them)."""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from pathlib import Path
from typing import Any

from helpers.paths import REPO


class CheckoutGuard:
    """Notices tests that write under ``roots`` (a snapshot of every entry's type, size and mtime, taken between test
    modules; catches subprocesses too) or read there in process (an audit hook on open, listdir and scandir; a bare
    stat such as os.path.exists raises no audit event and goes unseen, which running the suite after `make demo`
    covers)."""

    WATCHED_EVENTS = frozenset({"open", "os.listdir", "os.scandir"})

    def __init__(self, roots: list[Path]):
        self.roots = [str(root) for root in roots]
        self.reads: list[str] = []
        self.active = True
        self.walking = False  # our own snapshot walks the roots: not a read by a test

    def under_roots(self, path: str) -> bool:
        return any(path == root or path.startswith(root + os.sep) for root in self.roots)

    @staticmethod
    def on_import_path(path: str, event: str) -> bool:
        """The import system lists the directories on sys.path at every import; `import snakemake` puts the relative
        .snakemake/pip-deployments there, so any in-process import from the checkout looks in the checkout's. And
        package discovery (pkgutil.iter_modules, which Snakemake's plugin registries run when snakemake.api is
        imported) lists each directory right under a sys.path entry, the checkout's outputs/ among them."""
        entries = {os.path.abspath(entry) for entry in sys.path if isinstance(entry, str) and entry}
        return path in entries or (event == "os.listdir" and os.path.dirname(path) in entries)

    def audit(self, event: str, args: tuple[Any, ...]) -> None:
        if event not in self.WATCHED_EVENTS or not self.active or self.walking or not args:
            return
        try:
            if args[0] is None or isinstance(args[0], int):
                return
            path = os.path.abspath(os.fsdecode(args[0]))
        except (TypeError, ValueError, OSError):  # an odd argument or a deleted working directory
            return
        if self.under_roots(path) and not self.on_import_path(path, event):
            test = os.environ.get("PYTEST_CURRENT_TEST", "outside a test").rsplit(" (", 1)[0]
            self.reads.append(f"{test} read {path} ({event})")

    def snapshot(self) -> dict[str, tuple[int, int, int]]:
        """Every path under the roots (and the roots themselves) with its file type, size and mtime."""
        entries: dict[str, tuple[int, int, int]] = {}
        self.walking = True
        try:
            for root in self.roots:
                if not os.path.lexists(root):
                    continue
                paths = [root]
                for directory, dirs, files in os.walk(root):
                    paths += [os.path.join(directory, name) for name in dirs + files]
                for path in paths:
                    with contextlib.suppress(FileNotFoundError):  # removed while we walked
                        info = os.lstat(path)
                        entries[path] = (stat.S_IFMT(info.st_mode), info.st_size, info.st_mtime_ns)
        finally:
            self.walking = False
        return entries

    @staticmethod
    def changes(
        before: dict[str, tuple[int, int, int]],
        after: dict[str, tuple[int, int, int]],
        relative_to: Path,
        limit: int = 10,
    ) -> list[str]:
        """'created x', 'removed y', 'modified z', sorted by path, at most ``limit`` of them plus a count of the rest."""
        found = sorted(
            [(path, "created") for path in after.keys() - before.keys()]
            + [(path, "removed") for path in before.keys() - after.keys()]
            + [(path, "modified") for path in before.keys() & after.keys() if before[path] != after[path]]
        )
        lines = [f"{what} {os.path.relpath(path, relative_to)}" for path, what in found[:limit]]
        if len(found) > limit:
            lines.append(f"and {len(found) - limit} more")
        return lines


CHECKOUT_GUARD = CheckoutGuard([REPO / "outputs", REPO / ".snakemake"])


# The suite's one guard: conftest installs its audit hook and checks it between test modules.
CHECKOUT_GUARD = CheckoutGuard([REPO / "outputs", REPO / ".snakemake"])
