"""A scripted OpenAI-compatible Chat Completions server on 127.0.0.1, for tests.

Replies are queued per agent (recognised from the system prompt) and streamed as real
SSE over chunked HTTP, with tool-call arguments split across chunks and a usage chunk.
Faults are injected on demand: 429 with Retry-After, 500, 401, a connection closed before
any response, a connection dropped mid-stream, and a stream that ends without finishing.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HANG_SECONDS = 2.0  # how long "hang" and "stall" keep a connection silent
_AGENT_RE = re.compile(r'^You are "([^"]+)"')


@dataclass
class Reply:
    """One scripted model response (or fault)."""

    text: str | Callable[[dict[str, Any]], str] = ""
    tool_calls: list[tuple[str, str]] = field(default_factory=list)  # (name, raw arguments)
    fault: str | None = None  # 429 | 500 | 401 | drop | drop_mid | truncate | hang | stall
    retry_after: str | None = None
    usage: tuple[int, int] = (10, 5)
    chunk_delay: float = 0.0
    barrier: str | None = None  # wait until every reply sharing this name has arrived


@dataclass
class Seen:
    agent: str
    body: dict[str, Any]
    started: float
    ended: float = 0.0
    barrier_met: bool | None = None
    chunks_sent: int = 0  # streamed chunks written so far: tests wait on it instead of sleeping


class FakeOpenAI:
    def __init__(self) -> None:
        self.queues: dict[str, deque[Reply]] = {}
        self.requests: list[Seen] = []
        self.paths: list[str] = []
        self.lock = threading.Lock()
        self._barriers: dict[str, threading.Barrier] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, address: None  # type: ignore[method-assign]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    # scripting -------------------------------------------------------------------------

    def script(self, agent: str, *replies: Reply) -> FakeOpenAI:
        with self.lock:
            self.queues.setdefault(agent, deque()).extend(replies)
            for r in replies:
                if r.barrier:
                    parties = sum(1 for q in self.queues.values() for x in q if x.barrier == r.barrier)
                    self._barriers[r.barrier] = threading.Barrier(parties, timeout=5)
        return self

    def next_reply(self, agent: str) -> Reply | None:
        with self.lock:
            for key in (agent, "*"):
                if self.queues.get(key):
                    return self.queues[key].popleft()
        return None

    def remaining(self) -> int:
        return sum(len(q) for q in self.queues.values())

    def for_agent(self, agent: str) -> list[Seen]:
        return [r for r in self.requests if r.agent == agent]

    def wait_for_chunks(self, count: int, seconds: float = 20) -> None:
        """Block until some request has streamed ``count`` chunks (a reply is under way)."""
        deadline = time.monotonic() + seconds
        while not any(r.chunks_sent >= count for r in list(self.requests)):
            if time.monotonic() > deadline:
                raise AssertionError(f"no reply streamed {count} chunks within {seconds} s")
            time.sleep(0.01)

    # lifecycle -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            fake.paths.append(self.path)
            if not self.path.split("?")[0].endswith("/chat/completions"):
                return self._json(404, {"error": {"message": f"no route {self.path}"}})
            system = next(
                (m.get("content") or "" for m in body.get("messages", []) if m.get("role") == "system"), ""
            )
            match = _AGENT_RE.match(system)
            agent = match.group(1) if match else "?"
            seen = Seen(agent, body, time.monotonic())
            with fake.lock:
                fake.requests.append(seen)
            reply = fake.next_reply(agent)
            try:
                if reply is None:
                    self._json(500, {"error": {"message": f"fake server: no reply scripted for {agent}"}})
                    return
                if reply.barrier:
                    try:
                        fake._barriers[reply.barrier].wait()
                        seen.barrier_met = True
                    except threading.BrokenBarrierError:
                        seen.barrier_met = False
                self._serve(reply, body, seen)
            finally:
                seen.ended = time.monotonic()

        def _json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _serve(self, reply: Reply, body: dict[str, Any], seen: Seen) -> None:
            fault = reply.fault
            if fault == "429":
                headers = {"retry-after": reply.retry_after} if reply.retry_after else {}
                return self._json(
                    429, {"error": {"message": "Rate limit reached", "type": "rate_limit"}}, headers
                )
            if fault == "500":
                return self._json(500, {"error": {"message": "The server had an error"}})
            if fault == "401":
                return self._json(401, {"error": {"message": "Incorrect API key provided"}})
            if fault == "hang":  # accepts, then says nothing (HANG_SECONDS), then hangs up
                time.sleep(HANG_SECONDS)
                self.close_connection = True
                return None
            if fault == "drop":
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return None
            text = reply.text(body) if callable(reply.text) else reply.text
            if not body.get("stream"):
                return self._json(200, _completion(body, text, reply))
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            chunks = list(_chunks(body, text, reply))
            for i, chunk in enumerate(chunks):
                if fault in ("drop_mid", "truncate") and i == max(1, len(chunks) // 2):
                    if fault == "drop_mid":
                        self.wfile.write(b'40\r\ndata: {"trunc')  # a chunk cut short
                        self.wfile.flush()
                        self.connection.shutdown(socket.SHUT_RDWR)
                        self.close_connection = True
                        return None
                    break
                self._chunk(f"data: {json.dumps(chunk)}\n\n")
                seen.chunks_sent += 1
                if fault == "stall":  # the stream stops after its first chunk
                    time.sleep(HANG_SECONDS)
                    self.close_connection = True
                    return None
                if reply.chunk_delay:
                    time.sleep(reply.chunk_delay)
            if fault != "truncate":
                self._chunk("data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            return None

        def _chunk(self, text: str) -> None:
            data = text.encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    return Handler


def _base(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
    }


def _chunks(body: dict[str, Any], text: str, reply: Reply) -> list[dict[str, Any]]:
    out = [
        {
            **_base(body),
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
        }
    ]
    for i in range(0, len(text), 7):
        out.append(
            {
                **_base(body),
                "choices": [{"index": 0, "delta": {"content": text[i : i + 7]}, "finish_reason": None}],
            }
        )
    for n, (name, args) in enumerate(reply.tool_calls):
        out.append(
            {
                **_base(body),
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": None,
                        "delta": {
                            "tool_calls": [
                                {
                                    "index": n,
                                    "id": f"call_{n}_{abs(hash(args)) % 10**8}",
                                    "type": "function",
                                    "function": {"name": name, "arguments": ""},
                                }
                            ]
                        },
                    }
                ],
            }
        )
        step = max(1, len(args) // 3)
        for i in range(0, len(args), step):
            out.append(
                {
                    **_base(body),
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": None,
                            "delta": {
                                "tool_calls": [{"index": n, "function": {"arguments": args[i : i + step]}}]
                            },
                        }
                    ],
                }
            )
    finish = "tool_calls" if reply.tool_calls else "stop"
    out.append({**_base(body), "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    if (body.get("stream_options") or {}).get("include_usage"):
        p, c = reply.usage
        out.append(
            {
                **_base(body),
                "choices": [],
                "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c},
            }
        )
    return out


def _completion(body: dict[str, Any], text: str, reply: Reply) -> dict[str, Any]:
    calls = [
        {"id": f"call_{n}", "type": "function", "function": {"name": name, "arguments": args}}
        for n, (name, args) in enumerate(reply.tool_calls)
    ]
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    p, c = reply.usage
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}],
        "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c},
    }


def call(name: str, **arguments: Any) -> tuple[str, str]:
    """A tool call with JSON-encoded arguments."""
    return (name, json.dumps(arguments))


def last_tool_output(body: dict[str, Any]) -> str:
    """The content of the newest tool message in a request (what the model just saw)."""
    for m in reversed(body.get("messages", [])):
        if m.get("role") == "tool":
            return str(m.get("content"))
    return ""
