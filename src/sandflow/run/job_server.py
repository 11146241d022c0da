"""A warm job server for local runs: heavy jobs start from a process that already imported their libraries.

Measured on a 2-core machine, ``import data_juicer.core`` costs 40-110 s and torch with transformers
15-40 s, paid again by every job, since Snakemake starts each job as a new process. For a local run
(``workflow.local_exec``, no ``--sdm conda``) the Snakefile starts this server once; a job whose hook
uses those libraries sends its spec here instead of running itself. The server imports what the job
needs (once per run: from the run's start, for the hooks of the jobs Snakemake's DAG will run, while Snakemake
starts them; run/warm_imports.py), then forks a child that takes over the job's stdout and stderr (passed as file
descriptors), working directory and environment, runs it with ``sandflow.run.runner.execute`` and reports
the exit code back. Snakemake's process (run/dispatch_shortcuts.py), or the job's script process, waits
for that code, so Snakemake's scheduling, threads and logs are unchanged. The assembly of context_infos.json at
the end of a run comes the same way (a child forks in a fraction of the time a script process starts in).

Safety: the server does nothing but import before forking (no threads, no tensors), so the children
inherit no lock. A child (run/job_child.py) runs in its own process group and kills it when the job process goes away
(Snakemake cancelled the job, or the run was killed), so nothing outlives its job; when the job ends it does
what a normal exit would do for what the job made (its temporary directories, multiprocessing's processes). The server exits
when the Snakemake process that started it exits. On a cluster, in a conda env, or with
SANDFLOW_JOB_SERVER=0 in the environment, every job runs in its own process as before.

With SANDFLOW_JOB_SERVER=keep the server outlives its run and serves the next run on the same
work_dir, so a rerun after changing one parameter does not import torch or Data-Juicer again (about
10 s for torch with transformers here). It leaves after SANDFLOW_JOB_SERVER_IDLE seconds without a
job (default 900). Its address is named by a fingerprint of this interpreter, the installed code
(sandflow's source files, every distribution's version) and the environment variables the libraries
read when imported (HF_*, TORCH*, ...): after an upgrade, an edit of sandflow or a change of those
settings, the next run starts a fresh server instead of forking from stale modules. It writes its own errors
to ``<socket>.log``, never to the terminal of the run that started it.

On a shared host (docs: README, "On a shared login node"): the socket's directory must be private to this
user (``$TMPDIR/sandflow-<uid>``, else ``$XDG_RUNTIME_DIR/sandflow``, else the run is refused; when the socket's path
is too long for a Unix socket the run goes on without a server), because a job
request carries the job's whole environment (API keys) and its preload list names code the server runs. The
server also drops connections from other uids (SO_PEERCRED, Linux), gives up on a client that does not send
its request within SANDFLOW_JOB_SERVER_RECEIVE_TIMEOUT seconds (default 10) or sends a request longer than
MAX_REQUEST_BYTES or of the wrong shape (that connection only), and opens its log without following a symlink.
A job process sends nothing to a server that runs as another uid.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import json
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sandflow.core.collector import collector_paused
from sandflow.core.private_fs import UnsafePath, open_no_follow, private_dir, unsafe_reason
from sandflow.run.job_child import CHILD_PID, ENTRIES, EXIT_CODE, run_child
from sandflow.run.warm_imports import run_preload, warm
from sandflow.run.warm_imports import warm_imports as warm_imports  # the job side asks the server for these

# The job process finds the server through this variable (inherited from the Snakemake process).
ADDRESS_ENV = "SANDFLOW_JOB_SERVER"
LENGTH = struct.Struct("!Q")
MAX_REQUEST_BYTES = 16 * 2**20  # a request is a job spec and its environment: kilobytes
REQUEST_FIELDS = {
    "entry": str,
    "spec": dict,
    "output": list,
    "output_names": dict,
    "log": list,
    "threads": int,
    "preload": list,
    "cwd": str,
    "env": dict,
}
READY_TIMEOUT_S = 30
# What a child runs the job with (run/job_child.py): imported here once, before the first fork, not by every child
# (0.04 s each).
RUNNER = "sandflow.run.runner"
# What the assembly of context_infos.json runs in a child (run/job_child.py: CONTEXT_INFOS).
ASSEMBLY = "sandflow.run.assembly"
KEEP = "keep"  # SANDFLOW_JOB_SERVER=keep: the server stays for the next run
IDLE_ENV = "SANDFLOW_JOB_SERVER_IDLE"
DEFAULT_IDLE_S = 900.0
RECEIVE_TIMEOUT_ENV = "SANDFLOW_JOB_SERVER_RECEIVE_TIMEOUT"
DEFAULT_RECEIVE_TIMEOUT_S = 10.0
PEER_CREDENTIALS = struct.Struct("3i")  # struct ucred: pid, uid, gid
SOCKET_ADDRESS_BYTES = 108 if sys.platform.startswith("linux") else 104  # sun_path, with its NUL (macOS, BSDs: 104)
# Prefixes of the variables that the warm libraries read at import time, which a kept server keeps.
IMPORT_TIME_ENV = ("HF_", "TRANSFORMERS_", "TOKENIZERS_", "TORCH", "CUDA", "OMP_", "MKL_", "DATA_JUICER", "PYTHON")


class SocketDirTooLong(RuntimeError):
    """The server's socket path is too long for a Unix socket: the run goes on without a server."""


def socket_dir() -> Path:
    """$TMPDIR/sandflow-<uid> when it is (or can be made) a directory only this user can enter; else
    $XDG_RUNTIME_DIR/sandflow when that is private; else UnsafePath (another user may have planted it)."""
    primary = Path(tempfile.gettempdir()) / f"sandflow-{os.getuid()}"
    reason = private_dir(primary)
    if reason is None:
        return primary
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime) and unsafe_reason(runtime) is None:
        fallback = Path(runtime) / "sandflow"
        if private_dir(fallback) is None:
            print(
                f"sandflow: note: not using {primary} for the job server ({reason}); using {fallback}", file=sys.stderr
            )
            return fallback
    raise UnsafePath(
        f"the job server's directory {primary} is not safe to use: {reason}; remove it, set XDG_RUNTIME_DIR to "
        "a directory only you can enter, or run with SANDFLOW_JOB_SERVER=0"
    )


def socket_path(work_dir: str, code: str = "") -> str:
    """A short path (Unix socket paths are limited to ~100 bytes) in a directory only this user can enter."""
    directory = socket_dir()
    digest = hashlib.sha256(f"{os.path.abspath(work_dir)}\0{code}".encode()).hexdigest()[:16]
    return str(directory / f"{digest}.sock")


def code_fingerprint() -> str:
    """What a kept server's imports depend on: the interpreter, sandflow's sources, every installed version,
    and the environment variables libraries read when imported (transformers reads HF_HUB_OFFLINE then)."""
    import importlib.metadata

    package = Path(__file__).parent
    parts = [sys.executable, sys.version]
    parts += sorted(f"{name}={value}" for name, value in os.environ.items() if name.startswith(IMPORT_TIME_ENV))
    parts += sorted(f"{dist.metadata['Name']}=={dist.version}" for dist in importlib.metadata.distributions())
    for source in sorted(package.rglob("*.py")):
        stat = source.stat()
        parts.append(f"{source.relative_to(package)}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def answers(path: str) -> bool:
    """Whether a server listens at path (a connection closed without a request is a ping)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


# --- the Snakemake side ------------------------------------------------------------------------------------


def refuse_too_long(path: str) -> None:
    """SocketDirTooLong when the server could not bind path (nor its temporary name)."""
    if len(os.fsencode(f"{path}.tmp")) >= SOCKET_ADDRESS_BYTES:
        raise SocketDirTooLong(
            f"{path} is too long a path for a Unix socket: each job imports its libraries itself (a shorter TMPDIR "
            "brings the job server back)"
        )


def start(work_dir: str, keep: bool = False, preload: Sequence[str] = ()) -> subprocess.Popen | None:
    """Start the server for a run on work_dir and publish its address to the jobs (through os.environ).

    keep: a server that stays for later runs; one already kept for this work_dir and code is reused
    (None is returned then). preload: warm imports (run/warm_imports.py) the server makes as soon as it
    listens, while Snakemake starts the run's first jobs, rather than when a job asks for them."""
    path = socket_path(work_dir, code_fingerprint() if keep else "")
    if keep and answers(path):
        os.environ[ADDRESS_ENV] = path
        return None
    argv = [sys.executable, "-m", "sandflow.run.job_server", path, "0" if keep else str(os.getpid()), *preload]
    if keep:  # its own session and log: it must not hold the run's terminal or pipes open
        with open(open_no_follow(f"{path}.log"), "a") as log:
            refuse_too_long(path)
            server = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    else:
        refuse_too_long(path)
        server = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not os.path.exists(path):
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            raise RuntimeError("the sandflow job server did not start; run with SANDFLOW_JOB_SERVER=0 to do without it")
        time.sleep(0.05)
    os.environ[ADDRESS_ENV] = path
    return server


def stop(server: subprocess.Popen | None) -> None:
    if server is not None and server.poll() is None:
        server.terminate()
        server.wait()
    os.environ.pop(ADDRESS_ENV, None)


_running: subprocess.Popen | None = None
_started_before_snakemake = False
_setting_before_start: str | None = None  # SANDFLOW_JOB_SERVER as the user set it, before start() set the address


def start_before_snakemake(work_dir: str, preload: Sequence[str]) -> None:
    """`sandflow run` of a plain local run (run/noop.py qualifies): start the server before Snakemake starts, so
    that it imports the jobs' libraries while Snakemake imports itself, plans and builds its DAG (about 2 s on the
    demo, the time a job would otherwise wait for them); onstart then keeps it (start_for_local_run). Anything that
    stops this start leaves it to onstart, which says why in one line."""
    global _running, _started_before_snakemake, _setting_before_start
    setting = os.environ.get(ADDRESS_ENV)
    if setting == "0":
        return
    keep = setting == KEEP
    try:
        if not keep and answers(socket_path(work_dir)):
            return  # a run on this work_dir serves there now: its lock refuses this run at onstart
        server = start(work_dir, keep=keep, preload=preload)
    except (SocketDirTooLong, UnsafePath):
        return
    _started_before_snakemake, _setting_before_start = True, setting
    _running = None if keep else server  # a kept server is not stopped with the run
    if server is not None and not keep:
        # Stopped at exit, also by exit_with_error's os._exit (it runs these): a run refused at parse time or at
        # onstart would leave it importing, holding the command's output open.
        weakref.finalize(server, stop, server)


def start_for_local_run(workflow: Any, work_dir: str) -> None:
    """Snakefile onstart: start the server when jobs run on this machine in this environment (or keep the one
    `sandflow run` started)."""
    global _running, _started_before_snakemake
    isolated = bool(workflow.deployment_settings.deployment_method)  # --sdm conda / apptainer / env-modules
    if _started_before_snakemake:
        _started_before_snakemake = False
        if workflow.local_exec and not isolated:
            return
        stop(_running)  # jobs that run elsewhere, or in their own environment, see the setting the user gave
        _running = None
        if _setting_before_start is not None:
            os.environ[ADDRESS_ENV] = _setting_before_start
    setting = os.environ.get(ADDRESS_ENV)
    if workflow.local_exec and not isolated and setting != "0":
        try:
            server = start(work_dir, keep=setting == KEEP, preload=run_preload(workflow))
        except SocketDirTooLong as exc:
            print(f"sandflow: note: no job server: {exc}", file=sys.stderr)
            return
        _running = None if setting == KEEP else server  # a kept server is not stopped with the run


def stop_running() -> None:
    """Snakefile onsuccess / onerror, and the end of `sandflow run`."""
    global _running, _started_before_snakemake
    stop(_running)
    _running, _started_before_snakemake = None, False


# --- the job side ------------------------------------------------------------------------------------------


def published_address() -> str | None:
    """The socket of the server start() published for this run's jobs; None when none runs (the variable unset, or
    the user's setting: 0, keep)."""
    address = os.environ.get(ADDRESS_ENV, "")
    return address if os.path.isabs(address) else None


def submit(
    address: str,
    request: dict[str, Any],
    env: Mapping[str, str] | None = None,
    while_running: Callable[[int, socket.socket], contextlib.AbstractContextManager[Any]] | None = None,
) -> int | None:
    """Run a job on the server; its exit code, or None when no server answers (the caller runs it itself).

    env: the job's environment (default: this process's). while_running(pid, connection): entered once the job's
    child has started, left when it ends (a benchmark of that pid; closing the connection ends the job)."""
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(address)
    except OSError:
        connection.close()
        return None
    with connection:
        if from_another_user(connection):  # the job's environment (API keys) goes to nobody else
            print(
                f"sandflow: note: the job server at {address} runs as uid {peer_uid(connection)}, not as you; "
                "the job runs in its own process",
                file=sys.stderr,
            )
            return None
        environment = dict(os.environ if env is None else env)
        payload = json.dumps({**request, "cwd": os.getcwd(), "env": environment}).encode()
        sys.stdout.flush()
        sys.stderr.flush()
        socket.send_fds(connection, [LENGTH.pack(len(payload))], [sys.stdout.fileno(), sys.stderr.fileno()])
        connection.sendall(payload)
        reply = receive_exactly(connection, CHILD_PID.size)
        if reply is not None:
            with while_running(CHILD_PID.unpack(reply)[0], connection) if while_running else contextlib.nullcontext():
                reply = receive_exactly(connection, EXIT_CODE.size)
    if reply is None:
        print("sandflow: the job's worker process ended without an exit code (killed?)", file=sys.stderr)
        return 1
    return EXIT_CODE.unpack(reply)[0]


def receive_exactly(connection: socket.socket, size: int, deadline: float | None = None) -> bytes | None:
    """size bytes, or None at end of stream; TimeoutError past deadline (time.monotonic())."""
    data = b""
    while len(data) < size:
        if deadline is not None:
            connection.settimeout(max(deadline - time.monotonic(), 0.001))
        chunk = connection.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


# --- the server ----------------------------------------------------------------------------------------------


def serve(path: str, parent_pid: int, idle_s: float, preload: Sequence[str] = ()) -> None:
    """Serve jobs until the Snakemake process parent_pid is gone, or, for a kept server (parent_pid 0),
    until idle_s seconds pass without a job. Between connections, one module at a time, import what
    preload names: a job that arrives meanwhile waits for the import under way and its own, not for the rest."""
    # A handler on the root logger makes libraries' logging.basicConfig() at import a no-op, as it is in a job
    # process (whose log file handler comes first): otherwise every job's log would be echoed to stderr.
    logging.getLogger().addHandler(logging.NullHandler())
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: Snakemake decides, then stops us
    signal.signal(signal.SIGTERM, functools.partial(exit_at_once, path, os.getpid()))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    for leftover in (path, path + ".tmp"):  # of an earlier, killed run (the directory is this user's own)
        if os.path.lexists(leftover):
            os.unlink(leftover)
    listener.bind(path + ".tmp")
    os.rename(path + ".tmp", path)  # appears only once it can be connected to
    listener.listen(64)
    warmed: set[str] = set()
    pending = [*preload, ASSEMBLY]  # the assembly last: every run ends with it, after its jobs
    last_job = time.monotonic()
    try:
        while os.getppid() == parent_pid if parent_pid else time.monotonic() - last_job < idle_s:
            listener.settimeout(0.0 if pending else 1.0)  # 0.0: only a connection that is already waiting
            try:
                connection, _ = listener.accept()
            except (TimeoutError, BlockingIOError):
                if pending:
                    preload_one(pending.pop(0), warmed)
                continue
            request, fds = read_request(connection)
            if request is None:
                continue
            try:
                for name in [*request["preload"], RUNNER]:
                    warm_once(name, warmed)
                gc.freeze()  # what is loaded stays out of every later collection, in the server and in its children
            except Exception:
                traceback.print_exc()
                close_all(connection, fds)
                continue
            if os.fork() == 0:
                listener.close()
                os._exit(run_child(connection, fds, request))
            last_job = time.monotonic()  # idle time counts from here: warming up for a job is not idling
            close_all(connection, fds)
    finally:
        remove_socket(path)


def remove_socket(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def exit_at_once(path: str, server_pid: int, *_: Any) -> None:
    """SIGTERM (the run's end): remove the socket and exit without Python's teardown of what the server imported
    (0.13 s with Data-Juicer's libraries, and every `sandflow run` waited for it). The server holds nothing an exit
    handler would finish: it only imports and forks; each job ends in its child (run/job_child.py). A child forked
    just now, before it set its own handler, exits as before."""
    if os.getpid() != server_pid:
        sys.exit(0)
    remove_socket(path)
    os._exit(0)


def preload_one(name: str, warmed: set[str]) -> None:
    """Import one module of the run's preload list; one that fails is left for a job's request to import (and
    to report then, in that job's log)."""
    try:
        warm_once(name, warmed)
    except Exception:
        return
    gc.freeze()


def warm_once(name: str, warmed: set[str]) -> None:
    """Import (run/warm_imports.warm) what this server has not imported yet, with the garbage collector paused: an
    import makes many objects and little garbage, and the collector's passes over them cost 10-15% of the CPU time
    of Data-Juicer's import (the wait of a run's first job)."""
    if name in warmed:
        return
    with collector_paused():
        warm(name)
    warmed.add(name)


def peer_uid(connection: socket.socket) -> int | None:
    """The uid of the process at the other end (SO_PEERCRED; None where the platform has no such option)."""
    if not hasattr(socket, "SO_PEERCRED"):
        return None  # not Linux: the private socket directory is the only guard
    credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, PEER_CREDENTIALS.size)
    return PEER_CREDENTIALS.unpack(credentials)[1]


def from_another_user(connection: socket.socket, own_uid: int | None = None) -> bool:
    uid = peer_uid(connection)
    return uid is not None and uid != (os.getuid() if own_uid is None else own_uid)


def receive_timeout() -> float:
    return float(os.environ.get(RECEIVE_TIMEOUT_ENV) or DEFAULT_RECEIVE_TIMEOUT_S)


def read_request(connection: socket.socket) -> tuple[dict[str, Any] | None, list[int]]:
    """A job request and the job's stdout/stderr descriptors; (None, []) for a ping, a connection from another
    user, a client that sends nothing, or too little, within the receive timeout, or a request that is too long
    or malformed (all closed here: the server goes on)."""
    if from_another_user(connection):
        print(f"sandflow: job server: dropped a connection from uid {peer_uid(connection)}", file=sys.stderr)
        connection.close()
        return None, []
    deadline = time.monotonic() + receive_timeout()
    fds: list[int] = []
    try:
        connection.settimeout(receive_timeout())
        header, fds, _, _ = socket.recv_fds(connection, LENGTH.size, 2)
        if header:  # else a ping (answers())
            (length,) = LENGTH.unpack(header)
            if length > MAX_REQUEST_BYTES:
                raise ValueError(f"a length of {length} bytes, over the cap of {MAX_REQUEST_BYTES}")
            request = json.loads(receive_exactly(connection, length, deadline) or b"null")
            if well_formed(request) and len(fds) == 2:
                return request, fds
            print("sandflow: job server: dropped an incomplete or malformed request", file=sys.stderr)
    except Exception as exc:  # a timeout, a bad length, bad JSON (too deep: RecursionError): this connection only
        print(f"sandflow: job server: dropped a request ({type(exc).__name__}: {exc})", file=sys.stderr)
    close_all(connection, fds)
    return None, []


def well_formed(request: Any) -> bool:
    fields = isinstance(request, dict) and all(isinstance(request.get(k), t) for k, t in REQUEST_FIELDS.items())
    if not fields or request["entry"] not in ENTRIES or not request["log"]:
        return False
    paths = [*request["output"], *request["log"], *request["preload"]]
    names = request["output_names"].values()
    return all(isinstance(p, str) for p in paths) and all(
        type(i) is int and 0 <= i < len(request["output"]) for i in names
    )


def close_all(connection: socket.socket, fds: list[int]) -> None:
    connection.close()
    for fd in fds:
        os.close(fd)


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), float(os.environ.get(IDLE_ENV) or DEFAULT_IDLE_S), sys.argv[3:])
