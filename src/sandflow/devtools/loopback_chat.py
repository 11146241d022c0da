"""A small OpenAI-compatible chat-completions server on 127.0.0.1, answering with a Python function.

It stands in for a hosted model where a job of type ``api`` needs one and the
answer can be computed: the auto-prompt-optimization example's grader
(configs/apo/grader.py) and the LLM inference tests. ``POST
<url>/chat/completions`` answers ``answer(messages)``; any other path is a 404.
Every request is recorded (arrival time, path, headers, parsed body; a GET too,
answered 405), and failures can be injected for the next requests: an HTTP
status, a hang longer than the client's timeout, a reply without ``choices``,
or a redirect to another URL. An answer function
that raises gets an HTTP 400 naming the error (the client fails at once
instead of retrying a deterministic bug).

From a shell, until Ctrl-C::

    python -m sandflow.devtools.loopback_chat --port 8765 --grader configs/apo/grader.py:grade
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import ipaddress
import json
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["ChatServer", "Recorded", "answer_for", "load_answer", "main", "DEFAULT_PORT"]

HOST = "127.0.0.1"  # loopback only: nothing here is meant to be reachable from another machine
DEFAULT_PORT = 8765  # the port configs/apo/sandbox.yaml's base_url names

Messages = list[dict[str, str]]
AnswerFunction = Callable[[Messages], str]


def answer_for(messages: Messages) -> str:
    """The default answer: the number of turns seen, and the last user turn upper-cased."""
    last_user = [m["content"] for m in messages if m["role"] == "user"][-1]
    return f"{len(messages)} turn(s): {last_user.upper()}"


@dataclass
class Recorded:
    time: float
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class ChatServer:
    """Start with ``start()``; ``url`` is the base URL (``http://127.0.0.1:<port>/v1``); ``stop()`` shuts it down.

    ``port`` 0 picks a free port; ``host`` may be another loopback address (127.0.0.2, ... on Linux).
    """

    answer: AnswerFunction = answer_for
    port: int = 0
    host: str = HOST
    requests: list[Recorded] = field(default_factory=list)
    # Injected behaviours for the next requests, consumed in order:
    # ("status", code) | ("hang", s) | ("no_choices", 0) | ("redirect", (code, location)).
    script: list[tuple[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, times: int, status: int = 500) -> None:
        self.script.extend([("status", status)] * times)

    def hang_next(self, times: int, seconds: float) -> None:
        self.script.extend([("hang", seconds)] * times)

    def reply_without_choices_next(self, times: int = 1) -> None:
        self.script.extend([("no_choices", 0)] * times)

    def redirect_next(self, times: int, location: str, status: int = 302) -> None:
        self.script.extend([("redirect", (status, location))] * times)

    def start(self) -> ChatServer:
        if not ipaddress.ip_address(self.host).is_loopback:
            raise ValueError(f"host must be a loopback address (127.0.0.0/8, ::1), got {self.host!r}")
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test and terminal output clean
                pass

            def do_GET(self) -> None:  # recorded: a client that follows a redirect of a POST comes back with a GET
                with server.lock:
                    server.requests.append(Recorded(time.monotonic(), self.path, dict(self.headers), None))
                self.send_json(405, {"error": {"message": "chat completions are POSTed"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"null")
                with server.lock:
                    server.requests.append(Recorded(time.monotonic(), self.path, dict(self.headers), body))
                    action = server.script.pop(0) if server.script else ("ok", 0)
                kind, value = action
                try:
                    if kind == "hang":
                        time.sleep(value)
                    if kind == "redirect":
                        self.send_response(value[0])
                        self.send_header("Location", value[1])
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                    elif kind == "status":
                        # Echo the Authorization header back, as some proxies do: the client must redact it.
                        self.send_json(
                            int(value),
                            {"error": {"message": "injected failure", "auth": self.headers.get("Authorization")}},
                        )
                    elif kind == "no_choices":
                        self.send_json(200, {"object": "chat.completion", "choices": []})
                    elif not self.path.endswith("/chat/completions"):
                        self.send_json(404, {"error": {"message": f"no route {self.path}"}})
                    else:
                        self.send_answer(body)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

            def send_answer(self, body: Any) -> None:
                try:
                    content = server.answer(body["messages"])
                except Exception as exc:  # a bug in the answer function: say so, do not hang up
                    traceback.print_exc(file=sys.stderr)
                    self.send_json(400, {"error": {"message": f"answer function failed: {type(exc).__name__}: {exc}"}})
                    return
                self.send_json(
                    200,
                    {
                        "object": "chat.completion",
                        "model": body.get("model"),
                        "choices": [
                            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
                        ],
                    },
                )

            def send_json(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer((self.host, self.port), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False  # do not wait for a handler still sleeping in a hang
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def load_answer(spec: str) -> AnswerFunction:
    """The function ``spec`` names: ``path/to/file.py:function`` or ``package.module:function``."""
    source, sep, name = spec.rpartition(":")
    if not sep or not source or not name:
        raise ValueError(f"--grader must look like 'path/to/file.py:function' or 'module:function', got {spec!r}")
    if source.endswith(".py"):
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"--grader: no such file: {source}")
        module_spec = importlib.util.spec_from_file_location(f"_loopback_answer_{path.stem}", path)
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_spec.name] = module  # as an import would: dataclasses and pickling look modules up there
        module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(source)
    function = getattr(module, name, None)
    if not callable(function):
        raise ValueError(f"--grader: {source} has no function {name!r}")
    return function


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m sandflow.devtools.loopback_chat",
        description="Serve an OpenAI-compatible chat-completions endpoint on "
        f"{HOST} whose answers come from a Python function.",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT})")
    parser.add_argument(
        "--grader",
        metavar="FILE.py:FUNCTION",
        help="the answer function, messages -> str (default: echo the last user turn upper-cased)",
    )
    args = parser.parse_args(argv)
    try:
        answer = load_answer(args.grader) if args.grader else answer_for
    except ValueError as exc:
        parser.error(str(exc))
    try:
        server = ChatServer(answer=answer, port=args.port).start()
    except OSError as exc:
        parser.exit(2, f"{parser.prog}: cannot listen on {HOST}:{args.port}: {exc.strerror or exc}\n")
    print(f"serving {server.url} (chat completions at {server.url}/chat/completions); Ctrl-C to stop", flush=True)
    try:
        while server.thread.is_alive():
            server.thread.join(
                timeout=0.5
            )  # a timed wait returns to the interpreter, which raises Ctrl-C's KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
