"""Sandflow's script jobs without a script process where none is needed: sent to the job server from Snakemake's
own process, or, for the publication record, done in it (as in run/dag_shortcuts.py: only with the Snakemake it was
checked against, a no-op wherever the internal is not as this module knows it).

Snakemake runs a ``script:`` job as a new Python process: it writes the script with a preamble that unpickles the
job's ``snakemake`` object, then runs it. For a job whose hook runs in the job server (run/job_server.py), all that
process does is import Snakemake's script support and sandflow's runner (0.2 s of the 0.25-0.33 s between one job's
end and the next job's start, measured on the demo) and send the job's spec to the server. ``scripts_without_a_process``
sends it from the thread Snakemake's local executor runs the job in, with what that process would have sent: the spec
staged as the script stages it (run/runner.server_request), the environment Snakemake's shell gives a script job
(``job_environment``), this process's working directory, stdout and stderr. The job's benchmark then measures the
child that runs the job (and what it starts), not a process that waits for it. The assembly of context_infos.json
(scripts/assemble_context.py, 0.18 s of process start and imports at the end of every run) goes to the server the same
way, and the publication record (scripts/record_spec.py: one small file written) is written in the executor's thread.

Everything else takes Snakemake's way: a job in a conda env, a container or a shadow directory, a job in an object
store (its script stages its inputs: run/storage.py), a job whose hook is not served (a user hook), a run without a
server, a server that does not answer.

Snakemake cancels a run (Ctrl-C, an error of its own) by shutting its local executor's thread pool down, which waits
for the jobs under way; a script process stops with the Ctrl-C its process group receives. ``cancelled_jobs_stop``
closes the connections of the jobs under way first: each child ends its job when its connection closes
(run/job_child.py).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from sandflow.run import job_server
from sandflow.run.dag_shortcuts import checked_snakemake, installed, replaceable
from sandflow.run.job_child import CONTEXT_INFOS
from sandflow.run.launch import SNAKEFILE
from sandflow.run.storage import STAGED

SCRIPTS = SNAKEFILE.parent / "scripts"
RUN_JOB = str(SCRIPTS / "run_job.py")
ASSEMBLE_CONTEXT = str(SCRIPTS / "assemble_context.py")
RECORD_SPEC = str(SCRIPTS / "record_spec.py")
# What Snakemake's shell sets for a job from its threads and its tmpdir resource (snakemake/shell.py).
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "GOTO_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
TMPDIR_VARIABLES = ("TMPDIR", "TMP", "TEMPDIR", "TEMP")

_under_way: set[socket.socket] = set()
_under_way_lock = threading.Lock()


def job_environment(threads: int, resources: Mapping[str, Any]) -> dict[str, str]:
    """The environment Snakemake's shell gives a script job's process: this process's, with the job's thread count
    for the numeric libraries and its tmpdir resource as the temporary directory."""
    env = dict(os.environ)
    env.update(dict.fromkeys(THREAD_VARIABLES, str(threads)))
    tmpdir = resources.get("tmpdir")
    if tmpdir:
        env.update(dict.fromkeys(TMPDIR_VARIABLES, str(tmpdir)))
    return env


def sandflow_script(script: Any) -> str | None:
    """The path of the sandflow script a script job runs, when it runs in this process's environment on local files;
    None otherwise."""
    plain = not (script.conda_env or script.container_img or script.env_modules or script.shadow_dir)
    if not (plain and script.is_local):
        return None
    path = os.path.realpath(script.local_path)
    if path not in (RUN_JOB, ASSEMBLE_CONTEXT, RECORD_SPEC) or script.params.spec.get(STAGED):
        return None
    return path


@contextlib.contextmanager
def under_way(bench_record: Any, pid: int, connection: socket.socket) -> Iterator[None]:
    """While the job's child runs: its connection where a cancel finds it, and the benchmark of its pid."""
    with _under_way_lock:
        _under_way.add(connection)
    try:
        if bench_record is None:
            yield
        else:
            from snakemake.benchmark import benchmarked

            with benchmarked(pid, bench_record):
                yield
    finally:
        with _under_way_lock:
            _under_way.discard(connection)


def stop_jobs_under_way() -> None:
    with _under_way_lock:
        connections = list(_under_way)
    for connection in connections:
        with contextlib.suppress(OSError):
            connection.shutdown(socket.SHUT_RDWR)


def sent_to_server(script: Any, path: str, address: str) -> int | None:
    """The exit code of the script job's work done by the job server; None when it was not sent (a hook the server
    does not serve) or no server answered."""
    from sandflow.run.runner import script_request, server_request  # at the first job: a dry run needs none of it

    if path == RUN_JOB:
        _, request = server_request(script)
    else:
        request = script_request(CONTEXT_INFOS, script.params.spec, script, [job_server.ASSEMBLY])
    if request is None:
        return None
    return job_server.submit(
        address,
        request,
        env=job_environment(script.threads, script.resources),
        while_running=lambda pid, connection: under_way(script.bench_record, pid, connection),
    )


def scripts_without_a_process() -> None:
    """``PythonScript.evaluate`` sending sandflow's served scripts to the job server and writing the publication
    record itself (the module's docstring)."""
    from snakemake.script import PythonScript

    original = replaceable(PythonScript, "evaluate", ["self", "edit"])
    if original is None:
        return

    @installed
    def evaluate(self: Any, edit: bool = False) -> None:
        path = None if edit else sandflow_script(self)
        if path == RECORD_SPEC:
            from sandflow.run.assembly import record_spec

            record_spec(self.params.spec, self.output[0])
            return
        address = job_server.published_address()
        code = sent_to_server(self, path, address) if path and address else None
        if code is None:
            original(self, edit)
        elif code:
            raise subprocess.CalledProcessError(code, f"{os.path.basename(path)} in the sandflow job server")

    PythonScript.evaluate = evaluate


def cancelled_jobs_stop() -> None:
    """The local executor's ``cancel`` ending the jobs sent from this process before it waits for them."""
    from snakemake.executors.local import Executor

    original = replaceable(Executor, "cancel", ["self"])
    if original is None:
        return

    @installed
    def cancel(self: Any) -> None:
        stop_jobs_under_way()
        original(self)

    Executor.cancel = cancel


def take_dispatch_shortcuts() -> None:
    if not checked_snakemake():
        return
    scripts_without_a_process()
    cancelled_jobs_stop()
