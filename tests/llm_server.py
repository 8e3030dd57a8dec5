"""A scripted OpenAI-compatible chat server for tests: real HTTP on 127.0.0.1, a free port, recorded requests.

Only for what a real server cannot do: answer with a scripted reply (a test that needs an exact action or plan),
fail on cue (429, 5xx, a refused field), answer late (timeouts), and record what the client sent (headers, the
request body, how many attempts). Everything a real server can show (chat, model listing, a wrong key or path,
guided decoding) is tested against llama.cpp's server in test_llamacpp_server.py.

    with ScriptedLLMServer(["first reply", "second reply"]) as server:
        client = LLMClient(server.url)
        ...
        assert server.requests[0].body["messages"][0]["role"] == "system"

Replies are consumed in order (the last one repeats). A reply may be a string (the assistant content), a
`Fail(status, message)` to answer with an HTTP error, or a callable taking the request body and returning either.
Use the `llm_server` fixture (import it into a test module) for a server that is shut down after the test.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import pytest


class _QuietServer(ThreadingHTTPServer):
    """A client that hung up (the timeout tests do it on purpose) leaves a reply thread writing to a closed socket,
    possibly after its test ended; socketserver would print that traceback on whatever stderr a later test captures."""

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@dataclass
class Fail:
    status: int
    message: str = "scripted failure"
    retry_after_ms: int | None = None  # sent as Retry-After-Ms, which the openai SDK's back-off honours


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: Any


Reply = str | Fail | Callable[[dict], "str | Fail"]


@dataclass
class ScriptedLLMServer:
    replies: list[Reply] = field(default_factory=lambda: ["{}"])
    api_key: str | None = None
    model: str = "scripted-model"
    delay_s: float = 0.0
    requests: list[RecordedRequest] = field(default_factory=list)

    def __post_init__(self):
        self._lock = threading.Lock()
        self._next = 0
        self._httpd: ThreadingHTTPServer | None = None

    # -- lifecycle --------------------------------------------------------------------------------------------

    def start(self) -> "ScriptedLLMServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, status: int, payload: dict, headers: dict[str, str] | None = None):
                raw = json.dumps(payload).encode()
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _authorized(self) -> bool:
                if server.api_key and self.headers.get("Authorization") != f"Bearer {server.api_key}":
                    self._send(401, {"error": {"message": "bad api key", "type": "invalid_request_error"}})
                    return False
                return True

            def do_GET(self):
                server._record(self, None)
                if not self._authorized():
                    return
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": server.model, "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    body = raw.decode("utf-8", "replace")
                server._record(self, body)
                if not self._authorized():
                    return
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                if server.delay_s:
                    time.sleep(server.delay_s)
                reply = server._take()
                if callable(reply):
                    reply = reply(body)
                if isinstance(reply, Fail):
                    wait = {} if reply.retry_after_ms is None else {"Retry-After-Ms": str(reply.retry_after_ms)}
                    self._send(reply.status, {"error": {"message": reply.message}}, wait)
                    return
                self._send(200, {
                    "id": f"chatcmpl-{len(server.requests)}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": server.model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": reply},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 11, "completion_tokens": len(reply.split()),
                              "total_tokens": 11 + len(reply.split())},
                })

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "ScriptedLLMServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- script -----------------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST"]

    def _take(self) -> Reply:
        with self._lock:
            reply = self.replies[min(self._next, len(self.replies) - 1)]
            self._next += 1
            return reply

    def _record(self, handler: BaseHTTPRequestHandler, body: Any) -> None:
        with self._lock:
            # Header names are case-insensitive (httpx sends them in lower case): recorded in lower case.
            headers = {name.lower(): value for name, value in handler.headers.items()}
            self.requests.append(RecordedRequest(handler.command, handler.path, headers, body))


@pytest.fixture
def llm_server():
    """A factory: `server = llm_server(["reply", ...], api_key=...)`; every server it made is stopped afterwards."""
    made: list[ScriptedLLMServer] = []

    def make(replies: list[Reply] | None = None, **kwargs) -> ScriptedLLMServer:
        server = ScriptedLLMServer(replies=list(replies or ["{}"]), **kwargs).start()
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop()
