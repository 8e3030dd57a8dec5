"""`lamforge serve`: a trained LAM behind an OpenAI-compatible /v1/chat/completions endpoint, on FastAPI + uvicorn.

Any agent framework that speaks the OpenAI chat API (UFO, the `openai` SDK, lamforge's own OpenAIBackend) can then
use the LAM. It binds 127.0.0.1 unless told otherwise, can require an API key (Bearer token), and answers every
bad request with a 4xx JSON error in OpenAI's shape and keeps serving: malformed or too deeply nested JSON and a
body that is not an object (400), a request that fails validation, content parts included (422), a body over the
size limit (413), no Content-Length (411), a wrong or missing key (401), an unknown path (404) or method (405).
Bound to loopback, it answers only requests whose Host header names loopback (400 otherwise): a web page can make
the browser resolve its own name to 127.0.0.1 (DNS rebinding) and then read the replies as same-origin.

Decoding is greedy (temperature is accepted and ignored: a LAM's action should not depend on a coin). A request
that carries the structured observation (`lamforge_observation`, which lamforge's OpenAIBackend sends to this
server) is decoded exactly as the in-process agent decodes it: guided, the control chosen among the live ones, a
`select_text` span among the document's. A request whose prompt is lamforge's own (its system prompt, with a
control list) but carries no observation is guided over the controls read back from the prompt (no document to
ground spans in). Any other prompt is decoded freely, and a reply that starts with '{' ends where that JSON object
closes, so a LAM answers with exactly one action. A request's max_tokens and stop end every reply, a guided one
included (it is cut once written, finish_reason "length" or "stop"). GET /v1/models says how the model was
trained (`lamforge`: max_controls, prompt_version), so a client shows it the prompt it learned on.

The model has one KV cache, so requests reach it one at a time (an asyncio lock, the model running in a worker
thread); uvicorn keeps accepting and queueing meanwhile (listen backlog 2048). A client that goes away while its
request waits is skipped when its turn comes; one whose request is already running costs that request.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import socket
import threading
import time
import ipaddress
import uuid
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from jinja2 import TemplateError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from lamforge.agent.backends import HISTORY_FIELD, OBSERVATION_FIELD, SERVED_CARD, BackendError
from lamforge.agent.hf_backend import HFBackend
from lamforge.models.checkpoints import trained_prompt_version
from lamforge.prompt import SYSTEM_PROMPT, parse_controls, prompt_task
from lamforge.schema import HistoryItem, Observation


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
    decoding: str = "auto"
    """'auto': guided decoding for lamforge prompts, free for anything else; 'free': always free."""
    backlog: int = 2048
    """Connections the kernel queues before the server accepts them (the standard library's server had 5, and
    resets came at 50 concurrent clients)."""


def is_loopback(host: str | None) -> bool:
    """localhost, or a loopback address (127.0.0.0/8, ::1)."""
    if host is None:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_header_name(value: str) -> str | None:
    """The host of a Host header, without its port: "[::1]:8000" -> "::1" (None when it cannot be read).

    Written here rather than with starlette's TrustedHostMiddleware, which cuts the header at its first colon and
    so cannot tell IPv6 addresses apart."""
    try:
        return urlsplit("//" + value).hostname
    except ValueError:
        return None


class LoopbackHostOnly:
    """ASGI middleware: a request whose Host header does not name loopback gets `refuse`'s reply (see the module's
    docstring: DNS rebinding). A plain ASGI class, not `@app.middleware("http")`: starlette's BaseHTTPMiddleware
    hides a client's disconnect from the endpoint, and the server skips queued requests whose clients left."""

    def __init__(self, app, refuse):
        self.app, self.refuse = app, refuse

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            if not is_loopback(host_header_name(host)):
                if scope["type"] == "websocket":  # no such routes; closed before the handshake, the server says 403
                    await send({"type": "websocket.close", "code": 1008})
                    return
                response = await self.refuse(Request(scope, receive))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


# Bytes of an over-limit or unauthorised body read and thrown away so the client can read the error reply; a body
# larger than this gets its connection closed unread.
DRAIN_LIMIT = 64 << 20


class _ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None  # a text part's text; other parts (images) have none, and a text-only LAM skips them


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[_ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text or "" for part in self.content if part.type == "text")
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
    observation: Observation | None = Field(default=None, alias=OBSERVATION_FIELD)
    """The observation the prompt was rendered from, sent by lamforge's own client (OpenAIBackend)."""
    history: list[HistoryItem] | None = Field(default=None, alias=HISTORY_FIELD)
    """The episode's steps so far, sent with the observation: the decoding rules that read the history
    (agent/decoding_rules.py) hold only when it is known."""


def lamforge_observation(messages: list[dict[str, str]]) -> Observation | None:
    """The controls of a prompt rendered by lamforge.prompt.render_prompt (a repair conversation included), read
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


def stream_body(payload: dict) -> bytes:
    """Server-sent events of a finished completion: the whole reply as one chunk (one short JSON action)."""
    choice = payload["choices"][0]
    chunks = [{"delta": {"role": "assistant", "content": choice["message"]["content"]}, "finish_reason": None},
              {"delta": {}, "finish_reason": choice["finish_reason"]}]
    events = [{"id": payload["id"], "object": "chat.completion.chunk", "created": payload["created"],
               "model": payload["model"], "choices": [{"index": 0, **chunk}]} for chunk in chunks]
    return "".join([*(f"data: {json.dumps(e, ensure_ascii=False)}\n\n" for e in events), "data: [DONE]\n\n"]).encode()


def parse_body(body: bytes) -> ChatRequest:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:  # ValueError: a syntax error, or an integer past 4300 digits
        raise HTTPProblem(400, f"the body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise HTTPProblem(400, "the body's JSON is nested too deeply") from exc
    if not isinstance(data, dict):
        raise HTTPProblem(400, "the body must be a JSON object")
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:  # JSON allows "\ud800"; no tokenizer takes half a character
        raise HTTPProblem(400, f"the body holds text that is not valid Unicode ({exc.reason})") from exc
    except RecursionError as exc:
        raise HTTPProblem(400, "the body's JSON is nested too deeply") from exc
    try:
        return ChatRequest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors())
        raise HTTPProblem(422, problems) from exc
    except RecursionError as exc:
        raise HTTPProblem(400, "the body's JSON is nested too deeply") from exc


class LAMServer:
    """The HTTP server around one HFBackend (or anything with its `decide` and `complete` methods)."""

    def __init__(self, backend: HFBackend, config: ServeConfig | None = None):
        import uvicorn

        self.backend = backend
        self.config = config or ServeConfig()
        # How the model was trained, for clients to render the prompt it learned on (SERVED_CARD).
        model_config = getattr(backend, "config", None)
        self.card = {"max_controls": int(getattr(backend, "max_controls", 0) or 0),
                     "prompt_version": trained_prompt_version(str(getattr(model_config, "model", "")))}
        self.started = int(time.time())
        self.app = self._app()
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        # The socket is bound here, so a port in use is an OSError now and port 0 has its number at once.
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.socket.bind((self.config.host, self.config.port))
            self.socket.listen(self.config.backlog)
        except OSError:
            self.socket.close()
            raise
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", access_log=False,
                                                    backlog=self.config.backlog, timeout_graceful_shutdown=2))
        self._thread: threading.Thread | None = None
        self._model_lock: asyncio.Lock | None = None

    @property
    def port(self) -> int:
        return self.socket.getsockname()[1]

    @property
    def url(self) -> str:
        host = self.config.host if self.config.host not in ("0.0.0.0", "::") else "127.0.0.1"
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.port}/v1"

    def serve_forever(self) -> None:
        self.server.run(sockets=[self.socket])

    def start(self) -> "LAMServer":
        """Serve in a background thread (tests, notebooks); returns once the server accepts requests."""
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if not self._thread.is_alive() or time.time() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self.socket.close()

    # -- requests ---------------------------------------------------------------------------------------------

    def complete(self, request: ChatRequest) -> dict:
        """The completion payload for a valid request (runs the model; one request at a time)."""
        max_tokens = min(request.max_completion_tokens or request.max_tokens or self.config.max_tokens_limit,
                         self.config.max_tokens_limit)
        stop = [request.stop] if isinstance(request.stop, str) else (request.stop or [])
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()}
                    for m in request.messages]
        try:
            obs = None
            if self.config.decoding == "auto":
                try:
                    obs = request.observation or lamforge_observation(messages)
                except (ValueError, SyntaxError) as exc:  # a controls line quoted wrongly: the client's text
                    raise HTTPProblem(400, f"the prompt has lamforge's system prompt, but its controls cannot be "
                                           f"read: {exc}") from exc
            if obs is not None:
                reply = self.backend.decide(messages, obs, prompt_task(messages), request.history)
                text, completion_tokens, reason = self._cut(reply.text, max_tokens, stop)
                prompt_tokens = reply.prompt_tokens
            else:
                text, prompt_tokens, completion_tokens, reason = self.backend.complete(messages, max_tokens, stop)
        except BackendError as exc:  # e.g. a prompt longer than the model's context
            raise HTTPProblem(400, str(exc)) from exc
        except TemplateError as exc:  # the model's chat template rejects this conversation (roles, order)
            raise HTTPProblem(400, f"the model's chat template rejects this conversation: {exc}") from exc
        return completion_payload(f"chatcmpl-{uuid.uuid4().hex[:24]}", self.config.model_name, text,
                                  prompt_tokens, completion_tokens, reason)

    def _cut(self, text: str, max_tokens: int, stop: list[str]) -> tuple[str, int, str]:
        """A guided reply under the request's stop strings and max_tokens, as free decoding would end it: cut before
        the first stop string ("stop"), or after max_tokens tokens ("length"). Guided decoding writes the whole
        action at once, so the cut comes after it; a client that asks for fewer tokens gets the truncated text, as
        from any OpenAI-compatible server. Returns (text, completion tokens, finish_reason)."""
        cuts = [i for i in (text.find(s) for s in stop if s) if i >= 0]
        reason = "stop"
        if cuts:
            text = text[: min(cuts)]
        ids = self.backend.encode(text)
        if len(ids) > max_tokens:
            ids, reason = ids[:max_tokens], "length"
            text = self.backend.tokenizer.decode(ids)
        return text, len(ids), reason

    def _authorize(self, authorization: str | None) -> None:
        key = self.config.api_key
        if not key:
            return
        given = authorization or ""
        token = given[7:] if given.startswith("Bearer ") else ""
        if not hmac.compare_digest(token.encode(), key.encode()):
            raise HTTPProblem(401, "missing or wrong API key (send Authorization: Bearer <key>)",
                              "authentication_error")

    async def _read_body(self, request: Request) -> bytes:
        # JSON only: a web page may send a cross-origin "simple" POST (text/plain, form data) to a server on
        # 127.0.0.1 without the browser asking first, and make it run the model; application/json needs a preflight,
        # which this server never answers.
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise HTTPProblem(415, f"send the body as Content-Type: application/json (got {kind or 'none'})")
        length = request.headers.get("content-length")
        if length is None:
            raise HTTPProblem(411, "send a Content-Length header")
        if not length.isdigit():
            raise HTTPProblem(400, "bad Content-Length")
        if int(length) > self.config.max_body_bytes:
            raise HTTPProblem(413, f"the body has {length} bytes; the limit is {self.config.max_body_bytes}")
        return await request.body()

    def _app(self) -> FastAPI:
        app = FastAPI(title="lamforge", docs_url=None, redoc_url=None, openapi_url=None)

        async def drain(request: Request) -> None:
            """Read what is left of a body before answering an error: closing a connection with unread data makes
            the kernel reset it, and the client would see a reset instead of the 4xx."""
            try:
                if int(request.headers.get("content-length", "0") or 0) > DRAIN_LIMIT:
                    return
            except ValueError:  # h11 refuses such a header before the app sees it; another server might not
                return
            try:
                async for _ in request.stream():
                    pass
            except Exception:  # noqa: BLE001  consumed already, or the client left: nothing to drain
                pass

        def problem_response(problem: HTTPProblem) -> JSONResponse:
            return JSONResponse({"error": {"message": problem.message, "type": problem.kind, "code": problem.status}},
                                status_code=problem.status)

        if is_loopback(self.config.host):
            async def refuse_host(request: Request) -> Response:
                await drain(request)
                return problem_response(HTTPProblem(400, f"this server answers requests to localhost only, not to "
                                                         f"Host {request.headers.get('host', '')!r}"))

            app.add_middleware(LoopbackHostOnly, refuse=refuse_host)

        @app.exception_handler(HTTPProblem)
        async def on_problem(request: Request, problem: HTTPProblem):
            await drain(request)
            return problem_response(problem)

        @app.exception_handler(StarletteHTTPException)
        async def on_http(request: Request, exc: StarletteHTTPException):  # unknown paths and methods
            path = request.url.path.rstrip("/")
            if exc.status_code == 405:
                return problem_response(HTTPProblem(405, f"{request.method} is not allowed on {path}"))
            return problem_response(HTTPProblem(exc.status_code, f"no route {path}; use POST /v1/chat/completions"
                                                if exc.status_code == 404 else str(exc.detail)))

        @app.exception_handler(Exception)
        async def on_bug(request: Request, exc: Exception):  # a bug costs one request, not the server
            return problem_response(HTTPProblem(500, f"internal error: {type(exc).__name__}: {exc}", "server_error"))

        @app.get("/health")
        async def health():
            return {"status": "ok"}

        @app.get("/v1/models")
        async def models(request: Request):
            self._authorize(request.headers.get("authorization"))
            return {"object": "list", "data": [{"id": self.config.model_name, "object": "model",
                                                "created": self.started, "owned_by": "lamforge",
                                                SERVED_CARD: self.card}]}

        @app.post("/v1/chat/completions")
        async def chat(request: Request):
            self._authorize(request.headers.get("authorization"))
            chat_request = parse_body(await self._read_body(request))
            if self._model_lock is None:
                self._model_lock = asyncio.Lock()
            async with self._model_lock:
                # A client that left while its request waited for the model (a timeout, a closed socket) costs
                # nothing more: its turn is skipped. One already running finishes; the model cannot be stopped.
                if await request.is_disconnected():
                    return Response(status_code=499)
                payload = await run_in_threadpool(self.complete, chat_request)
            if chat_request.stream:
                return Response(stream_body(payload), headers={"content-type": "text/event-stream"})
            return payload

        return app
