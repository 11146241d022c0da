"""A real chat-completions server on loopback, for hooks that call a model API."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from sandflow.devtools.loopback_chat import ChatServer


@contextlib.contextmanager
def chat_server(answer: Callable[[list[dict[str, str]]], str]) -> Iterator[ChatServer]:
    """sandflow.devtools.loopback_chat serving ``answer`` on a free port of 127.0.0.1 while the block runs."""
    server = ChatServer(answer=answer).start()
    try:
        yield server
    finally:
        server.stop()
