"""Snakemake's Workflow object of a Snakefile, parsed through Snakemake's own API: for tests of what sandflow changes
in Snakemake's internals (run/*_shortcuts.py), without a DAG or a run."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def parsed_workflow(directory: Path) -> Iterator[Any]:
    """The Workflow of directory/Snakefile, with directory as its working directory, while the block runs."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import OutputSettings, ResourceSettings, StorageSettings

    with SnakemakeApi(OutputSettings()) as api:
        parsed = api.workflow(
            resource_settings=ResourceSettings(),
            storage_settings=StorageSettings(),
            snakefile=directory / "Snakefile",
            workdir=directory,
        )
        yield parsed._workflow
