"""Stub LLM servers on 127.0.0.1 that speak the real wire formats.

``StubLLM(kind="anthropic")`` answers ``POST /v1/messages`` like the Messages API;
``kind="openai"`` answers ``POST /v1/chat/completions`` like Chat Completions — JSON or
SSE when the request says ``"stream": true``. ``script`` is a queue of behaviours used
one per request (then ``default``): "ok", "429", "500", "slow", "malformed", "empty",
"cut", "401", "404", "400-context". Every request is kept in ``requests``.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class StubLLM:
    kind: str  # "anthropic" | "openai"
    text: str = "Full-time employees receive 25 days of paid vacation per year [1]."
    input_tokens: int = 120
    output_tokens: int = 18
    default: str = "ok"
    retry_after: str = "0.05"
    slow_seconds: float = 2.0
    script: deque[str] = field(default_factory=deque)
    requests: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                with stub._lock:
                    stub.requests.append(
                        Seen(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    behaviour = stub.script.popleft() if stub.script else stub.default
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # client gave up
                    stub._respond(self, body, behaviour)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    # ── addresses ────────────────────────────────────────────────────────────────────

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        base = f"http://{host}:{port}"
        return base if self.kind == "anthropic" else base + "/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def count(self) -> int:
        return len(self.requests)

    # ── responses ────────────────────────────────────────────────────────────────────

    def _json(
        self, h: BaseHTTPRequestHandler, status: int, payload: Any, headers: dict[str, str] | None = None
    ) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("content-type", "application/json")
        h.send_header("content-length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)

    def _error(
        self, h: BaseHTTPRequestHandler, status: int, message: str, headers: dict[str, str] | None = None
    ) -> None:
        if self.kind == "anthropic":
            payload = {"type": "error", "error": {"type": "api_error", "message": message}}
        else:
            payload = {"error": {"message": message, "type": "api_error", "code": None}}
        self._json(h, status, payload, headers)

    def _respond(self, h: BaseHTTPRequestHandler, body: dict[str, Any], behaviour: str) -> None:
        model = str(body.get("model", "?"))
        if behaviour == "429":
            return self._error(h, 429, "SECRET-SDK-TEXT rate limited", {"retry-after": self.retry_after})
        if behaviour == "500":
            return self._error(h, 500, "SECRET-SDK-TEXT boom", {"retry-after-ms": "10"})
        if behaviour == "401":
            return self._error(h, 401, "SECRET-SDK-TEXT invalid x-api-key")
        if behaviour == "404":
            return self._error(h, 404, f"SECRET-SDK-TEXT model {model} not found")
        if behaviour == "400-context":
            return self._error(h, 400, "prompt is too long: 250000 tokens > 200000 maximum context length")
        if behaviour == "slow":
            time.sleep(self.slow_seconds)
        if behaviour == "malformed":
            return self._json(h, 200, b'{"id": "x", "content": [ {"type": "text", "text": "half')
        text = "" if behaviour == "empty" else self.text
        if body.get("stream"):
            return self._stream(h, model, text, cut=behaviour == "cut")
        if self.kind == "anthropic":
            payload: dict[str, Any] = {
                "id": "msg_stub",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens},
            }
        else:
            payload = {
                "id": "chatcmpl-stub",
                "object": "chat.completion",
                "created": 1700000000,
                "model": model,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                ],
                "usage": {
                    "prompt_tokens": self.input_tokens,
                    "completion_tokens": self.output_tokens,
                    "total_tokens": self.input_tokens + self.output_tokens,
                },
            }
        return self._json(h, 200, payload)

    def _stream(self, h: BaseHTTPRequestHandler, model: str, text: str, *, cut: bool) -> None:
        h.send_response(200)
        h.send_header("content-type", "text/event-stream")
        h.send_header("cache-control", "no-cache")
        h.end_headers()
        words = [w + " " for w in text.split(" ")] if text else []
        if words:
            words[-1] = words[-1].rstrip()

        def send(event: str | None, data: Any) -> None:
            line = (
                f"event: {event}\n" if event else ""
            ) + f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"
            h.wfile.write(line.encode())
            h.wfile.flush()

        if self.kind == "anthropic":
            send(
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": "msg_stub",
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": {"input_tokens": self.input_tokens, "output_tokens": 1},
                    },
                },
            )
            send(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            )
            for i, w in enumerate(words):
                if cut and i == len(words) // 2:
                    return  # connection closes mid-answer
                send(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}},
                )
            send("content_block_stop", {"type": "content_block_stop", "index": 0})
            send(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": self.output_tokens},
                },
            )
            send("message_stop", {"type": "message_stop"})
            return
        base = {
            "id": "chatcmpl-stub",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": model,
        }
        send(
            None,
            {
                **base,
                "choices": [
                    {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
                ],
            },
        )
        for i, w in enumerate(words):
            if cut and i == len(words) // 2:
                return
            send(None, {**base, "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]})
        send(None, {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        send(
            None,
            {
                **base,
                "choices": [],
                "usage": {
                    "prompt_tokens": self.input_tokens,
                    "completion_tokens": self.output_tokens,
                    "total_tokens": self.input_tokens + self.output_tokens,
                },
            },
        )
        send(None, "[DONE]")
