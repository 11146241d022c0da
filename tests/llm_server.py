"""A real OpenAI-compatible chat-completions server on 127.0.0.1 for tests (http.server in a thread).

Answers are derived from the prompt (``answer_for``), so tests know them in
advance. Failures can be injected for the next requests: HTTP errors, a hang
longer than the client's timeout, or a reply without ``choices``. Every request
is recorded (arrival time, path, headers, parsed body).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def answer_for(messages: list[dict[str, str]]) -> str:
    """The server's deterministic answer: the turns it saw, and the last user turn upper-cased."""
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
    """Start with ``start()``; ``url`` is the base URL (``.../v1``); ``stop()`` shuts it down."""

    requests: list[Recorded] = field(default_factory=list)
    # Injected behaviours for the next requests, consumed in order: ("status", code) | ("hang", s) | ("no_choices", 0).
    script: list[tuple[str, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, times: int, status: int = 500) -> None:
        self.script.extend([("status", status)] * times)

    def hang_next(self, times: int, seconds: float) -> None:
        self.script.extend([("hang", seconds)] * times)

    def reply_without_choices_next(self, times: int = 1) -> None:
        self.script.extend([("no_choices", 0)] * times)

    def start(self) -> "ChatServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

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
                    if kind == "status":
                        # Echo the Authorization header back, as some proxies do: the client must redact it.
                        self.send_json(int(value), {"error": {"message": "injected failure",
                                                              "auth": self.headers.get("Authorization")}})
                    elif kind == "no_choices":
                        self.send_json(200, {"object": "chat.completion", "choices": []})
                    elif not self.path.endswith("/chat/completions"):
                        self.send_json(404, {"error": {"message": f"no route {self.path}"}})
                    else:
                        content = answer_for(body["messages"])
                        self.send_json(200, {"object": "chat.completion", "model": body["model"],
                                             "choices": [{"index": 0, "message": {"role": "assistant",
                                                                                  "content": content}}]})
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

            def send_json(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
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
