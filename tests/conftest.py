"""The suite's fixtures and pytest hooks; the helpers tests share are in tests/helpers/."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.checkout_guard import CHECKOUT_GUARD, CheckoutGuard
from helpers.paths import REPO, UPSTREAM_CONFIGS, copy_from_repo
from helpers.slurm import SLURM_SETUP, set_up_slurm, slurm_controller_down


@pytest.fixture
def upstream_dir(tmp_path: Path) -> Path:
    """A directory holding a copy of DJ-Sandbox's configs/ folder, as its configs expect to be run from."""
    if not UPSTREAM_CONFIGS.is_dir():
        pytest.skip(f"DJ-Sandbox's example configs are not at {UPSTREAM_CONFIGS}")
    shutil.copytree(UPSTREAM_CONFIGS, tmp_path / "configs")
    return tmp_path


_slurm_notes: list[str] = []


def pytest_sessionstart(session: pytest.Session) -> None:
    """snakemake-executor-plugin-slurm runs `scontrol show config` (up to 10 s) whenever Snakemake starts and SLURM is
    installed: with the controller down, every snakemake call in the suite stalls ~9 s (CI took 1475 s instead of
    ~700). Start the one-machine cluster test_slurm would start anyway; without root, say why the suite is slow.
    Once, in the process that reports: under pytest-xdist that is the controller, before its workers start."""
    if hasattr(session.config, "workerinput") or not slurm_controller_down():
        return
    if os.geteuid() != 0:
        _slurm_notes.append("SLURM is installed but its controller is down: each snakemake call waited ~9 s for it")
        return
    result = set_up_slurm()
    state = "started" if result.returncode == 0 else f"failed to start ({result.stderr.strip()})"
    _slurm_notes.append(f"SLURM's controller was down: {SLURM_SETUP.name} {state} it before the tests")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for note in _slurm_notes:
        terminalreporter.write_line(note)


def pytest_report_header() -> list[str]:
    """Say it once at the top when the upstream configs are missing, not only in skip reasons."""
    if UPSTREAM_CONFIGS.is_dir():
        return []
    return [f"DJ-Sandbox's example configs are missing ({UPSTREAM_CONFIGS}): the upstream-config tests are skipped"]


@pytest.fixture
def plan_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory, holding data/in.jsonl (one row), the dataset helpers.recipe.RECIPE reads."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data/in.jsonl").write_text('{"text": "hello world"}\n')
    return tmp_path


@pytest.fixture
def demo_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the demo's configs and data as the working directory: planning and `sandflow show` see
    this copy's (empty) outputs/, never what a `make demo` left in the checkout."""
    copy_from_repo(tmp_path, "configs/demo", "configs/data/demo")
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --- the checkout's outputs/ and .snakemake/ are the user's, not the tests' ------------------------------------------


sys.addaudithook(CHECKOUT_GUARD.audit)
_checkout_state: dict[str, dict[str, tuple[int, int, int]]] = {}


@pytest.fixture(scope="module", autouse=True)
def checkout_untouched(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test module that read or wrote the checkout's outputs/ or .snakemake/: tests run in tmp_path, so
    `make demo && make test` and `make test && make test` give the same results as a fresh clone."""
    if "state" not in _checkout_state:
        _checkout_state["state"] = CHECKOUT_GUARD.snapshot()
    yield
    before, after = _checkout_state["state"], CHECKOUT_GUARD.snapshot()
    _checkout_state["state"] = after  # the next module answers only for what it does itself
    reads, CHECKOUT_GUARD.reads = CHECKOUT_GUARD.reads, []
    problems = CheckoutGuard.changes(before, after, REPO) + sorted(set(reads))[:10]
    if problems:
        pytest.fail(
            f"{request.node.nodeid} touched the checkout's outputs/ or .snakemake/ (tests must work in "
            f"tmp_path): " + "; ".join(problems),
            pytrace=False,
        )
