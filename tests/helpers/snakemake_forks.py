"""Snakemake command lines at the cost of one import: `python -m helpers.snakemake_forks` (tests/ on PYTHONPATH),
the server behind helpers.snakemake.snakemake() and test_bad_input's runs of every bad config.

A `python -m snakemake` pays ~2 s of CPU before it reads its config: importing Snakemake, then the modules every run
loads (the plugins its registries find, boto3 for the S3 storage plugin among them; profiles; the report's modules).
A no-op run costs little more. This process imports them once, then for each request on stdin (a JSON line:
working directory, arguments, environment, files for stdout and stderr) forks a child that becomes what
`python -m snakemake <arguments>` would be in that directory with that environment: os.environ, sys.argv, that
directory first on sys.path and PYTHONPATH's entries after it, stdin /dev/null. It runs ``snakemake.cli.main``
and exits as the interpreter would (the exit code, atexit handlers). The server prints the child's pid, then its
exit code, a line each. sandflow's own modules are not imported here: each run imports the code under test afresh.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import tempfile
import traceback
from typing import Any

import jsonschema  # noqa: F401
import requests  # noqa: F401
import smart_open  # noqa: F401
import snakemake.cli
import snakemake.profiles  # noqa: F401
import snakemake.report.html_reporter  # noqa: F401
import snakemake.storage  # noqa: F401
import snakemake_storage_plugin_s3  # noqa: F401
import yte  # noqa: F401

MAIN = os.path.join(os.path.dirname(snakemake.__file__), "__main__.py")  # sys.argv[0] of `python -m snakemake`


def python_path(environment: dict[str, str]) -> list[str]:
    return [os.path.abspath(entry) for entry in environment.get("PYTHONPATH", "").split(os.pathsep) if entry]


# sys.path without what `-m` and PYTHONPATH put first: the interpreter's own part, the same for every run.
BASE_PATH = [entry for entry in sys.path[1:] if entry not in python_path(dict(os.environ))]


def exit_code(code: Any) -> int:
    """The process's exit status for SystemExit(code), printing a message as the interpreter does."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def become_snakemake(request: dict[str, Any]) -> int:
    """In the child: run Snakemake's command line as a fresh `python -m snakemake` there would; its exit code."""
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    stdout = os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(stdout, 1)
    same = request["stderr"] == request["stdout"]  # as with 2>&1
    os.dup2(stdout if same else os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 2)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    tempfile.tempdir = None  # found again from this environment's TMPDIR
    sys.path[:] = [os.getcwd(), *python_path(request["env"]), *BASE_PATH]
    sys.argv = [MAIN, *request["arguments"]]
    try:
        snakemake.cli.main(request["arguments"])
        return 0
    except SystemExit as exit_:
        return exit_code(exit_.code)
    except BaseException:
        traceback.print_exc()
        return 1


def run(request: dict[str, Any]) -> None:
    child = os.fork()
    if child == 0:
        code = 1
        try:
            code = become_snakemake(request)
            atexit._run_exitfuncs()  # what the interpreter runs on its way out
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    print(child, flush=True)
    print(os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]), flush=True)


if __name__ == "__main__":
    for line in sys.stdin:
        run(json.loads(line))
