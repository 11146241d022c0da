"""Shared helpers: run the real snakemake on this repository's Snakefile and read what it did."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandflow.devtools.loopback_chat import ChatServer

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
# DJ-Sandbox's own example configs, verbatim (see tests/data/upstream/README.md).
UPSTREAM_CONFIGS = REPO / "tests" / "data" / "upstream" / "configs"
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


def snakemake_command(configfile: str | Path, *args: str) -> list[str]:
    """``python -m snakemake`` on this repository's Snakefile with a config file; args follow as given."""
    return [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--configfile", str(configfile), *args]


def hpo_search_command(configfile: str, hpo_config: str, *args: str) -> list[str]:
    """``python -m sandflow.hpo_search`` on a config with a search file (a bayes hpo_config); args follow as given."""
    return [sys.executable, "-m", "sandflow.hpo_search", "--configfile", configfile, "--hpo-config", hpo_config, *args]


def edited_config(run_dir: Path, config: str, name: str, edit: Callable[[Any], object]) -> str:
    """Write ``run_dir/name``: a copy of the config ``run_dir/config`` after ``edit`` changed it; returns ``name``."""
    data = yaml.safe_load((run_dir / config).read_text())
    edit(data)
    (run_dir / name).write_text(yaml.safe_dump(data, sort_keys=False))
    return name


def snakemake(
    cwd: Path, configfile: str | Path, *args: str, check: bool = True, timeout: float = 900
) -> subprocess.CompletedProcess:
    """Run snakemake on our Snakefile from cwd (where the config's relative paths resolve)."""
    command = snakemake_command(configfile, *args)
    if not any(a in ("-n", "--dry-run") for a in args) and "--cores" not in args:
        command += ["--cores", "2"]
    result = subprocess.run(command, cwd=cwd, env=snakemake_env(), capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result


def job_counts(result: subprocess.CompletedProcess) -> dict[str, int]:
    """Jobs per rule from Snakemake's 'Job stats' table ({} when there was nothing to do)."""
    text = result.stdout + result.stderr
    match = re.search(r"Job stats:\n.*?\n-+\s+-+\n(.*?)\ntotal\s+\d+", text, re.S)
    if not match:
        assert "Nothing to be done" in text, text[-3000:]
        return {}
    counts = {}
    for line in match.group(1).splitlines():
        name, count = line.split()
        counts[name] = int(count)
    return counts


@contextlib.contextmanager
def chat_server(answer: Callable[[list[dict[str, str]]], str]) -> Iterator[ChatServer]:
    """sandflow.devtools.loopback_chat serving ``answer`` on a free port of 127.0.0.1 while the block runs."""
    server = ChatServer(answer=answer).start()
    try:
        yield server
    finally:
        server.stop()


def copy_from_repo(directory: Path, *paths: str) -> Path:
    """Copy these directories of the repository into ``directory``, at the same relative paths."""
    for path in paths:
        shutil.copytree(REPO / path, directory / path)
    return directory


def finished_counts(result: subprocess.CompletedProcess) -> dict[str, int]:
    """Jobs per rule that finished, from Snakemake's log lines: unlike the 'Job stats' table printed
    at the start, this includes jobs added after a checkpoint."""
    counts: dict[str, int] = {}
    for rule in re.findall(r"^Finished jobid: \d+ \(Rule: (\w+)\)", result.stdout + result.stderr, re.M):
        counts[rule] = counts.get(rule, 0) + 1
    return counts


@pytest.fixture
def upstream_dir(tmp_path: Path) -> Path:
    """A directory holding a copy of DJ-Sandbox's configs/ folder, as its configs expect to be run from."""
    if not UPSTREAM_CONFIGS.is_dir():
        pytest.skip(f"DJ-Sandbox's example configs are not at {UPSTREAM_CONFIGS}")
    shutil.copytree(UPSTREAM_CONFIGS, tmp_path / "configs")
    return tmp_path


def interruptible() -> None:
    """preexec_fn for a child the test stops with SIGINT: a shell that starts pytest in the background leaves SIGINT
    ignored, the child inherits that, and a Python started so never turns SIGINT into KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


SLURM_SETUP = REPO / "scripts" / "setup_single_node_slurm.sh"


def set_up_slurm() -> subprocess.CompletedProcess:
    """Run the setup script (root): installs SLURM when missing, starts what is down, waits for an idle node."""
    return subprocess.run(["bash", str(SLURM_SETUP)], capture_output=True, text=True, timeout=1200)


def slurm_controller_down() -> bool:
    """SLURM's commands are installed but its controller does not answer (`scontrol ping` answers at once)."""
    if shutil.which("sinfo") is None or shutil.which("scontrol") is None:
        return False
    return subprocess.run(["scontrol", "ping"], capture_output=True, timeout=30).returncode != 0


_slurm_notes: list[str] = []


@pytest.fixture(scope="session", autouse=True)
def slurm_controller_up() -> None:
    """snakemake-executor-plugin-slurm runs `scontrol show config` (up to 10 s) whenever Snakemake starts and SLURM is
    installed: with the controller down, every snakemake call in the suite stalls ~9 s (CI took 1475 s instead of
    ~700). Start the one-machine cluster test_slurm would start anyway; without root, say why the suite is slow."""
    if not slurm_controller_down():
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


# A small Data-Juicer recipe reading plan_dir's one row: for tests that plan configs (nothing runs).
RECIPE = {
    "project_name": "t",
    "dataset_path": "data/in.jsonl",
    "export_path": "./out/processed.jsonl",
    "np": 1,
    "process": [{"text_length_filter": {"min_len": 5, "max_len": 500}}],
}


@pytest.fixture
def plan_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory, holding data/in.jsonl (one row), the dataset RECIPE reads."""
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
    def on_import_path(path: str) -> bool:
        """The import system lists the directories on sys.path at every import; `import snakemake` puts the relative
        .snakemake/pip-deployments there, so any in-process import from the checkout looks in the checkout's."""
        return any(isinstance(entry, str) and entry and os.path.abspath(entry) == path for entry in sys.path)

    def audit(self, event: str, args: tuple[Any, ...]) -> None:
        if event not in self.WATCHED_EVENTS or not self.active or self.walking or not args:
            return
        try:
            if args[0] is None or isinstance(args[0], int):
                return
            path = os.path.abspath(os.fsdecode(args[0]))
        except (TypeError, ValueError, OSError):  # an odd argument or a deleted working directory
            return
        if self.under_roots(path) and not self.on_import_path(path):
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
