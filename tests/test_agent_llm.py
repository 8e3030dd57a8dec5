"""The OpenAI-compatible client: what it sends, how it retries and times out, and the errors it reports.

These need the scripted server (it records requests and fails on cue); chat, model listing and a wrong key or path
on a real server are in test_llamacpp_server.py.
"""

import socket
import time

import pytest
from llm_server import Fail, llm_server  # noqa: F401  (fixture)

from lamforge.llm import LLMClient, LLMError, LLMNotConfigured, configured, normalize_base_url


def test_chat_sends_openai_request_and_reads_reply(llm_server):
    server = llm_server(["hello there"], model="m1")
    client = LLMClient(server.url, model="m1")
    result = client.chat([{"role": "user", "content": "hi"}], max_tokens=7, stop=["\n"])
    assert result.text == "hello there"
    assert result.completion_tokens == 2 and result.prompt_tokens == 11
    assert result.finish_reason == "stop" and result.latency_s > 0
    request = server.chat_requests[0]
    assert request.path == "/v1/chat/completions"
    assert request.body == {"model": "m1", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.0,
                            "max_tokens": 7, "stop": ["\n"]}
    assert "authorization" not in request.headers and request.headers["content-type"] == "application/json"


def test_configuration_from_environment_and_model_discovery(llm_server, monkeypatch):
    server = llm_server(["ok"], api_key="sekret", model="served-model")
    monkeypatch.setenv("LAMFORGE_LLM_URL", f"127.0.0.1:{server.port}")
    monkeypatch.setenv("LAMFORGE_LLM_KEY", "sekret")
    monkeypatch.delenv("LAMFORGE_LLM_MODEL", raising=False)
    assert configured()
    client = LLMClient.from_env()
    assert client.chat([{"role": "user", "content": "hi"}]).text == "ok"
    # No model configured: the client asked the server which one it serves.
    assert [r.path for r in server.requests] == ["/v1/models", "/v1/chat/completions"]
    assert server.chat_requests[0].body["model"] == "served-model"
    assert server.chat_requests[0].headers["authorization"] == "Bearer sekret"


def test_wrong_key_is_not_retried(llm_server):
    server = llm_server(["ok"], api_key="right")
    client = LLMClient(server.url, model="m", api_key="wrong", max_retries=3)
    with pytest.raises(LLMError, match="LAMFORGE_LLM_KEY") as info:
        client.chat([{"role": "user", "content": "hi"}])
    assert info.value.status == 401
    assert len(server.requests) == 1


def test_server_errors_are_retried_then_succeed(llm_server):
    server = llm_server([Fail(503, "busy", retry_after_ms=10), Fail(429, "slow down", retry_after_ms=10), "finally"])
    client = LLMClient(server.url, model="m", max_retries=2)
    assert client.chat([{"role": "user", "content": "hi"}]).text == "finally"
    assert len(server.chat_requests) == 3


def test_retries_are_bounded(llm_server):
    server = llm_server([Fail(500, "broken", retry_after_ms=10)])
    client = LLMClient(server.url, model="m", max_retries=1)
    with pytest.raises(LLMError, match="500: broken"):
        client.chat([{"role": "user", "content": "hi"}])
    assert len(server.chat_requests) == 2


def test_client_errors_are_not_retried(llm_server):
    server = llm_server([Fail(400, "bad field")])
    client = LLMClient(server.url, model="m", max_retries=3)
    with pytest.raises(LLMError, match="400: bad field"):
        client.chat([{"role": "user", "content": "hi"}])
    assert len(server.chat_requests) == 1


def test_timeout_is_reported(llm_server):
    server = llm_server(["late"], delay_s=1.0)
    client = LLMClient(server.url, model="m", timeout_s=0.2, max_retries=0)
    start = time.perf_counter()
    with pytest.raises(LLMError, match="did not answer within 0.2 s"):
        client.chat([{"role": "user", "content": "hi"}])
    assert time.perf_counter() - start < 1.0


def test_unreachable_server_is_reported():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    client = LLMClient(f"http://127.0.0.1:{port}/v1", model="m", max_retries=0)
    with pytest.raises(LLMError, match="cannot reach the LLM endpoint"):
        client.chat([{"role": "user", "content": "hi"}])


def test_missing_configuration_says_what_to_set(monkeypatch):
    monkeypatch.delenv("LAMFORGE_LLM_URL", raising=False)
    assert not configured()
    with pytest.raises(LLMNotConfigured, match="LAMFORGE_LLM_URL"):
        LLMClient()


@pytest.mark.parametrize("given, expected", [
    ("localhost:8000", "http://localhost:8000/v1"),
    ("http://h:1/v1/", "http://h:1/v1"),
    ("http://h:1/v1/chat/completions", "http://h:1/v1"),
    ("https://api.openai.com/v1", "https://api.openai.com/v1"),
    ("http://h:11434", "http://h:11434/v1"),
    ("http://h/proxy/v1", "http://h/proxy/v1"),
])
def test_normalize_base_url(given, expected):
    assert normalize_base_url(given) == expected


@pytest.mark.parametrize("body", [b"this is not json", b'{"object": "list", "data": null}'])
def test_a_model_listing_that_is_not_one_is_an_llm_error(body):
    """The client promises LLMError only: a JSON content type on a body that is not JSON, or `data: null`, escaped
    the agent loop as JSONDecodeError or TypeError before its first step."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        client = LLMClient(url=f"http://127.0.0.1:{httpd.server_address[1]}/v1", model="m", max_retries=0)
        with pytest.raises(LLMError, match="not a model listing"):
            client.model_entries()
    finally:
        httpd.shutdown()
        httpd.server_close()
