"""`lamforge serve`: a trained LAM behind an OpenAI-compatible /v1/chat/completions endpoint.

Any agent framework that speaks the OpenAI chat API (UFO, or lamforge's own OpenAIBackend) can then use the LAM.
It binds 127.0.0.1 unless told otherwise, can require an API key (Bearer token), and answers every bad request
with a 4xx JSON error and keeps serving: malformed JSON (400), a request that fails validation (422), a body over
the size limit (413), no Content-Length (411), a wrong or missing key (401), an unknown path (404).

Decoding is greedy (temperature is accepted and ignored: a LAM's action should not depend on a coin). A request
whose prompt is lamforge's own (its system prompt, with a control list) is decoded exactly as the in-process agent
decodes it: guided, choosing the control among the labels the prompt lists. Any other prompt is decoded freely, and
a reply that starts with '{' ends where that JSON object closes, so a LAM answers with exactly one action.

Written on the standard library's ThreadingHTTPServer: one endpoint, one model, requests served one at a time by
the model (it has one KV cache), so a web framework would add dependencies without adding anything.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from jinja2 import TemplateError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lamforge.agent.backends import BackendError, HFBackend
from lamforge.schema import SYSTEM_PROMPT, Observation, parse_controls, prompt_task


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    """Interface to bind; anything but loopback exposes the model to the network."""
    port: int = 8000
    """TCP port; 0 picks a free one."""
    api_key: str | None = None
    """If set, every request must carry `Authorization: Bearer <api_key>`."""
    model_name: str = "lamforge"
    """The model id reported in responses and by GET /v1/models."""
    max_body_bytes: int = 1 << 20
    """Largest accepted request body; a LAM prompt is a few kB."""
    max_tokens_limit: int = 512
    """Upper bound on a request's max_tokens."""
    read_timeout_s: float = 30.0
    """Seconds a client may take to send its request before the connection is dropped."""
    decoding: str = "auto"
    """'auto': guided decoding for lamforge prompts, free for anything else; 'free': always free."""


# Bytes of an over-limit or unauthorised body read and thrown away so the client can read our error reply; a body
# larger than this gets its connection closed unread.
DRAIN_LIMIT = 64 << 20


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str = Field(pattern="^(system|user|assistant|developer|tool)$")
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):  # content parts: a text-only LAM reads the text parts
            return "".join(part.get("text", "") for part in self.content if part.get("type") == "text")
        return self.content or ""


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # unknown OpenAI fields (top_p, seed, ...) are accepted and ignored
    model: str | None = None
    messages: list[_Message] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    n: int = Field(default=1, ge=1, le=1)


def lamforge_observation(messages: list[dict[str, str]]) -> Observation | None:
    """The controls of a prompt rendered by lamforge.schema.render_prompt (a repair conversation included), read
    back from its text; None for any other prompt."""
    if not messages or messages[0]["role"] != "system" or messages[0]["content"] != SYSTEM_PROMPT:
        return None
    for message in messages[1:]:
        if message["role"] == "user":
            controls = parse_controls(message["content"])
            return Observation(controls=controls) if controls else None
    return None


class HTTPProblem(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


def completion_payload(request_id: str, model: str, text: str, prompt_tokens: int, completion_tokens: int,
                       finish_reason: str) -> dict:
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


class LAMServer:
    """The HTTP server around one HFBackend (or anything with its `complete` method)."""

    def __init__(self, backend: HFBackend, config: ServeConfig | None = None):
        self.backend = backend
        self.config = config or ServeConfig()
        self.httpd = ThreadingHTTPServer((self.config.host, self.config.port), self._handler_class())
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        host = self.config.host if self.config.host not in ("0.0.0.0", "::") else "127.0.0.1"
        return f"http://{host}:{self.port}/v1"

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def start(self) -> "LAMServer":
        """Serve in a background thread (tests, notebooks)."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- requests ---------------------------------------------------------------------------------------------

    def handle_chat(self, body: bytes) -> tuple[dict, bool]:
        """The completion payload for a request body, and whether the client asked for a stream."""
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise HTTPProblem(400, f"the body is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise HTTPProblem(400, "the body must be a JSON object")
        try:
            request = ChatRequest.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors())
            raise HTTPProblem(422, problems) from exc
        max_tokens = min(request.max_completion_tokens or request.max_tokens or self.config.max_tokens_limit,
                         self.config.max_tokens_limit)
        stop = [request.stop] if isinstance(request.stop, str) else (request.stop or [])
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in request.messages]
        try:
            obs = lamforge_observation(messages) if self.config.decoding == "auto" else None
            if obs is not None:
                reply = self.backend.decide(messages, obs, prompt_task(messages), [])
                text, prompt_tokens, completion_tokens, reason = reply.text, reply.prompt_tokens, reply.tokens_generated, "stop"
            else:
                text, prompt_tokens, completion_tokens, reason = self.backend.complete(messages, max_tokens, stop)
        except BackendError as exc:  # e.g. a prompt longer than the model's context
            raise HTTPProblem(400, str(exc)) from exc
        except TemplateError as exc:  # the model's chat template rejects this conversation (roles, order)
            raise HTTPProblem(400, f"the model's chat template rejects this conversation: {exc}") from exc
        payload = completion_payload(f"chatcmpl-{uuid.uuid4().hex[:24]}", self.config.model_name, text,
                                     prompt_tokens, completion_tokens, reason)
        return payload, request.stream

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = server.config.read_timeout_s  # a client that stalls cannot hold a thread forever

            def log_message(self, fmt, *args):  # one short line per request, no tracebacks
                pass

            def _send_json(self, status: int, payload: dict) -> None:
                raw = json.dumps(payload, ensure_ascii=False).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                if status >= 400:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(raw)

            def _send_stream(self, payload: dict) -> None:
                # Streaming clients get the whole reply as one chunk: the answer is one short JSON action anyway.
                choice = payload["choices"][0]
                chunks = [
                    {"delta": {"role": "assistant", "content": choice["message"]["content"]}, "finish_reason": None},
                    {"delta": {}, "finish_reason": choice["finish_reason"]},
                ]
                lines = []
                for chunk in chunks:
                    event = {"id": payload["id"], "object": "chat.completion.chunk", "created": payload["created"],
                             "model": payload["model"], "choices": [{"index": 0, **chunk}]}
                    lines.append(f"data: {json.dumps(event, ensure_ascii=False)}\n\n")
                lines.append("data: [DONE]\n\n")
                raw = "".join(lines).encode("utf-8")
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _discard_body(self) -> None:
                """Read an unread body before answering an error: closing on unread data makes the kernel reset the
                connection, and the client would see a broken pipe instead of our 4xx."""
                if self._body_read:
                    return
                self._body_read = True
                try:
                    left = min(int(self.headers.get("Content-Length") or 0), DRAIN_LIMIT)
                    while left > 0:
                        chunk = self.rfile.read(min(left, 1 << 16))
                        if not chunk:
                            break
                        left -= len(chunk)
                except (OSError, ValueError):
                    pass

            def _error(self, problem: HTTPProblem) -> None:
                self._discard_body()
                self._send_json(problem.status, {"error": {"message": problem.message, "type": problem.kind,
                                                           "code": problem.status}})

            def _authorize(self) -> None:
                key = server.config.api_key
                if not key:
                    return
                given = self.headers.get("Authorization", "")
                token = given[7:] if given.startswith("Bearer ") else ""
                if not hmac.compare_digest(token.encode(), key.encode()):
                    raise HTTPProblem(401, "missing or wrong API key (send Authorization: Bearer <key>)",
                                      "authentication_error")

            def _read_body(self) -> bytes:
                length = self.headers.get("Content-Length")
                if length is None:
                    raise HTTPProblem(411, "send a Content-Length header")
                try:
                    size = int(length)
                except ValueError as exc:
                    raise HTTPProblem(400, "bad Content-Length") from exc
                if size < 0:
                    raise HTTPProblem(400, "bad Content-Length")
                if size > server.config.max_body_bytes:
                    raise HTTPProblem(413, f"the body has {size} bytes; the limit is {server.config.max_body_bytes}")
                self._body_read = True
                return self.rfile.read(size)

            def _route(self, method: str) -> None:
                self._body_read = method not in ("POST", "PUT")
                path = self.path.split("?", 1)[0].rstrip("/")
                try:
                    if path == "/health" and method == "GET":
                        self._send_json(200, {"status": "ok"})
                        return
                    self._authorize()
                    if path == "/v1/models" and method == "GET":
                        self._send_json(200, {"object": "list", "data": [
                            {"id": server.config.model_name, "object": "model", "owned_by": "lamforge"}]})
                    elif path == "/v1/chat/completions" and method == "POST":
                        payload, stream = server.handle_chat(self._read_body())
                        if stream:
                            self._send_stream(payload)
                        else:
                            self._send_json(200, payload)
                    elif path in ("/v1/models", "/v1/chat/completions", "/health"):
                        raise HTTPProblem(405, f"{method} is not allowed on {path}")
                    else:
                        raise HTTPProblem(404, f"no route {path}; use POST /v1/chat/completions")
                except HTTPProblem as problem:
                    self._error(problem)
                except Exception as exc:  # a bug must cost one request, not the server
                    self._error(HTTPProblem(500, f"internal error: {type(exc).__name__}: {exc}", "server_error"))

            def do_GET(self):
                self._route("GET")

            def do_POST(self):
                self._route("POST")

            def do_PUT(self):
                self._route("PUT")

            def do_DELETE(self):
                self._route("DELETE")

        return Handler
