"""Secrets stay where they belong: an API key goes only to the endpoint configured, over plain http only to a
listener of this user, never out through a redirect, a URL or a log line; and a config file is never run as code.

Real servers on 127.0.0.x (sandflow.devtools.loopback_chat), a real listener of another user (uid 65534, when the
tests run as root), real snakemake for the end-to-end scan.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandflow.cli import main
from sandflow.core.jobio import JobFailed
from sandflow.core.listeners import listener_uids
from sandflow.devtools.loopback_chat import ChatServer
from sandflow.hooks.llm.infer import infer_model

from helpers.job_runs import file_logger, job_run
from helpers.paths import REPO
from helpers.snakemake import snakemake

DATA = REPO / "tests" / "data" / "llm" / "math_qa_pool_1.jsonl"
SECRET = "sk-secrets-test-0123456789"
HEADER_SECRET = "org-secret-9876543210"
PASSWORD = "hunter2-in-the-url"
NOBODY = 65534


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDFLOW_TEST_KEY", SECRET)
    monkeypatch.setenv("SANDFLOW_TEST_ORG", HEADER_SECRET)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_URL", raising=False)


@pytest.fixture
def servers() -> Iterator[tuple[ChatServer, ChatServer]]:
    """The endpoint on 127.0.0.1 and another host (127.0.0.2, loopback on Linux) that records what reaches it."""
    endpoint, elsewhere = ChatServer().start(), ChatServer(host="127.0.0.2").start()
    yield endpoint, elsewhere
    endpoint.stop()
    elsewhere.stop()


def run_infer(tmp_path: Path, base_url: str | None, **extra: Any) -> None:
    """InferModelHook type api on one sample, as the runner calls it; the log goes to tmp_path/job.log."""
    export = tmp_path / "job" / "export"
    export.mkdir(parents=True, exist_ok=True)
    log = file_logger(f"sandflow.test.secrets.{tmp_path}", tmp_path / "job.log", mode="a")
    config = {
        "type": "api",
        "model": "m",
        "dataset_path": str(DATA),
        "export_path": str(export),
        "api_key_env": "SANDFLOW_TEST_KEY",
        "header_env": {"X-Org": "SANDFLOW_TEST_ORG"},
        "func_kwargs": {"query_key": "question"},
        "max_retry_num": 0,
        "model_params": {"timeout": 5, **({"base_url": base_url} if base_url else {})},
        **extra,
    }
    try:
        infer_model(job_run("InferModelHook", tmp_path / "job", extra_configs=config, log=log))
    finally:
        for handler in log.handlers:
            handler.close()
        log.handlers.clear()


def files_containing(root: Path, *secrets: str) -> list[str]:
    return [
        str(path)
        for path in root.rglob("*")
        if path.is_file() and any(secret.encode() in path.read_bytes() for secret in secrets)
    ]


# ---- redirects ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [302, 307])
def test_a_redirect_to_another_host_is_refused_and_the_key_never_arrives(
    tmp_path: Path, servers: tuple[ChatServer, ChatServer], keys: None, status: int
):
    endpoint, elsewhere = servers
    endpoint.redirect_next(1, f"{elsewhere.url}/chat/completions", status=status)
    with pytest.raises(JobFailed) as error:
        run_infer(tmp_path, endpoint.url)
    assert [request.headers for request in elsewhere.requests] == [], "the other host was contacted"
    assert str(error.value) == (
        f"request to {endpoint.url}/chat/completions answered HTTP {status}, a redirect to "
        f"{elsewhere.url.removesuffix('/v1')}; redirects are not followed (they would carry the key and header_env "
        f"headers elsewhere): configure the final URL instead"
    )
    assert endpoint.requests[0].headers["Authorization"] == f"Bearer {SECRET}"  # the endpoint itself got it
    assert files_containing(tmp_path, SECRET, HEADER_SECRET) == []


# ---- plain http to loopback: only to a listener of this user ----------------------------------------------------


def listen_as_nobody(report: int) -> None:
    """In a forked child: become uid 65534, listen on 127.0.0.1, write the port and then the first request's
    head (everything up to the blank line, as hex) to the pipe ``report``."""
    os.setgid(NOBODY)
    os.setuid(NOBODY)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    os.write(report, f"{server.getsockname()[1]}\n".encode())
    connection, _ = server.accept()
    connection.settimeout(2)
    data = b""
    with contextlib.suppress(OSError):
        while b"\r\n\r\n" not in data and (chunk := connection.recv(65536)):
            data += chunk
    os.write(report, data.hex().encode() + b"\n")
    connection.close()


@pytest.fixture
def foreign_listener() -> Iterator[tuple[int, Callable[[], bytes]]]:
    """A real socket listening on 127.0.0.1, owned by uid 65534 (root forks a child that becomes that user), and
    a function returning the request head that reached it (b"" when nothing connected)."""
    if os.geteuid() != 0:
        pytest.skip("a listener of another user needs root to start")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            listen_as_nobody(write_end)
        finally:
            os._exit(0)
    os.close(write_end)
    report = os.fdopen(read_end)
    port = int(report.readline())

    def received() -> bytes:
        # The child reports a request before it hangs up, so before the client's error: a short wait suffices.
        ready, _, _ = select.select([report], [], [], 0.5)
        return bytes.fromhex(report.readline().strip()) if ready else b""

    yield port, received
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    report.close()


def test_listener_owners_are_read_from_the_socket_tables(foreign_listener, servers):
    port, _ = foreign_listener
    endpoint, elsewhere = servers
    assert listener_uids("127.0.0.1", port) == {NOBODY}
    assert listener_uids("127.0.0.1", endpoint.httpd.server_address[1]) == {os.geteuid()}
    assert listener_uids("127.0.0.2", elsewhere.httpd.server_address[1]) == {os.geteuid()}
    assert listener_uids("127.0.0.1", elsewhere.httpd.server_address[1]) == set()  # bound to 127.0.0.2 only


def test_plain_http_to_another_users_loopback_listener_is_refused_unless_allowed(
    tmp_path: Path, foreign_listener, keys: None
):
    port, received = foreign_listener
    with pytest.raises(JobFailed) as error:
        run_infer(tmp_path, f"http://127.0.0.1:{port}/v1")
    assert received() == b"", "the other user's listener was contacted"
    assert str(error.value) == (
        f"request to http://127.0.0.1:{port}/v1/chat/completions refused: someone else (uid {NOBODY}) listens on "
        f"127.0.0.1:{port}, and a plain-http request would hand them the key; start your own server there, or set "
        f"extra_configs.allow_insecure_http: true if every user of this machine is trusted"
    )
    # allow_insecure_http is the escape hatch: the same listener then gets the request, key and all.
    with pytest.raises(JobFailed, match="failed after 1 attempt"):  # it hangs up without an answer
        run_infer(tmp_path, f"http://127.0.0.1:{port}/v1", allow_insecure_http=True)
    assert f"Authorization: Bearer {SECRET}".encode() in received()


# ---- credentials in URLs and other services' variables ----------------------------------------------------------


def test_openai_base_url_with_credentials_is_refused_without_printing_them(
    tmp_path: Path, servers: tuple[ChatServer, ChatServer], keys: None, monkeypatch: pytest.MonkeyPatch
):
    endpoint, _ = servers
    monkeypatch.setenv("OPENAI_BASE_URL", endpoint.url.replace("http://", f"http://user:{PASSWORD}@"))
    with pytest.raises(ValueError) as error:
        run_infer(tmp_path, None)
    assert str(error.value).startswith(f"'{endpoint.url}/chat/completions' carries credentials (user:password@)")
    assert endpoint.requests == []
    assert files_containing(tmp_path, PASSWORD, SECRET) == []


@pytest.mark.parametrize(
    "setting, place",
    [
        ({"api_endpoint": f"https://api.example.com/v1/chat/completions?key={PASSWORD}"}, "api_endpoint"),
        (
            {"model_params": {"base_url": f"https://api.example.com/v1?version=1&X-Amz-Signature={PASSWORD}"}},
            "model_params.base_url",
        ),
        ({"dataset_path": [str(DATA), f"https://user:{PASSWORD}@data.example.com/d.jsonl"]}, "dataset_path[1]"),
    ],
)
def test_sandflow_check_refuses_urls_carrying_credentials_and_never_prints_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, setting: dict, place: str
):
    monkeypatch.chdir(tmp_path)
    extra = {"type": "api", "model": "m", "export_path": "./out/", "dataset_path": str(DATA), **setting}
    job = {"hook": "InferModelHook", "meta_name": "infer", "extra_configs": extra}
    Path("c.yaml").write_text(yaml.safe_dump({"work_dir": "./work", "execution_job_configs": [job]}))
    assert main(["check", "c.yaml"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sandflow: error: c.yaml: execution_job_configs[0].extra_configs.{place}: '")
    assert "carries credentials" in err and err.count("\n") == 1
    assert PASSWORD not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


@pytest.mark.parametrize("variable", ["AWS_SECRET_ACCESS_KEY", "GOOGLE_API_KEY", "GITHUB_TOKEN", "HF_TOKEN"])
def test_header_env_and_api_key_env_may_not_name_other_services_credentials(
    tmp_path: Path, keys: None, variable: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv(variable, SECRET)
    with pytest.raises(ValueError, match=f"extra_configs.header_env.X-Org: {variable} is another service's credential"):
        run_infer(tmp_path, "https://api.example.com/v1", header_env={"X-Org": variable})
    with pytest.raises(ValueError, match=f"extra_configs.api_key_env: {variable} is another service's credential"):
        run_infer(tmp_path, "https://api.example.com/v1", api_key_env=variable)


# ---- end to end: nothing secret lands under work_dir or in a log --------------------------------------------------


@pytest.mark.slow
def test_a_failed_api_job_leaves_no_secret_in_its_log_or_work_dir(tmp_path: Path):
    """Snakemake runs a job whose endpoint ($OPENAI_BASE_URL) carries a password: it fails, and neither the
    password nor the key is in the job log, anywhere under work_dir, or in Snakemake's output."""
    job = {
        "hook": "InferModelHook",
        "meta_name": "infer",
        "extra_configs": {
            "type": "api",
            "model": "m",
            "dataset_path": str(DATA),
            "export_path": "./out/",
            "api_key_env": "SANDFLOW_TEST_KEY",
            "func_kwargs": {"query_key": "question"},
            "max_retry_num": 1,
            "retry_delay": 0.01,
        },
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"work_dir": "./work", "execution_job_configs": [job]}))
    env = {"SANDFLOW_TEST_KEY": SECRET, "OPENAI_BASE_URL": f"http://user:{PASSWORD}@127.0.0.1:9/v1"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        result = snakemake(tmp_path, "c.yaml", check=False)
    assert result.returncode != 0
    assert files_containing(tmp_path, PASSWORD, SECRET) == []
    assert PASSWORD not in result.stdout + result.stderr and SECRET not in result.stdout + result.stderr
    logs = list((tmp_path / "work").rglob("*.log"))
    assert any("carries credentials (user:password@)" in log.read_text() for log in logs), result.stderr[-3000:]


# ---- a config is data: YTE templates are refused before Snakemake evaluates them -----------------------------------

YTE_CONFIG = """\
__use_yte__: true
work_dir: ?__import__("pathlib").Path("pwned-yte").write_text("ran") and "./work"
execution_job_configs:
  - hook: DataPoolManipulationHook
    meta_name: duplicate
    extra_configs: {type: data_pool_duplication, dataset_path: data.jsonl, duplicating_times: [2], export_path: ./p/}
"""
YTE_REFUSAL = (
    "__use_yte__: Snakemake runs the Python expressions of a config with this key (a YTE template) when it reads "
    "--configfile; a sandbox config is plain YAML (`variables:` substitutes values): remove the key"
)


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "yte.yaml"],
        ["run", "yte.yaml", "-n"],
        ["run", "ok.yaml", "-n", "--configfile", "other.yaml", "yte.yaml"],
    ],
)
def test_sandflow_refuses_a_yte_config_before_snakemake_evaluates_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, argv: list[str]
):
    monkeypatch.chdir(tmp_path)
    Path("yte.yaml").write_text(YTE_CONFIG)
    plain = YTE_CONFIG.replace("__use_yte__: true\n", "").replace(YTE_CONFIG.splitlines()[1], "work_dir: ./work")
    Path("ok.yaml").write_text(plain)
    Path("other.yaml").write_text("work_dir: ./work\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err == f"sandflow: error: yte.yaml: {YTE_REFUSAL}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "something was created"
    import yte  # what Snakemake would have done with it: evaluating creates the canary

    assert yte.process_yaml(YTE_CONFIG, require_use_yte=True)["work_dir"] == "./work"
    assert (tmp_path / "pwned-yte").read_text() == "ran"


@pytest.mark.slow
def test_snakemake_itself_stops_a_yte_config_with_the_same_line(tmp_path: Path):
    """`snakemake --configfile` evaluates the template first (the canary shows it: README says so), then the
    Snakefile refuses the config: exit 2, one line, no job run."""
    (tmp_path / "yte.yaml").write_text(YTE_CONFIG)
    result = snakemake(tmp_path, "yte.yaml", check=False)
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1] == f"sandflow: error: yte.yaml: {YTE_REFUSAL}"
    assert (tmp_path / "pwned-yte").read_text() == "ran"
    assert not (tmp_path / "work").exists()
