"""A small client for any OpenAI-compatible chat endpoint (vLLM, llama.cpp server, Ollama, OpenAI, `lamforge serve`).

Every LLM role in lamforge (demonstrator, evolver, judge, HTTP agent backend) talks to its model through
`LLMClient.chat`. It is configured by arguments or by the environment:

- LAMFORGE_LLM_URL: the base URL, e.g. http://127.0.0.1:8000/v1 (a URL ending in /chat/completions also works)
- LAMFORGE_LLM_MODEL: the model name the server expects; if unset, the first model of GET /models is used
- LAMFORGE_LLM_KEY: an API key, sent as a Bearer token

It is written on the standard library (urllib) rather than the `openai` package: one POST with JSON in and out is
all it needs, and every role then works in an environment that has nothing else installed.
"""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

ENV_URL = "LAMFORGE_LLM_URL"
ENV_MODEL = "LAMFORGE_LLM_MODEL"
ENV_KEY = "LAMFORGE_LLM_KEY"

# Status codes worth a second try: rate limits and server-side failures. A 4xx other than 408/429 is our fault
# (bad key, bad model name, bad request), so retrying it only wastes time.
RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class LLMError(RuntimeError):
    """An LLM call that failed for a reason the caller should report, not crash on. The message says what to fix."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class LLMNotConfigured(LLMError):
    pass


class ChatResult(BaseModel):
    text: str
    model: str = ""
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0


@dataclass
class LLMConfig:
    url: str | None = None
    """Base URL of the endpoint; falls back to $LAMFORGE_LLM_URL."""
    model: str | None = None
    """Model name; falls back to $LAMFORGE_LLM_MODEL, then to the first model the server lists."""
    api_key: str | None = field(default=None, repr=False)
    """API key (Bearer token); falls back to $LAMFORGE_LLM_KEY."""
    timeout_s: float = 120.0
    """Seconds to wait for one HTTP response; a 7B model on a busy server can need a while."""
    max_retries: int = 2
    """Extra attempts after a connection error, a timeout, 429 or 5xx, with exponential back-off."""
    backoff_s: float = 1.0
    """The first back-off; doubled after each failed attempt."""


def configured() -> bool:
    """Whether an endpoint is configured in the environment, so roles can choose between HTTP and their offline default."""
    return bool(os.environ.get(ENV_URL))


def normalize_base_url(url: str) -> str:
    """'host:port', 'http://h:p', 'http://h:p/v1' or 'http://h:p/v1/chat/completions' -> 'http://h:p/v1'."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    for suffix in ("/chat/completions", "/completions", "/models"):
        if url.endswith(suffix):
            url = url[: -len(suffix)]
    if not url.rstrip("/").endswith("/v1") and url.count("/") == 2:
        url += "/v1"  # a bare host:port: every server we target mounts the API under /v1
    return url


class LLMClient:
    """Chat completions against one OpenAI-compatible endpoint."""

    def __init__(self, url: str | None = None, model: str | None = None, api_key: str | None = None,
                 timeout_s: float | None = None, max_retries: int | None = None, config: LLMConfig | None = None):
        config = config or LLMConfig()
        url = url or config.url or os.environ.get(ENV_URL)
        if not url:
            raise LLMNotConfigured(
                f"no LLM endpoint configured: pass a URL or set {ENV_URL} (e.g. http://127.0.0.1:8000/v1 for "
                "`lamforge serve`, vLLM or llama.cpp, http://127.0.0.1:11434/v1 for Ollama)"
            )
        self.base_url = normalize_base_url(url)
        self.model = model or config.model or os.environ.get(ENV_MODEL) or None
        self.api_key = api_key or config.api_key or os.environ.get(ENV_KEY) or None
        self.timeout_s = timeout_s if timeout_s is not None else config.timeout_s
        self.max_retries = max_retries if max_retries is not None else config.max_retries
        self.backoff_s = config.backoff_s

    @classmethod
    def from_env(cls, **overrides: Any) -> "LLMClient":
        return cls(**overrides)

    def __repr__(self) -> str:
        return f"LLMClient({self.base_url!r}, model={self.model!r})"

    # -- requests ---------------------------------------------------------------------------------------------

    def _request(self, method: str, path: str, body: dict | None = None) -> dict:
        url = f"{self.base_url}{path}"
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        attempts = self.max_retries + 1
        delay = self.backoff_s
        for attempt in range(1, attempts + 1):
            retryable: LLMError
            try:
                request = urllib.request.Request(url, data=data, headers=headers, method=method)
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    raw = response.read()
                try:
                    return json.loads(raw)
                except json.JSONDecodeError as exc:
                    raise LLMError(f"{url} answered with something that is not JSON: {raw[:200]!r}") from exc
            except urllib.error.HTTPError as exc:
                detail = _error_detail(exc)
                if exc.code in (401, 403):
                    raise LLMError(f"{url} rejected the request ({exc.code}: {detail}); check {ENV_KEY}", exc.code) from exc
                if exc.code == 404:
                    raise LLMError(
                        f"{url} not found (404: {detail}); check {ENV_URL} (it should end in /v1) and {ENV_MODEL}",
                        exc.code,
                    ) from exc
                if exc.code not in RETRY_STATUS:
                    raise LLMError(f"{url} refused the request ({exc.code}: {detail})", exc.code) from exc
                retryable = LLMError(f"{url} failed with {exc.code}: {detail}", exc.code)
            except (urllib.error.URLError, ConnectionError, socket.timeout, TimeoutError) as exc:
                reason = getattr(exc, "reason", exc)
                if isinstance(reason, (socket.timeout, TimeoutError)) or isinstance(exc, (socket.timeout, TimeoutError)):
                    retryable = LLMError(f"{url} did not answer within {self.timeout_s:g} s")
                else:
                    retryable = LLMError(f"cannot reach the LLM endpoint {url}: {reason}; is the server running "
                                         f"and {ENV_URL} right?")
            if attempt == attempts:
                raise retryable
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def models(self) -> list[str]:
        """The model ids the server lists (GET /models)."""
        data = self._request("GET", "/models")
        return [m.get("id", "") for m in data.get("data", []) if isinstance(m, dict)]

    def resolve_model(self) -> str:
        """The configured model name, or the server's first listed model (servers of one model need no name)."""
        if self.model:
            return self.model
        names = [n for n in self.models() if n]
        if not names:
            raise LLMError(f"{self.base_url}/models lists no model; set {ENV_MODEL}")
        self.model = names[0]
        return self.model

    def chat(self, messages: list[dict[str, str]], *, max_tokens: int | None = None, temperature: float = 0.0,
             stop: list[str] | None = None, **extra: Any) -> ChatResult:
        """One chat completion. Raises LLMError (never a raw urllib error) when it cannot get an answer."""
        body: dict[str, Any] = {"model": self.resolve_model(), "messages": messages, "temperature": temperature}
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if stop:
            body["stop"] = stop
        body.update(extra)
        start = time.perf_counter()
        data = self._request("POST", "/chat/completions", body)
        latency = time.perf_counter() - start
        try:
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            error = data.get("error") if isinstance(data, dict) else None
            raise LLMError(f"{self.base_url} returned no completion: {error or str(data)[:200]}") from exc
        usage = data.get("usage") or {}
        return ChatResult(
            text=text,
            model=str(data.get("model") or body["model"]),
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            latency_s=latency,
        )


def _error_detail(exc: urllib.error.HTTPError) -> str:
    """The server's own error message, from OpenAI's {"error": {"message": ...}} shape or the raw body."""
    try:
        raw = exc.read()
    except Exception:
        return exc.reason or ""
    try:
        data = json.loads(raw)
        error = data.get("error", data)
        if isinstance(error, dict):
            return str(error.get("message") or error)[:300]
        return str(error)[:300]
    except (json.JSONDecodeError, AttributeError):
        return raw[:300].decode("utf-8", "replace") or (exc.reason or "")
