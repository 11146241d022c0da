"""The environment tests run things in: offline, with variables set for a block, or a fresh Python."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

# Nothing may be installed or downloaded behind our back.
OFFLINE_ENV = {
    "UV_OFFLINE": "1",
    "PIP_NO_INDEX": "1",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "WANDB_MODE": "offline",
}


def snakemake_env() -> dict[str, str]:
    return {**os.environ, **OFFLINE_ENV}


@contextlib.contextmanager
def environ(values: dict[str, str], unset: Iterable[str] = ()) -> Iterator[None]:
    """os.environ with ``values`` set and ``unset`` removed while the block runs (for module-scoped fixtures,
    which cannot take the monkeypatch fixture); as it was after."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in values.items():
            patch.setenv(name, value)
        for name in unset:
            patch.delenv(name, raising=False)
        yield


def fresh_python(code: str, cwd: Path | None = None, timeout: float = 120) -> str:
    """stdout of code (dedented) in a fresh Python, offline (sys.modules as a process starts); it must succeed."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=snakemake_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout
