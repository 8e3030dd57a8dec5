"""The one client for OpenAI-compatible chat endpoints (vLLM, llama.cpp's server, Ollama, OpenAI, `lamforge serve`).

Every LLM role in lamforge (demonstrator, evolver, judge, HTTP agent backend) talks to its model through
`LLMClient.chat`. HTTP, retries (connection errors, 408, 409, 429, 5xx, with back-off and the server's
Retry-After), timeouts and response parsing are the `openai` SDK's; this module adds lamforge's configuration and
turns the SDK's errors into an `LLMError` whose message says what to fix. It is configured by arguments or by the
environment:

- LAMFORGE_LLM_URL: the base URL, e.g. http://127.0.0.1:8000/v1 (a URL ending in /chat/completions also works)
- LAMFORGE_LLM_MODEL: the model name the server expects; if unset, the first model of GET /models is used
- LAMFORGE_LLM_KEY: an API key, sent as a Bearer token (OPENAI_API_KEY is never read: a local server should not
  receive a key meant for OpenAI)
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import openai
from pydantic import BaseModel

ENV_URL = "LAMFORGE_LLM_URL"
ENV_MODEL = "LAMFORGE_LLM_MODEL"
ENV_KEY = "LAMFORGE_LLM_KEY"


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
    """Extra attempts after a connection error, a timeout, 408, 409, 429 or 5xx (the SDK's back-off)."""


def configured() -> bool:
    """Whether an endpoint is configured in the environment, so roles can choose HTTP or their offline default."""
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
    """Chat completions against one OpenAI-compatible endpoint, through the `openai` SDK."""

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
        # The SDK insists on a key and would fall back to $OPENAI_API_KEY; without a lamforge key it gets a
        # placeholder, and each request omits the Authorization header (a keyless local server needs none).
        self._sdk = openai.OpenAI(base_url=self.base_url, api_key=self.api_key or "unused", timeout=self.timeout_s,
                                  max_retries=self.max_retries)
        self._headers = {} if self.api_key else {"extra_headers": {"Authorization": openai.Omit()}}

    @classmethod
    def from_env(cls, **overrides: Any) -> "LLMClient":
        return cls(**overrides)

    def __repr__(self) -> str:
        return f"LLMClient({self.base_url!r}, model={self.model!r})"

    def _error(self, exc: openai.OpenAIError, path: str) -> LLMError:
        """The SDK's exception as an LLMError that says what to check."""
        url = f"{self.base_url}{path}"
        if isinstance(exc, openai.APITimeoutError):
            return LLMError(f"{url} did not answer within {self.timeout_s:g} s")
        if isinstance(exc, openai.APIConnectionError):
            return LLMError(f"cannot reach the LLM endpoint {url}: {exc.__cause__ or exc}; is the server running "
                            f"and {ENV_URL} right?")
        if isinstance(exc, openai.APIStatusError):
            status, detail = exc.status_code, _error_detail(exc)
            if status in (401, 403):
                return LLMError(f"{url} rejected the request ({status}: {detail}); check {ENV_KEY}", status)
            if status == 404:
                return LLMError(f"{url} not found (404: {detail}); check {ENV_URL} (it should end in /v1) and "
                                f"{ENV_MODEL}", status)
            verb = "failed" if status >= 500 else "refused the request"
            return LLMError(f"{url} {verb} ({status}: {detail})", status)
        if isinstance(exc, openai.APIResponseValidationError):
            return LLMError(f"{url} answered with something that is not an OpenAI response: {exc}")
        return LLMError(f"{url}: {exc}")

    def models(self) -> list[str]:
        """The model ids the server lists (GET /models)."""
        return [entry["id"] for entry in self.model_entries() if entry.get("id")]

    def model_entries(self) -> list[dict[str, Any]]:
        """The server's model listing (GET /models) as it sent it, fields beyond OpenAI's included."""
        try:
            # A short timeout and one try: a listing is a few bytes, and a hung server would otherwise cost the
            # full chat timeout and retries before every episode's first request (measured: ~6 minutes).
            listing = self._sdk.with_options(timeout=min(10.0, self.timeout_s), max_retries=0).models.list(
                **self._headers)
            return [m.model_dump() for m in listing.data]
        except openai.OpenAIError as exc:
            raise self._error(exc, "/models") from exc
        except (ValueError, TypeError, AttributeError) as exc:  # a body that is not JSON, "data": null
            raise LLMError(f"{self.base_url}/models answered with something that is not a model listing: "
                           f"{type(exc).__name__}: {str(exc)[:200]}") from exc

    def resolve_model(self) -> str:
        """The configured model name, or the server's first listed model (servers of one model need no name)."""
        if self.model:
            return self.model
        names = self.models()
        if not names:
            raise LLMError(f"{self.base_url}/models lists no model; set {ENV_MODEL}")
        self.model = names[0]
        return self.model

    def chat(self, messages: list[dict[str, str]], *, max_tokens: int | None = None, temperature: float = 0.0,
             stop: list[str] | None = None, **extra: Any) -> ChatResult:
        """One chat completion. `extra` fields go into the request body as they are (response_format, vLLM's
        structured_outputs, llama.cpp's grammar, ...). Raises LLMError, never an SDK or HTTP error."""
        model = self.resolve_model()
        options: dict[str, Any] = dict(self._headers)
        if max_tokens is not None:
            options["max_tokens"] = max_tokens
        if stop:
            options["stop"] = stop
        if extra:
            options["extra_body"] = extra
        start = time.perf_counter()
        try:
            completion = self._sdk.chat.completions.create(model=model, messages=messages, temperature=temperature,
                                                           **options)
        except openai.OpenAIError as exc:
            raise self._error(exc, "/chat/completions") from exc
        except (ValueError, TypeError) as exc:  # a JSON content type on a body that is not JSON, or wrong types
            raise LLMError(f"{self.base_url}/chat/completions answered with something that is not a completion: "
                           f"{type(exc).__name__}: {str(exc)[:200]}") from exc
        latency = time.perf_counter() - start
        # The SDK does not validate a response, so a server's odd answer shows up here as missing fields.
        choices = getattr(completion, "choices", None)
        if not choices or getattr(choices[0], "message", None) is None:
            raise LLMError(f"{self.base_url} returned no completion: {str(completion)[:200]}")
        usage = completion.usage
        return ChatResult(
            text=choices[0].message.content or "",
            model=str(completion.model or model),
            finish_reason=choices[0].finish_reason,
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            latency_s=latency,
        )


def _error_detail(exc: openai.APIStatusError) -> str:
    """The server's own error message: OpenAI's {"error": {"message": ...}} (the SDK hands over the inner object),
    FastAPI's {"detail": ...}, or the raw body."""
    body = exc.body
    if isinstance(body, dict):
        return str(body.get("message") or body.get("detail") or body)[:300]
    if body:
        return str(body)[:300]
    return exc.response.text[:300] or exc.response.reason_phrase
