"""What a fresh Python process has imported once it has done something (planning, a no-op `sandflow run`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers.env import snakemake_env

# Libraries a job imports (seconds each) and Snakemake: planning and a no-op run import none of them.
JOB_LIBRARIES = frozenset({"data_juicer", "torch", "transformers", "datasets", "pandas", "numpy", "snakemake"})
# The hook modules planning imports when its jobs' requirement checks need no hook's own module (the demo's,
# the hpo example's): the records and digests, user hooks' parsing, Data-Juicer's requirement check.
PLANNING_HOOK_MODULES = frozenset(
    "sandflow.hooks" + suffix
    for suffix in (
        "",
        ".base",
        ".registry",
        ".source_digest",
        ".user_hooks",
        ".user_base",
        ".llm",
        ".llm.messages",
        ".dj_requirements",
        ".dj_ray",
    )
)


def imported_after(cwd: Path, code: str, *args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run ``code`` (which sees ``args`` as sys.argv[1:]) in a fresh Python in ``cwd``: the process, and every
    module it had imported when the code was done."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    command = [sys.executable, "-c", script, *args]
    result = subprocess.run(command, cwd=cwd, env=snakemake_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result, set(json.loads(result.stdout.splitlines()[-1]))


def assert_planning_only(modules: set[str]) -> None:
    """Of sandflow's hooks, only what planning needs; none of the libraries jobs use."""
    hook_modules = {name for name in modules if name.startswith("sandflow.hooks")}
    assert hook_modules <= PLANNING_HOOK_MODULES, sorted(hook_modules - PLANNING_HOOK_MODULES)
    assert not modules & JOB_LIBRARIES, sorted(modules & JOB_LIBRARIES)
