"""The warm job server (src/sandflow/run/job_server.py), with a real server process and real jobs.

The jobs are data-pool downsampling jobs planned from a small config: the server runs them in
forked children exactly as Snakemake's job process would have, in the caller's working directory,
and the caller gets the exit code and the job's stderr. A killed job process takes its job with it,
and a server whose Snakemake process dies goes away too; a kept one stays until it is idle.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from sandflow.config.load import load_config_file
from sandflow.plan.planner import plan_config
from sandflow.run import job_server
from sandflow.run.warm_imports import plan_preload, run_preload

from helpers.pool_config import request_for, write_pool_config


@pytest.fixture
def server(tmp_path: Path):
    process = job_server.start(str(tmp_path / "server-of"))
    yield os.environ[job_server.ADDRESS_ENV]
    job_server.stop(process)


def test_a_job_runs_in_a_child_in_the_callers_directory(server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)  # after the server started elsewhere: the relative paths resolve here only
    request = request_for(write_pool_config(tmp_path, samples=10))
    assert job_server.submit(server, request) == 0
    record = json.loads((Path(request["spec"]["job_dir"]) / "context.json").read_text())
    (pool,) = record["values"]
    assert len(Path(pool).read_text().splitlines()) == 3
    log = Path(request["log"][0]).read_text()
    assert f"job {request['spec']['key']} done" in log


def test_a_failing_job_gives_its_exit_code_and_one_line(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
):
    monkeypatch.chdir(tmp_path)
    request = request_for(write_pool_config(tmp_path, samples=10, target="many"))
    assert job_server.submit(server, request) == 1
    assert not Path(request["spec"]["job_dir"]).exists()
    assert "target_num_samples" in capfd.readouterr().err


def test_killing_the_job_process_ends_its_job(server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    request = request_for(write_pool_config(tmp_path, samples=300_000, target=200_000))
    client = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import json, sys; from sandflow.run import job_server; "
            "sys.exit(job_server.submit(sys.argv[1], json.loads(sys.argv[2])))",
            server,
            json.dumps(request),
        ],
        cwd=tmp_path,
    )
    jobs = tmp_path / Path(request["spec"]["job_dir"]).parent
    deadline = time.monotonic() + 120
    while not list(jobs.glob("*.partial-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    (partial,) = jobs.glob("*.partial-*")
    worker = int(partial.name.rsplit("-", 2)[1])  # <key>.partial-<host>-<pid>-<random>
    assert worker != client.pid
    client.kill()
    client.wait()
    deadline = time.monotonic() + 10
    while process_exists(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_exists(worker)
    assert not (jobs / request["spec"]["key"]).exists()


def test_the_server_goes_when_its_snakemake_process_dies(tmp_path: Path):
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from sandflow.run import job_server; "
            "job_server.start(sys.argv[1]); print(flush=True); time.sleep(600)",
            str(tmp_path / "w"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    parent.stdout.readline()  # the server is listening
    address = job_server.socket_path(str(tmp_path / "w"))
    assert os.path.exists(address)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while os.path.exists(address) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(address)
    assert job_server.submit(address, {}) is None  # nobody answers: the job would run in its own process


def test_a_kept_server_serves_later_runs_and_leaves_when_idle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(job_server.ADDRESS_ENV, raising=False)  # restored after the test
    monkeypatch.setenv(job_server.IDLE_ENV, "4")
    work_dir = str(tmp_path / "w")
    server = job_server.start(work_dir, keep=True)
    try:
        address = os.environ[job_server.ADDRESS_ENV]
        assert server is not None and job_server.answers(address)
        assert os.getpgid(server.pid) != os.getpgid(0)  # its own session: a Ctrl-C of the run does not reach it
        assert job_server.start(work_dir, keep=True) is None  # the next run finds it
        assert os.environ[job_server.ADDRESS_ENV] == address
        request = request_for(write_pool_config(tmp_path, samples=10))
        assert job_server.submit(address, request) == 0
        assert job_server.socket_path(work_dir, "other code") != address  # another sandflow gets another server
        server.wait(timeout=60)  # it leaves 4 s after its last job
        assert not os.path.exists(address) and not job_server.answers(address)
        assert Path(f"{address}.log").read_text() == ""  # pings and jobs left no error behind
    finally:
        if server is not None and server.poll() is None:
            server.kill()


def test_a_kept_servers_address_follows_the_import_time_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    online = job_server.code_fingerprint()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # transformers reads it when imported: another server
    offline = job_server.code_fingerprint()
    monkeypatch.setenv("SANDFLOW_TEST_UNRELATED", "x")  # a variable no library reads at import: the same one
    assert online != offline == job_server.code_fingerprint()


DATA_JUICER_PRELOAD = [
    "sandflow.run.lazy_packages:data_juicer_core_on_use",
    "data_juicer.core.analyzer",
    "data_juicer.core.executor.default_executor",
    "matplotlib.font_manager",
    "sandflow.hooks.data_juicer",
    "matplotlib.pyplot",
]


def test_warm_imports_follow_the_hooks_libraries():
    assert job_server.warm_imports(("py-data-juicer",)) == DATA_JUICER_PRELOAD[:-1]
    assert job_server.warm_imports(("torch", "transformers", "peft", "tokenizers")) == [
        "torch",
        "transformers",
        "transformers.trainer",
        "sandflow.hooks.hf.tiny_lm:warm_up",
        "peft",
    ]
    assert job_server.warm_imports(()) == []


# Imported by a server's preload: says which process imported it, and when. Written whole by a rename, so
# the test never reads the marker between its creation and its content.
PRELOAD_MARKER = """
import os, time
marker = os.environ["SANDFLOW_TEST_MARKER"]
with open(marker + ".part", "w") as handle:
    handle.write(f"{os.getpid()} {time.time()}")
os.replace(marker + ".part", marker)
"""


def importable_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, source: str) -> Path:
    """A module a server started from here can import, and the marker file it reports through (not there yet)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "modules").mkdir()
    (tmp_path / "modules" / f"{name}.py").write_text(source)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path / "modules"), os.environ.get("PYTHONPATH", "")]))
    marker = tmp_path / "marker"
    monkeypatch.setenv("SANDFLOW_TEST_MARKER", str(marker))
    monkeypatch.delenv(job_server.ADDRESS_ENV, raising=False)  # restored after the test
    return marker


def wait_for(path: Path) -> None:
    deadline = time.monotonic() + 30
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert path.exists()


def test_a_server_imports_the_runs_preload_before_any_job_asks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    marker = importable_module(tmp_path, monkeypatch, "preload_marker", PRELOAD_MARKER)
    # a module that does not import is skipped: the server goes on with the next and serves jobs
    process = job_server.start(str(tmp_path / "w"), preload=["sandflow_no_such_module", "preload_marker"])
    try:
        wait_for(marker)
        assert marker.read_text().split()[0] == str(process.pid)  # the server itself imported it, unasked
        address = os.environ[job_server.ADDRESS_ENV]
        assert job_server.submit(address, request_for(write_pool_config(tmp_path, samples=10))) == 0
    finally:
        job_server.stop(process)


def test_a_warm_import_runs_with_the_garbage_collector_paused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    module = "gc_state_at_import"
    marker = importable_module(tmp_path, monkeypatch, module, GC_STATE_AT_IMPORT)
    monkeypatch.syspath_prepend(str(tmp_path / "modules"))
    warmed: set[str] = set()
    assert gc.isenabled()
    job_server.warm_once(module, warmed)
    assert marker.read_text() == "False"  # paused while the module was imported
    assert gc.isenabled() and warmed == {module}  # and on again for the server's children


# Imported by a test: whether the garbage collector was on while it was imported.
GC_STATE_AT_IMPORT = """
import gc, os, pathlib
pathlib.Path(os.environ["SANDFLOW_TEST_MARKER"]).write_text(str(gc.isenabled()))
"""


# Imported by a server's preload: an exit handler, as the libraries a server imports register theirs.
EXIT_HANDLER = """
import atexit, os, pathlib
marker = pathlib.Path(os.environ["SANDFLOW_TEST_MARKER"])
atexit.register(marker.write_text, "the exit handlers ran")
marker.with_suffix(".imported").touch()
"""


def test_a_stopped_server_removes_its_socket_and_skips_python_teardown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    marker = importable_module(tmp_path, monkeypatch, "exit_handler", EXIT_HANDLER)
    process = job_server.start(str(tmp_path / "w"), preload=["exit_handler"])
    address = os.environ[job_server.ADDRESS_ENV]
    wait_for(marker.with_suffix(".imported"))
    job_server.stop(process)
    assert process.returncode == 0
    assert not os.path.exists(address)
    # The teardown is what `sandflow run` waited for at its end (0.13 s with Data-Juicer's libraries imported).
    assert not marker.exists()


class Snakemake:
    """What run_preload reads of Snakemake's workflow at onstart: the rules of the DAG's jobs that need to run."""

    def __init__(self, *rules: str) -> None:
        jobs = [SimpleNamespace(rule=SimpleNamespace(name=rule)) for rule in rules]
        self.dag = SimpleNamespace(needrun_jobs=lambda: iter(jobs))


def test_a_runs_preload_is_the_warm_imports_of_its_jobs_hooks():
    demo = Snakemake("probe_via_analyzer", "refine_recipe_via_k_sigma", "process_data", "probe_via_analyzer")
    assert run_preload(demo) == DATA_JUICER_PRELOAD
    training = run_preload(Snakemake("train_model", "process_data"))
    assert training[:5] == DATA_JUICER_PRELOAD[:5] and training[-1] == "matplotlib.pyplot"  # in the background
    assert "torch" in run_preload(Snakemake("train_model"))
    assert run_preload(Snakemake("data_pool_manipulation", "context_infos")) == []  # light jobs: nothing


def test_a_plans_preload_is_that_of_its_unfinished_jobs_hooks(demo_dir: Path):
    plan = plan_config(load_config_file("configs/demo/sandbox.yaml"))
    assert plan_preload(plan) == DATA_JUICER_PRELOAD
    for job in plan.unique_jobs():
        Path(job.context_path).parent.mkdir(parents=True, exist_ok=True)
        Path(job.context_path).write_text("{}")
    assert plan_preload(plan) == []


def local_workflow(deployment_method: str | None = None) -> SimpleNamespace:
    """What start_for_local_run reads of Snakemake's workflow at onstart."""
    workflow = Snakemake("process_data")
    workflow.local_exec = True
    workflow.deployment_settings = SimpleNamespace(deployment_method=deployment_method)
    return workflow


def test_sandflow_runs_server_starts_before_snakemake_and_serves_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(job_server.ADDRESS_ENV, raising=False)
    job_server.start_before_snakemake(str(tmp_path / "work"), preload=[])
    try:
        early = job_server._running
        address = os.environ[job_server.ADDRESS_ENV]
        assert early is not None and job_server.answers(address)
        job_server.start_for_local_run(local_workflow(), str(tmp_path / "work"))  # onstart keeps it
        assert job_server._running is early and os.environ[job_server.ADDRESS_ENV] == address
        assert job_server.submit(address, request_for(write_pool_config(tmp_path, samples=10))) == 0
    finally:
        job_server.stop_running()
    assert early.poll() is not None and not os.path.exists(address)
    assert job_server.ADDRESS_ENV not in os.environ


@pytest.mark.parametrize("setting", [None, job_server.KEEP])
def test_an_early_server_is_stopped_for_jobs_in_their_own_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str | None
):
    """A profile of the project's (profiles/default) could still ask for conda environments: those jobs must not
    reach the server, and see SANDFLOW_JOB_SERVER as the user set it."""
    monkeypatch.delenv(job_server.ADDRESS_ENV, raising=False)
    monkeypatch.setenv(job_server.IDLE_ENV, "4")
    if setting is not None:
        monkeypatch.setenv(job_server.ADDRESS_ENV, setting)
    job_server.start_before_snakemake(str(tmp_path / "work"), preload=[])
    early = job_server._running
    address = os.environ[job_server.ADDRESS_ENV]
    assert job_server.answers(address)
    job_server.start_for_local_run(local_workflow("conda"), str(tmp_path / "work"))
    assert os.environ.get(job_server.ADDRESS_ENV) == setting and job_server._running is None
    if setting is None:
        assert early is not None and early.poll() is not None and not job_server.answers(address)


def test_no_early_server_where_another_run_on_the_work_dir_serves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Its lock refuses this run at onstart: an early start must not take the socket from under its jobs."""
    monkeypatch.delenv(job_server.ADDRESS_ENV, raising=False)
    work_dir = str(tmp_path / "work")
    other = job_server.start(work_dir)
    try:
        monkeypatch.delenv(job_server.ADDRESS_ENV)
        job_server.start_before_snakemake(work_dir, preload=[])
        assert job_server._running is None and job_server.ADDRESS_ENV not in os.environ
        assert job_server.answers(job_server.socket_path(work_dir))  # the other run's server, untouched
    finally:
        job_server.stop(other)


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purpose: check its state (the process may also go while we look).
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


# ---- what a kept server survives, and what a client checks -------------------------------------------------------


@pytest.fixture
def kept_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(job_server.ADDRESS_ENV, raising=False)  # restored after the test
    monkeypatch.setenv(job_server.IDLE_ENV, "60")
    process = job_server.start(str(tmp_path / "kept"), keep=True)
    assert process is not None
    yield os.environ[job_server.ADDRESS_ENV]
    process.terminate()
    process.wait(timeout=30)


def send_raw(address: str, header: bytes, body: bytes = b"") -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(address)
        socket.send_fds(client, [header], [1, 2])
        try:
            client.sendall(body)
        except BrokenPipeError:
            return  # dropped on its header alone, before the body arrived (a length no server can allocate)
        client.settimeout(10)
        try:
            assert client.recv(4) == b""  # dropped: no exit code comes back
        except ConnectionResetError:
            pass  # dropped with bytes unread


@pytest.mark.parametrize(
    "header, body",
    [
        (job_server.LENGTH.pack(2**63), b"{}"),  # a length no server can allocate
        (job_server.LENGTH.pack(16), b'{"preload": [1]}'),  # the wrong fields
        (job_server.LENGTH.pack(60_000), b"[" * 30_000 + b"]" * 30_000),  # too deep for the JSON parser
    ],
    ids=["length-2**63", "wrong-fields", "too-deep"],
)
def test_a_bad_request_drops_its_connection_only(
    kept_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, header: bytes, body: bytes
):
    monkeypatch.chdir(tmp_path)
    send_raw(kept_server, header, body)
    assert job_server.submit(kept_server, request_for(write_pool_config(tmp_path, 10))) == 0  # it still serves
    assert "sandflow: job server: dropped" in Path(f"{kept_server}.log").read_text()


@pytest.mark.parametrize(
    "change",
    [
        {"entry": "sandflow.run.gc"},  # only what the child knows how to run
        {"log": []},
        {"output_names": {"figures": 1}},  # names a file the request does not have
        {"output_names": {"figures": True}},
        {"output": [3]},
    ],
    ids=["unknown-entry", "no-log", "name-out-of-range", "name-not-an-index", "output-not-a-path"],
)
def test_a_request_names_an_entry_the_child_runs_and_only_files_it_carries(tmp_path: Path, change: dict):
    request = {**request_for(write_pool_config(tmp_path, 10)), "cwd": str(tmp_path), "env": {}}
    assert job_server.well_formed(request)
    assert not job_server.well_formed({**request, **change})


def test_a_leftover_temporary_socket_does_not_stop_a_start(tmp_path: Path):
    work_dir = str(tmp_path / "w")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as killed:
        killed.bind(job_server.socket_path(work_dir) + ".tmp")  # a server killed between bind and rename
    process = job_server.start(work_dir)
    try:
        assert job_server.answers(os.environ[job_server.ADDRESS_ENV])
    finally:
        job_server.stop(process)


FOREIGN_SERVER = """
import os, socket, sys
with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
    listener.bind(sys.argv[1])
    listener.listen(1)
    print("listening", flush=True)
    connection, _ = listener.accept()
    connection.settimeout(10)
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    print(len(received), flush=True)
"""


@pytest.mark.skipif(os.getuid() != 0, reason="a server of another uid needs root (setuid)")
def test_a_job_sends_nothing_to_a_server_of_another_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd):
    monkeypatch.chdir(tmp_path)  # the job's relative work_dir resolves here, not in the checkout
    directory = Path(tempfile.mkdtemp(prefix="sf-foreign-", dir="/tmp"))
    directory.chmod(0o777)  # as if uid 65534 could put a socket where we look for ours
    address = str(directory / "s.sock")
    interpreter = shutil.which("python3", path="/usr/bin:/bin") or pytest.skip("no system python3 for uid 65534")
    foreign = subprocess.Popen(
        [interpreter, "-I", "-c", FOREIGN_SERVER, address], user=65534, cwd="/", stdout=subprocess.PIPE, text=True
    )
    try:
        assert foreign.stdout.readline() == "listening\n"
        os.chmod(address, 0o777)
        assert job_server.submit(address, request_for(write_pool_config(tmp_path, 10))) is None  # runs itself
        assert foreign.stdout.readline() == "0\n"  # not a byte of the request (its environment) reached it
        assert "runs as uid 65534, not as you" in capfd.readouterr().err
    finally:
        foreign.kill()
        foreign.wait()
        shutil.rmtree(directory)


def test_a_temp_dir_too_long_for_a_socket_runs_without_a_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
):
    """A Unix socket's address holds about 100 bytes: with a longer $TMPDIR the server could not bind and the run
    failed ('the sandflow job server did not start'). Now the run goes on without a server, saying so in one line."""
    long_temp = tmp_path / ("t" * max(1, 110 - len(str(tmp_path))))
    long_temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(long_temp))
    monkeypatch.delenv(job_server.ADDRESS_ENV, raising=False)
    with pytest.raises(job_server.SocketDirTooLong, match="too long a path for a Unix socket"):
        job_server.start(str(tmp_path / "work"))
    workflow = Snakemake("process_data")
    workflow.local_exec = True
    workflow.deployment_settings = SimpleNamespace(deployment_method=None)
    job_server.start_for_local_run(workflow, str(tmp_path / "work"))
    assert job_server.ADDRESS_ENV not in os.environ and job_server._running is None
    assert "no job server" in capfd.readouterr().err
