"""A real local HTTP server speaking the OpenAI chat-completions protocol, for tests and labs.

    with OpenAICompatibleServer(responder=lambda request: "Hello.") as srv:
        client = openai.OpenAI(api_key="test", base_url=srv.base_url)
        ...
        assert srv.requests[0]["messages"][-1]["role"] == "user"

It serves `POST /v1/chat/completions` and `GET /v1/models` on 127.0.0.1 (free port, stdlib server in a
thread), records every chat request body and the usage it reported (thread-safe), and can be told to fail the
next N requests with HTTP 500, a 429 rate limit, a hang past the client's timeout, or a malformed body, or to
fail every request for a model (`failing_models`).
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Responder = Callable[[dict[str, Any]], str]

FAILURE_MODES = ("error", "rate_limit", "timeout", "malformed", "empty")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _message_text(message: dict[str, Any]) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):  # the content-parts form: [{"type": "text", "text": ...}, ...]
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content)


def last_user_message(request: dict[str, Any]) -> str:
    for message in reversed(request.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return _message_text(message)
    return ""


def echo_context_responder(request: dict[str, Any]) -> str:
    """Deterministic default: the first sentence of the context in the last user message.

    The context is the text after a line starting with "Context" (up to a line starting with "Question"),
    skipping source headers such as "[1] Title" and markdown headings; without markers, the whole message.
    """
    text = last_user_message(request)
    lines = text.splitlines()
    start = next((i + 1 for i, line in enumerate(lines) if line.strip().lower().startswith("context")), 0)
    body: list[str] = []
    for line in lines[start:]:
        stripped = line.strip()
        if stripped.lower().startswith("question"):
            break
        if not stripped or stripped.startswith(("[", "#")) or stripped.lower().startswith("source"):
            continue
        body.append(stripped)
    context = " ".join(body) or text.strip()
    first = _SENTENCE_END.split(context, maxsplit=1)[0].strip()
    return first or "I do not know."


def _count_tokens(text: str) -> int:
    """A crude but deterministic token count (words and punctuation), enough for usage accounting."""
    return len(re.findall(r"\w+|[^\w\s]", text))


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _send_json(self, status: int, payload: Any) -> None:
        self._send_raw(status, json.dumps(payload).encode())

    def _send_raw(self, status: int, body: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout): nothing to do
            pass

    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            owner = self.server.owner
            self._send_json(
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": m, "object": "model", "created": 0, "owned_by": "local"} for m in owner.models
                    ],
                },
            )
            return
        self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})

    def do_POST(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._send_json(
                404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}}
            )
            return
        try:
            request = json.loads(raw or b"{}")
            if not isinstance(request, dict) or not isinstance(request.get("messages"), list):
                raise ValueError("messages must be a list")
        except ValueError as exc:
            self._send_json(400, {"error": {"message": str(exc), "type": "invalid_request_error"}})
            return
        owner._record(request, dict(self.headers))

        failure = owner._take_failure(str(request.get("model") or ""))
        if failure == "rate_limit":  # OpenAI's body for a 429 (type and code as its API sends them)
            error = {
                "message": "Rate limit reached",
                "type": "requests",
                "param": None,
                "code": "rate_limit_exceeded",
            }
            self._send_json(429, {"error": error})
            return
        if failure == "error":
            self._send_json(500, {"error": {"message": "injected failure", "type": "server_error"}})
            return
        if failure == "timeout":
            owner._stopping.wait(owner.hang_seconds)  # returns early when the server stops
            self._send_json(500, {"error": {"message": "hung past the timeout", "type": "server_error"}})
            return
        if failure == "malformed":
            self._send_raw(200, b'{"id": "chatcmpl-broken", "choices": [{"message": ')
            return
        if failure == "empty":
            self._send_json(200, {"id": "chatcmpl-empty", "object": "chat.completion", "choices": []})
            return

        try:
            content = owner.responder(request)
        except Exception as exc:  # a broken responder is a test bug: surface it as a 500 with the reason
            self._send_json(500, {"error": {"message": f"responder raised {exc!r}", "type": "server_error"}})
            return
        if owner.delay_seconds:
            time.sleep(owner.delay_seconds)
        prompt_tokens = sum(
            _count_tokens(_message_text(m)) for m in request["messages"] if isinstance(m, dict)
        )
        completion_tokens = _count_tokens(content)
        owner._record_usage(prompt_tokens, completion_tokens)
        self._send_json(
            200,
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": str(request.get("model") or owner.models[0]),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
        )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: OpenAICompatibleServer


class OpenAICompatibleServer:
    """An OpenAI-compatible chat-completions server on 127.0.0.1; a context manager.

    `responder(request_json) -> str` produces each reply's content. `requests` lists every chat request body
    received (failed ones included), `headers` their HTTP headers, `usages` the (prompt_tokens,
    completion_tokens) of every answer served. `fail_next(n, mode)` makes the next n chat requests fail:
    "error" (HTTP 500), "rate_limit" (HTTP 429), "timeout" (hang `hang_seconds`, then 500), "malformed" (a
    truncated JSON body with status 200) or "empty" (valid JSON without choices). `failing_models` maps a
    model name to the mode every request for it fails with.
    """

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        models: tuple[str, ...] = ("gpt-4o-mini", "test-model"),
        hang_seconds: float = 5.0,
        delay_seconds: float = 0.0,
        failing_models: dict[str, str] | None = None,
    ) -> None:
        for mode in (failing_models or {}).values():
            _check_mode(mode)
        self.failing_models = dict(failing_models or {})
        self.responder: Responder = responder or echo_context_responder
        self.models = models
        self.hang_seconds = hang_seconds
        self.delay_seconds = delay_seconds
        self._lock = threading.Lock()
        self._requests: list[dict[str, Any]] = []
        self._headers: list[dict[str, str]] = []
        self._usages: list[tuple[int, int]] = []
        self._failures: list[str] = []
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> OpenAICompatibleServer:
        self._stopping.clear()
        server = _Server(("127.0.0.1", 0), _Handler)
        server.owner = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="openai-test-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> OpenAICompatibleServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("server not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """What `openai.OpenAI(base_url=...)` / OPENAI_BASE_URL expects: "http://127.0.0.1:PORT/v1"."""
        return f"http://127.0.0.1:{self.port}/v1"

    # -- recording and failure injection ---------------------------------------------------------------
    @property
    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._requests)

    @property
    def headers(self) -> list[dict[str, str]]:
        with self._lock:
            return list(self._headers)

    @property
    def usages(self) -> list[tuple[int, int]]:
        with self._lock:
            return list(self._usages)

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._headers.clear()
            self._usages.clear()
            self._failures.clear()

    def fail_next(self, n: int = 1, mode: str = "error") -> None:
        mode = _check_mode(mode)
        with self._lock:
            self._failures.extend([mode] * n)

    def _record(self, request: dict[str, Any], headers: dict[str, str]) -> None:
        with self._lock:
            self._requests.append(request)
            self._headers.append(headers)

    def _record_usage(self, prompt_tokens: int, completion_tokens: int) -> None:
        with self._lock:
            self._usages.append((prompt_tokens, completion_tokens))

    def _take_failure(self, model: str) -> str | None:
        if model in self.failing_models:
            return self.failing_models[model]
        with self._lock:
            return self._failures.pop(0) if self._failures else None


def _check_mode(mode: str) -> str:
    mode = "error" if mode == "500" else mode
    if mode not in FAILURE_MODES:
        raise ValueError(f"mode must be one of {FAILURE_MODES}, got {mode!r}")
    return mode
