"""Safe on a shared host: hostile inputs and hostile files that another local user could have planted.

Each test plants something (a socket directory of the wrong mode, owner or kind, a symlinked log, a symlinked
directory on the way to a link, a path-shaped name, a secret header, plain http to another host) and checks the
safe outcome: exit 2 or a refusal in one line, or the safe fallback, nothing written outside the work_dir,
no secret in any file. The config-level cases (names, headers, api_key_env, http) are in the bad-input corpus
(tests/data/bad_configs/cases.yaml, name_* and cred_*), checked by tests/workflow/test_bad_input.py; here they go
through the places a run writes.

A second uid exists only when the tests run as root: then a directory owned by another user and a connection
from another uid are real (uid 65534); otherwise those tests are skipped, and the peer check is tested on a
real connection against a server uid that differs from ours.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from sandflow.cli import main
from sandflow.config.load import load_config
from sandflow.core.jobio import job_logging
from sandflow.core.private_fs import UnsafePath, ensure_within, private_dir
from sandflow.hooks.llm.chat import ApiChat
from sandflow.plan.planner import plan_config
from sandflow.run import job_server
from sandflow.run.context import assemble

from helpers.chat import chat_server
from helpers.env import snakemake_env
from helpers.paths import SNAKEFILE
from helpers.pool_config import request_for, write_pool_config
from helpers.snakemake import snakemake

OTHER_UID = 65534  # nobody
as_root = pytest.mark.skipif(os.getuid() != 0, reason="a second uid needs root (chown, setuid)")
SECRET = "sk-live-0123456789-never-on-disk"


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file() and not p.is_symlink()}


@pytest.fixture
def tmpdir_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private $TMPDIR (tempfile caches it, so both are set) and no $XDG_RUNTIME_DIR."""
    tmp = tmp_path / "tmp"
    tmp.mkdir(mode=0o1777)
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    return tmp


def planted(tmp: Path) -> Path:
    return tmp / f"sandflow-{os.getuid()}"


# ---- the job server's socket directory --------------------------------------------------------------------


def test_a_fresh_socket_directory_is_made_private(tmpdir_env: Path):
    assert job_server.socket_dir() == planted(tmpdir_env)
    assert planted(tmpdir_env).stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("kind", ["open mode", "symlink", "file"])
def test_a_planted_socket_directory_is_refused_in_one_line(tmpdir_env: Path, tmp_path: Path, kind: str):
    attacker = tmp_path / "attacker"
    attacker.mkdir(mode=0o777)
    if kind == "open mode":
        planted(tmpdir_env).mkdir()
        planted(tmpdir_env).chmod(0o777)
    elif kind == "symlink":
        planted(tmpdir_env).symlink_to(attacker)
    else:
        planted(tmpdir_env).write_text("")
    with pytest.raises(UnsafePath) as refused:
        job_server.socket_path(str(tmp_path / "work"))
    message = one_line(str(refused.value))
    assert str(planted(tmpdir_env)) in message and "SANDFLOW_JOB_SERVER=0" in message
    assert {"open mode": "group or others", "symlink": "symlink", "file": "not a directory"}[kind] in message
    assert list(attacker.iterdir()) == []


@as_root
def test_a_socket_directory_owned_by_another_user_is_refused(tmpdir_env: Path, tmp_path: Path):
    planted(tmpdir_env).mkdir(mode=0o700)
    os.chown(planted(tmpdir_env), OTHER_UID, OTHER_UID)
    with pytest.raises(UnsafePath, match=f"owned by uid {OTHER_UID}, not by you"):
        job_server.socket_path(str(tmp_path / "work"))


def test_an_unsafe_socket_directory_falls_back_to_a_private_xdg_runtime_dir(
    tmpdir_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
):
    planted(tmpdir_env).mkdir(mode=0o777)
    planted(tmpdir_env).chmod(0o777)
    runtime = tmp_path / "run-user"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    path = job_server.socket_path(str(tmp_path / "work"))
    assert Path(path).parent == runtime / "sandflow"
    assert "using " + str(runtime / "sandflow") in one_line(capsys.readouterr().err)
    assert list(planted(tmpdir_env).iterdir()) == []

    runtime.chmod(0o755)  # a runtime dir others may enter is no fallback either
    with pytest.raises(UnsafePath):
        job_server.socket_path(str(tmp_path / "work"))


def test_private_dir_explains_what_is_wrong(tmp_path: Path):
    assert private_dir(tmp_path / "fresh") is None
    assert private_dir(tmp_path / "no" / "parent").startswith("it cannot be created")


@pytest.mark.slow
def test_a_run_with_a_planted_socket_directory_exits_2_in_one_line(tmp_path: Path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    (tmp / f"sandflow-{os.getuid()}").mkdir(mode=0o777)
    (tmp / f"sandflow-{os.getuid()}").chmod(0o777)
    work = tmp_path / "w"
    work.mkdir()
    config = write_pool_config(work, 10)
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE)]
    env = {**snakemake_env(), "TMPDIR": str(tmp), "SANDFLOW_JOB_SERVER": "1"}
    env.pop("XDG_RUNTIME_DIR", None)
    result = subprocess.run(
        [*command, "--configfile", str(config), "--cores", "1"], cwd=work, env=env, capture_output=True, text=True
    )
    assert result.returncode == 2, result.stderr[-3000:]
    ours = [line for line in result.stderr.splitlines() if line.startswith("sandflow:")]
    assert len(ours) == 1 and "is not safe to use: its mode is 777" in ours[0], result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert not (work / "out" / "jobs").exists()  # no job ran
    assert list((tmp / f"sandflow-{os.getuid()}").iterdir()) == []


# ---- the peer's uid and the receive timeout ---------------------------------------------------------------


def test_the_peer_check_reads_the_real_uid_of_a_connection():
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with ours, theirs:
        assert job_server.peer_uid(ours) == os.getuid()
        assert not job_server.from_another_user(ours)
        # A server running as another user sees this connection as one from another user.
        assert job_server.from_another_user(ours, own_uid=os.getuid() + 1)


def start_server(tmp_path: Path, **env: str) -> tuple[subprocess.Popen, str, Path]:
    """A kept server (parent pid 0) at a path in a directory anyone may enter, logging to a file."""
    directory = Path(tempfile.mkdtemp(prefix="sf-peer-", dir="/tmp"))
    directory.chmod(0o755)
    path, log = str(directory / "s.sock"), tmp_path / "server.log"
    with log.open("w") as handle:
        server = subprocess.Popen(
            [sys.executable, "-m", "sandflow.run.job_server", path, "0"],
            stdout=handle,
            stderr=handle,
            env={**os.environ, job_server.IDLE_ENV: "60", **env},
        )
    deadline = time.monotonic() + 30
    while not os.path.exists(path):
        assert server.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    return server, path, log


def stop_server(server: subprocess.Popen, path: str) -> None:
    server.terminate()
    server.wait(timeout=30)
    os.rmdir(os.path.dirname(path))


CLIENT = """
import json, os, socket, struct, sys
fields = {"entry": "job", "spec": {}, "output": [], "output_names": {}, "log": ["/dev/null"], "threads": 1,
          "cwd": "/", "env": {}}
request = json.dumps({**fields, "preload": ["no_such_module_canary"]}).encode()
with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
    c.connect(sys.argv[1])
    try:
        socket.send_fds(c, [struct.pack("!Q", len(request))], [1, 2])
        c.sendall(request)
        print(len(c.recv(4)))  # 4: an exit code came back
    except (BrokenPipeError, ConnectionResetError):  # dropped by the server
        print(0)
"""


@as_root
def test_a_connection_from_another_uid_is_dropped_before_its_request_is_read(tmp_path: Path):
    server, path, log = start_server(tmp_path)
    try:
        os.chmod(path, 0o777)  # as if the directory had been left open: only the uid check stands
        # The client needs only the standard library, from an interpreter that user may run (ours is under /root).
        interpreter = shutil.which("python3", path="/usr/bin:/bin") or pytest.skip("no system python3 for uid 65534")
        theirs = subprocess.run(
            [interpreter, "-I", "-c", CLIENT, path], user=OTHER_UID, cwd="/", capture_output=True, text=True, timeout=60
        )
        assert theirs.returncode == 0 and theirs.stdout.strip() == "0", theirs.stderr  # closed, no exit code
        time.sleep(0.5)
        assert f"dropped a connection from uid {OTHER_UID}" in log.read_text()
        assert "no_such_module_canary" not in log.read_text()  # its preload list was never read
        ours = subprocess.run([sys.executable, "-I", "-c", CLIENT, path], capture_output=True, text=True, timeout=60)
        assert ours.returncode == 0
        time.sleep(0.5)
        assert "No module named 'no_such_module_canary'" in log.read_text()  # the same request from us is read
    finally:
        stop_server(server, path)


def test_a_stalled_client_does_not_stall_the_next_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    server, path, log = start_server(tmp_path, **{job_server.RECEIVE_TIMEOUT_ENV: "1"})
    stalled = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    half = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        stalled.connect(path)  # connects and sends nothing
        half.connect(path)  # sends its header, then too little of its request
        socket.send_fds(half, [job_server.LENGTH.pack(1000)], [1, 2])
        half.sendall(b"{")
        started = time.monotonic()
        assert job_server.submit(path, request_for(write_pool_config(tmp_path, 10))) == 0
        assert time.monotonic() - started < 15
        assert log.read_text().count("dropped a request (TimeoutError") == 2
    finally:
        stalled.close()
        half.close()
        stop_server(server, path)


# ---- logs opened without following symlinks ----------------------------------------------------------------


def test_a_planted_symlink_at_a_job_log_is_refused_and_not_written_through(tmp_path: Path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    log = tmp_path / "work" / "logs" / "Hook" / "key.log"
    log.parent.mkdir(parents=True)
    log.symlink_to(victim)
    for mode in ("w", "a"):
        with pytest.raises(UnsafePath, match="is a symlink; sandflow does not write through it"):
            with job_logging(str(log), mode=mode):
                logging.getLogger("sandflow.job").info("must not reach the victim")
    assert victim.read_text() == "precious\n"


def test_a_job_whose_log_is_a_planted_symlink_fails_in_one_line(tmp_path: Path, monkeypatch, capfd):
    from sandflow.run.runner import execute

    monkeypatch.chdir(tmp_path)
    request = request_for(write_pool_config(tmp_path, 10))
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    Path(request["log"][0]).symlink_to(victim)
    assert execute(request["spec"], request["log"][0], 1) == 1
    assert "is a symlink" in one_line(capfd.readouterr().err)
    assert victim.read_text() == "precious\n"


def test_the_kept_servers_log_is_not_followed_through_a_planted_symlink(tmpdir_env: Path, tmp_path: Path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    work = str(tmp_path / "work")
    path = job_server.socket_path(work, job_server.code_fingerprint())
    Path(f"{path}.log").symlink_to(victim)
    with pytest.raises(UnsafePath, match="is a symlink"):
        job_server.start(work, keep=True)
    assert victim.read_text() == "precious\n" and not os.path.exists(path)


# ---- paths sandflow writes stay where they belong -------------------------------------------------------------


def test_ensure_within_refuses_dot_dot_and_a_symlinked_directory_on_the_way(tmp_path: Path):
    root, outside = tmp_path / "work", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    ensure_within(root / "pipelines" / "p" / "name", root, "link")
    with pytest.raises(UnsafePath, match="outside"):
        ensure_within(root / ".." / "outside" / "x", root, "link")
    (root / "pipelines").symlink_to(outside)
    with pytest.raises(UnsafePath, match="would be written outside"):
        ensure_within(root / "pipelines" / "x", root, "readable link")


def test_the_readable_links_are_not_written_through_a_planted_symlinked_directory(tmp_path: Path):
    """The assembly with a finished job: work_dir/pipelines planted as a symlink to another directory."""
    work, outside = tmp_path / "work", tmp_path / "outside"
    job_dir = work / "jobs" / "Hook" / "k"
    job_dir.mkdir(parents=True)
    (job_dir / "context.json").write_text(json.dumps({"values": [], "writes": []}))
    outside.mkdir()
    (work / "pipelines").symlink_to(outside)
    job = {"key": "k", "job_dir": str(job_dir), "writes": [], "output_names": None, "meta_name": "m"}
    job |= {"pipeline": "p", "iteration": 1, "readable_name": "m", "trial": None}
    with pytest.raises(UnsafePath, match="readable link .* would be written outside"):
        assemble({"work_dir": str(work), "jobs": [job]})
    assert list(outside.iterdir()) == []


@pytest.mark.slow
def test_an_absolute_meta_name_never_replaces_a_file_outside_work_dir(tmp_path: Path):
    notes = tmp_path / "home" / "notes"
    notes.parent.mkdir()
    notes.write_text("my notes\n")
    work = tmp_path / "w"
    work.mkdir()
    config = yaml.safe_load(write_pool_config(work, 10).read_text())
    config["execution_job_configs"][0]["meta_name"] = str(notes)
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(work, "config.yaml", check=False)
    assert result.returncode == 2
    ours = [line for line in result.stderr.splitlines() if line.startswith("sandflow:")]
    assert len(ours) == 1 and "meta_name" in ours[0] and "must not contain '/'" in ours[0]
    assert notes.read_text() == "my notes\n" and not notes.is_symlink()
    assert not (work / "out").exists()


# ---- credentials ----------------------------------------------------------------------------------------------

API_JOB = {
    "hook": "InferModelHook",
    "meta_name": "infer",
    "extra_configs": {"type": "api", "model": "m", "dataset_path": "data.jsonl", "export_path": "./out/"},
}


def api_config(tmp_path: Path, **extra: object) -> Path:
    (tmp_path / "data.jsonl").write_text('{"text": "x"}\n')
    job = {**API_JOB, "extra_configs": {**API_JOB["extra_configs"], **extra}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"work_dir": "./work", "execution_job_configs": [job]}))
    return path


@pytest.mark.parametrize(
    "headers", [{"Authorization": f"Bearer {SECRET}"}, {"Cookie": f"s={SECRET}"}, {"api-key": SECRET}]
)
def test_a_secret_header_is_refused_and_never_written(headers, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    config = api_config(tmp_path, model_params={"base_url": "https://api.example.com/v1", "default_headers": headers})
    assert main(["check", str(config)]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"default_headers.{next(iter(headers))}" in line and "environment variable" in line
    assert SECRET not in line
    assert not (tmp_path / "work").exists()
    assert [name for name, data in files_under(tmp_path).items() if SECRET.encode() in data] == ["config.yaml"]


def test_plain_http_to_another_host_is_refused_unless_allowed_and_the_allowance_is_not_in_the_key(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    remote = {"base_url": "http://10.1.2.3:8000/v1"}
    assert main(["check", str(api_config(tmp_path, model_params=remote, api_key_env="MY_KEY"))]) == 2
    assert "plain http:// to another host" in one_line(capsys.readouterr().err)

    def key(**extra: object) -> str:
        return plan_config(load_config(yaml.safe_load(api_config(tmp_path, **extra).read_text()))).jobs[0].key

    assert key(model_params=remote, allow_insecure_http=True)  # plans
    for loopback in ("http://127.0.0.1:8765/v1", "http://127.8.9.1/v1", "http://[::1]:80/v1", "http://localhost/v1"):
        assert key(model_params={"base_url": loopback}) == key(
            model_params={"base_url": loopback}, allow_insecure_http=True
        )


def test_at_run_time_a_base_url_from_the_environment_is_checked_too(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://api.example.com/v1")
    monkeypatch.setenv("MY_KEY", SECRET)
    with pytest.raises(ValueError, match="plain http:// to another host") as refused:
        ApiChat({"type": "api", "model": "m", "api_key_env": "MY_KEY"}, logging.getLogger("t"))
    assert SECRET not in str(refused.value)


def test_header_env_sends_a_header_from_the_environment(monkeypatch):
    monkeypatch.setenv("MY_KEY", "bearer-secret")
    monkeypatch.setenv("MY_HEADER_KEY", SECRET)
    with chat_server(lambda messages: "ok") as server:
        config = {
            "type": "api",
            "model": "m",
            "api_key_env": "MY_KEY",
            "header_env": {"X-Api-Key": "MY_HEADER_KEY"},
            "model_params": {"base_url": server.url},
        }
        assert ApiChat(config, logging.getLogger("t"))([{"role": "user", "content": "hi"}]) == "ok"
    assert server.requests[0].headers["X-Api-Key"] == SECRET
    assert server.requests[0].headers["Authorization"] == "Bearer bearer-secret"
