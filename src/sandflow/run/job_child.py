"""A job in a child forked by the job server (run/job_server.py): it takes over the job process's stdout, stderr,
working directory and environment, runs the job (or the assembly of context_infos.json: ENTRIES), and reports its
exit code.

The child ends with os._exit (a fork must not run the exit handlers of the server it inherited), so what a normal
exit would do for what the job made is done here: multiprocessing's exit handler stops the processes it started (a
Manager's server: Data-Juicer's tracer makes one) and removes its temporary directory, and the job's weakref
finalizers marked to run at exit remove temporary directories (Hugging Face datasets keeps its temporary cache files
in one until exit). Without them, every Data-Juicer job left a directory in $TMPDIR, and a traced one a process,
behind.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import sys
import threading
import traceback
from types import SimpleNamespace
from typing import Any

from sandflow.core.exit_finalizers import next_finalizer_number, run_exit_finalizers

# The child's replies to the job process: its pid when it starts (what a benchmark of the job measures), its exit
# code when the job ends.
CHILD_PID = struct.Struct("!i")
EXIT_CODE = struct.Struct("!i")
# What a request can ask a child to run: a job (run/runner.py), or the assembly of context_infos.json (the
# context_infos rule's script, run/assembly.py).
JOB = "job"
CONTEXT_INFOS = "context_infos"
ENTRIES = (JOB, CONTEXT_INFOS)


def run_child(connection: socket.socket, fds: list[int], request: dict[str, Any]) -> int:
    os.setsid()  # its own group: the watchdog below can end the job with everything it started
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fds[0], 1)
    os.dup2(fds[1], 2)
    for fd in fds:
        os.close(fd)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the job may wait for its own subprocesses
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    connection.settimeout(None)  # the watchdog below waits for the job process for as long as the job runs
    try:
        connection.sendall(CHILD_PID.pack(os.getpid()))
    except OSError:
        return 1  # the job process is gone already: so is the job
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    threading.Thread(target=end_when_job_process_goes, args=(connection,), daemon=True).start()
    first_finalizer = next_finalizer_number()  # the job's are those numbered from here on
    code = 1
    try:
        code = run_entry(request)
    except BaseException:
        traceback.print_exc()
    end_as_an_exit_would(first_finalizer)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        connection.sendall(EXIT_CODE.pack(code))
    except OSError:
        pass
    return code


def run_entry(request: dict[str, Any]) -> int:
    """Run what the request names (ENTRIES); its exit code."""
    if request["entry"] == JOB:
        from sandflow.run.runner import execute

        return execute(request["spec"], request["log"][0], request["threads"])
    from sandflow.run.assembly import main_from_snakemake

    try:
        main_from_snakemake(ScriptArguments(request))
    except SystemExit as exc:  # the script's one-line failure (printed) and its exit code
        return exc.code if isinstance(exc.code, int) else 1
    return 0


class NamedPaths(list):
    """A rule's output or log files as Snakemake's script sees them: a list, with each named one as an attribute."""

    def __init__(self, paths: list[str], names: dict[str, int]) -> None:
        super().__init__(paths)
        for name, index in names.items():
            setattr(self, name, paths[index])


class ScriptArguments:
    """What sandflow's scripts read of the ``snakemake`` object Snakemake hands a script: params.spec, output, log and
    threads (run/dispatch_shortcuts.py sends them)."""

    def __init__(self, request: dict[str, Any]) -> None:
        self.params = SimpleNamespace(spec=request["spec"])
        self.output = NamedPaths(request["output"], request["output_names"])
        self.log = NamedPaths(request["log"], {})
        self.threads = request["threads"]


def end_as_an_exit_would(first_finalizer: int) -> None:
    """Run multiprocessing's exit handler and that of its dill-based fork (Hugging Face datasets' pools), whose
    finalizers each run only in the process that made them, then the weakref finalizers marked to run at exit that
    the job made (numbered from first_finalizer), newest first as at exit: none of the server's."""
    for name in ("multiprocessing.util", "multiprocess.util"):
        module = sys.modules.get(name)
        if module is not None:
            try:
                module._exit_function()
            except Exception:
                traceback.print_exc()
    run_exit_finalizers(first_finalizer)


def end_when_job_process_goes(connection: socket.socket) -> None:
    """The job process never sends after its request: end of stream means it is gone."""
    try:
        while connection.recv(1):
            pass
    except OSError:
        pass
    os.killpg(0, signal.SIGKILL)
