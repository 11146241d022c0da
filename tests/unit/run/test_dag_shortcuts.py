"""A dry run through run/dag_shortcuts.py's temp-file shortcut lists what Snakemake's own lists: no temp file to
remove when no rule has a temp output (without looking for one per job), and with one, Snakemake's own finds it.

Snakemake runs each workflow below in a child, with the shortcut installed by its Snakefile or not.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.env import snakemake_env

SNAKEFILE = """
import os

if os.environ.get("SHORTCUT"):
    from sandflow.run.dag_shortcuts import temp_files_sought_only_where_rules_have_them

    temp_files_sought_only_where_rules_have_them()

rule all:
    input: "c.txt"

rule c:
    input: "b.txt"
    output: "c.txt"
    shell: "cp {input} {output}"

rule b:
    input: "a.txt"
    output: temp("b.txt") if os.environ.get("TEMP") else "b.txt"
    shell: "cp {input} {output}"

rule a:
    output: "a.txt"
    shell: "touch {output}"
"""


def listing(directory: Path, **switches: str) -> str:
    """``snakemake -n``'s listing with the given switches set, less its timestamps and the run's date and id."""
    env = {**snakemake_env(), "PYTHONHASHSEED": "0", **switches}
    command = [sys.executable, "-m", "snakemake", "-n", "--cores", "1"]
    result = subprocess.run(command, cwd=directory, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    listed = re.sub(r"\[\w{3} \w{3} +\d+ [\d:]+ \d{4}\]", "", result.stdout + result.stderr)
    return re.sub(r"(Date|Workflow ID): .*", "", listed)


@pytest.mark.slow  # runs snakemake four times
def test_temp_files_are_listed_as_snakemake_lists_them(tmp_path: Path):
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    for temp in ("", "1"):
        own, shortcut = listing(tmp_path, TEMP=temp), listing(tmp_path, TEMP=temp, SHORTCUT="1")
        assert shortcut == own
        assert ("Would remove temporary output b.txt" in shortcut) is bool(temp)
