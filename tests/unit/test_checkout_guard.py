"""The CheckoutGuard (tests/helpers/checkout_guard.py), which fails a test module that touches the checkout's outputs/ or .snakemake/:
here on directories of tmp_path, so these tests touch nothing of the checkout themselves."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from helpers.checkout_guard import CHECKOUT_GUARD, CheckoutGuard
from helpers.paths import REPO


def test_the_suite_guards_the_checkouts_outputs_and_snakemake_metadata():
    assert CHECKOUT_GUARD.roots == [str(REPO / "outputs"), str(REPO / ".snakemake")] and CHECKOUT_GUARD.active


def test_writes_show_as_created_removed_and_modified_paths_even_from_a_subprocess(tmp_path: Path):
    outputs = tmp_path / "outputs"
    (outputs / "run" / "jobs").mkdir(parents=True)
    (outputs / "run" / "kept.json").write_text("{}")
    (outputs / "run" / "gone.json").write_text("{}")
    guard = CheckoutGuard([outputs, tmp_path / ".snakemake"])
    before = guard.snapshot()
    assert set(before) == {
        str(outputs),
        *(str(outputs / p) for p in ("run", "run/jobs", "run/kept.json", "run/gone.json")),
    }
    assert guard.snapshot() == before and CheckoutGuard.changes(before, before, tmp_path) == []

    (outputs / "run" / "gone.json").unlink()
    (outputs / "run" / "kept.json").write_text('{"done": true}')  # another size
    subprocess.run([sys.executable, "-c", "import os; os.makedirs('.snakemake/locks')"], cwd=tmp_path, check=True)
    assert CheckoutGuard.changes(before, guard.snapshot(), tmp_path) == [
        "created .snakemake",
        "created .snakemake/locks",
        "modified outputs/run",
        "removed outputs/run/gone.json",
        "modified outputs/run/kept.json",
    ]


def test_a_rewrite_of_the_same_size_shows_by_its_mtime_and_long_lists_are_cut(tmp_path: Path):
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    for number in range(12):
        (outputs / f"{number:02}.txt").write_text("a")
    guard = CheckoutGuard([outputs])
    before = guard.snapshot()
    os.utime(outputs / "03.txt", ns=(0, 0))
    assert CheckoutGuard.changes(before, guard.snapshot(), tmp_path) == ["modified outputs/03.txt"]
    shutil.rmtree(outputs)
    lines = CheckoutGuard.changes(before, guard.snapshot(), tmp_path, limit=3)
    assert lines == ["removed outputs", "removed outputs/00.txt", "removed outputs/01.txt", "and 10 more"]


def test_reads_in_process_are_recorded_with_the_test_and_the_guards_own_walk_is_not(
    tmp_path: Path, monkeypatch
) -> None:
    outputs = tmp_path / "outputs"
    (outputs / "run").mkdir(parents=True)
    (outputs / "run" / "context.json").write_text("{}")
    (tmp_path / "elsewhere.json").write_text("{}")
    guard = CheckoutGuard([outputs])
    sys.addaudithook(guard.audit)  # audit hooks cannot be removed: it is switched off below
    try:
        guard.snapshot()
        (tmp_path / "elsewhere.json").read_text()
        assert guard.reads == []
        monkeypatch.chdir(tmp_path)
        Path("outputs/run/context.json").read_text()  # a relative path, resolved against the working directory
        os.listdir(outputs / "run")
        # The import system's own look at a directory on sys.path is no read by the test (snakemake puts one there).
        monkeypatch.setattr(sys, "path", [*sys.path, "outputs/run"])
        os.listdir("outputs/run")
    finally:
        guard.active = False
    me = "tests/unit/test_checkout_guard.py::test_reads_in_process_are_recorded_with_the_test_and_the_guards_own_walk_is_not"
    assert guard.reads == [
        f"{me} read {outputs / 'run' / 'context.json'} (open)",
        f"{me} read {outputs / 'run'} (os.listdir)",
    ]
