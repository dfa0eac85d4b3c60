"""A local OpenAI-compatible HTTP server for tests: real sockets, real HTTP, so litellm's and
the openai SDK's own client code (httpx or aiohttp) runs end to end.

``POST /v1/chat/completions`` answers with JSON or, for ``"stream": true``, server-sent events
ending in ``data: [DONE]``; ``POST /v1/embeddings`` with vectors. What it answers is decided
by the request (see :meth:`OpenAIServer.reply`) or by a queue of scripted replies. Every
request is recorded with its headers (so a test sees the ``traceparent`` an HTTP client
instrumentation injected). 127.0.0.1 only, an ephemeral port, stopped by ``close()``.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["OpenAIServer", "Reply", "Request", "openai_server"]

PROMPT_TOKENS = 21
COMPLETION_TOKENS = 9
CACHED_TOKENS = 4
_ids = itertools.count(1)


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Reply:
    """One scripted answer: text, tool calls, an HTTP error, or a delay before it."""

    text: str = "Hello from the local model."
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    status: int = 200
    delay_s: float = 0.0
    chunk_delay_s: float = 0.0


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY the client's delayed ACK
    # holds the second one ~40 ms.
    disable_nagle_algorithm = True

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        body = json.loads(raw or b"{}")
        owner = self.server.owner
        owner.requests.append(Request(self.path, {k.lower(): v for k, v in
                                                  self.headers.items()}, body))
        reply = owner.next_reply(body)
        if reply.delay_s:
            time.sleep(reply.delay_s)
        if reply.status != 200:
            self._json(reply.status, {"error": {"message": f"scripted {reply.status}",
                                                "type": "server_error", "code": None}})
            return
        if self.path.endswith("/embeddings"):
            self._json(200, _embedding(body))
        elif body.get("stream"):
            self._stream(body, reply)
        else:
            self._json(200, _completion(body, reply))

    def _json(self, status: int, doc: dict[str, Any]) -> None:
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, body: dict[str, Any], reply: Reply) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        cid = f"chatcmpl-s{next(_ids)}"
        words = reply.text.split(" ")
        try:
            for i, word in enumerate(words):
                delta = {"content": word if i == 0 else " " + word}
                if i == 0:
                    delta["role"] = "assistant"
                self._event(_chunk(cid, body, delta, None))
                if reply.chunk_delay_s:
                    time.sleep(reply.chunk_delay_s)
            self._event(_chunk(cid, body, {}, "stop"))
            if (body.get("stream_options") or {}).get("include_usage"):
                usage = _chunk(cid, body, None, None)
                usage["choices"] = []
                usage["usage"] = _usage()
                self._event(usage)
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client closed the stream early

    def _event(self, doc: dict[str, Any]) -> None:
        self.wfile.write(b"data: " + json.dumps(doc).encode() + b"\n\n")
        self.wfile.flush()


def _usage() -> dict[str, Any]:
    return {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS,
            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
            "prompt_tokens_details": {"cached_tokens": CACHED_TOKENS}}


def _chunk(cid: str, body: dict[str, Any], delta: dict[str, Any] | None,
           finish: str | None) -> dict[str, Any]:
    return {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()),
            "model": f"{body.get('model', 'local')}-served",
            "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}]}


def _completion(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text}
    finish = "stop"
    if reply.tool_calls:
        message = {"role": "assistant", "content": None, "tool_calls": [
            {"id": f"call_{next(_ids)}", "type": "function",
             "function": {"name": name, "arguments": json.dumps(args)}}
            for name, args in reply.tool_calls]}
        finish = "tool_calls"
    return {"id": f"chatcmpl-{next(_ids)}", "object": "chat.completion",
            "created": int(time.time()), "model": f"{body.get('model', 'local')}-served",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": _usage()}


def _embedding(body: dict[str, Any]) -> dict[str, Any]:
    inputs = body.get("input")
    n = len(inputs) if isinstance(inputs, list) else 1
    return {"object": "list", "model": f"{body.get('model', 'local')}-served",
            "data": [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]}
                     for i in range(n)],
            "usage": {"prompt_tokens": 5 * n, "total_tokens": 5 * n}}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: OpenAIServer


class OpenAIServer:
    """The running server; ``base_url`` is what ``api_base`` should be."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self.port = self._httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def next_reply(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            if self.script:
                return self.script.popleft()
        return self.reply(body)

    @staticmethod
    def reply(body: dict[str, Any]) -> Reply:
        """Default answers: a model named ``error-<status>`` fails with that status, a
        negative ``max_tokens`` is a 400; a request offering tools, with no tool result in
        its messages yet, calls every tool offered (string arguments "Paris", numbers 1)."""
        model = str(body.get("model", ""))
        if model.startswith("error-"):
            return Reply(status=int(model.split("-", 1)[1]))
        max_tokens = body.get("max_tokens")
        if isinstance(max_tokens, int) and max_tokens < 0:
            return Reply(status=400)
        tools = body.get("tools") or []
        if tools and not any(m.get("role") == "tool" for m in body.get("messages") or ()):
            calls = []
            for tool in tools:
                fn = tool.get("function") or {}
                props = (fn.get("parameters") or {}).get("properties") or {}
                calls.append((fn.get("name", ""), {
                    k: 1 if p.get("type") in ("integer", "number") else "Paris"
                    for k, p in props.items()}))
            return Reply(tool_calls=calls)
        return Reply(text="One two three four five six seven eight nine ten.")

    def chat_requests(self) -> list[Request]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


@contextmanager
def openai_server() -> Iterator[OpenAIServer]:
    server = OpenAIServer()
    try:
        yield server
    finally:
        server.close()
