"""Where things are in the checkout the tests run from."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "Snakefile"
# Files the tests read: bad configs, converted formats, stand-in outputs (tests/data/README.md says which is which).
TEST_DATA = REPO / "tests" / "data"
# DJ-Sandbox's own example configs, verbatim (see tests/data/upstream/README.md).
UPSTREAM_CONFIGS = TEST_DATA / "upstream" / "configs"


def copy_from_repo(directory: Path, *paths: str) -> Path:
    """Copy these directories of the repository into ``directory``, at the same relative paths."""
    for path in paths:
        shutil.copytree(REPO / path, directory / path)
    return directory
