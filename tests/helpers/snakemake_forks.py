"""Many snakemake command lines at the cost of one import: `python -m helpers.snakemake_forks` (tests/ on
PYTHONPATH).

Importing Snakemake takes 3-12 s on our machines, parsing a bad config well under one. This process imports
``snakemake.cli`` once, then for each request on stdin (a JSON line: working directory, arguments, file for
stdout and stderr) forks a fresh child that runs ``snakemake.cli.main(arguments)``, which is all that
``python -m snakemake`` does, and prints the child's exit code as one line. Each run starts from the state
right after the import, as a new process would. The third-party modules every run then loads (the plugins
Snakemake's registries find, profiles, the report's modules) are imported here too: ~0.4 s left per run
instead of ~1.2 s. sandflow's own modules are not: each run imports the code under test afresh.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

import jsonschema  # noqa: F401
import requests  # noqa: F401
import smart_open  # noqa: F401
import snakemake.cli
import snakemake.profiles  # noqa: F401
import snakemake.report.html_reporter  # noqa: F401
import snakemake.storage  # noqa: F401
import snakemake_storage_plugin_s3  # noqa: F401
import yte  # noqa: F401


def run(cwd: str, arguments: list[str], output: str) -> int:
    child = os.fork()
    if child == 0:
        code = 1
        try:
            descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(descriptor, 1)
            os.dup2(descriptor, 2)
            os.chdir(cwd)
            sys.argv = ["snakemake", *arguments]
            snakemake.cli.main(arguments)
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])


if __name__ == "__main__":
    for line in sys.stdin:
        request = json.loads(line)
        print(run(request["cwd"], request["arguments"], request["output"]), flush=True)
