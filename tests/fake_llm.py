"""A real OpenAI-compatible HTTP server for fault injection (not a mock).

A ThreadingHTTPServer on a free 127.0.0.1 port, writing raw bytes so every fault is exact. The
behaviour is chosen by the first path segment: `base_url(mode)` gives
"http://127.0.0.1:PORT/<mode>/<tag>/v1", where a fresh <tag> per call keeps the attempt
counters and recorded requests of one test apart from every other.

Modes (non-streaming / streaming, i.e. request "stream": true):
  ok          ANSWER as JSON / as SSE deltas with keep-alive comments, finish_reason and [DONE]
  echo        the last user message as the answer (so a test sees the prompt the generator sent)
  http500     always 500 with a JSON error body
  flaky       500 on the first two attempts, then like "ok"
  429         always 429 with "Retry-After: 0"
  429long     always 429 with "Retry-After: 3600"
  400         always 400 with a JSON error body
  hang        reads the request, never answers
  drip        200 headers, then one byte every 0.5 s, forever
  trickle     200 headers, one byte every 0.3 s for 1.8 s, then silence (a stall mid-body)
  malformed   200 with an invalid JSON body / a non-JSON SSE data line
  nochoices   200 with valid JSON without "choices" / SSE chunks without "choices"
  nocontent   200 with choices[0].message without "content" / a delta whose content is a number
  cut         non-stream: Content-Length longer than the body, then close; stream: two deltas,
              then the connection closes cleanly (no [DONE], no finish_reason)
  cutchunked  stream: two deltas in chunked encoding, then an abrupt close (no final chunk)
  nodone      stream: the deltas and a finish_reason, then the connection stays open (no [DONE])
  streamerror stream: one delta, then `data: {"error": ...}`
  plainstream like "ok", but a stream is sent as text/plain (not an event stream)
  switch      whatever mode `set_mode(url, mode)` last chose for this URL (one running service
              can meet every fault in turn)
  halftrue    the first sentence of 8+ words of source [1] in the prompt, cited [1], then
              "The moon is made of green cheese [1]." (a claim no source supports); streamed
              word by word, 0.1 s apart, so a client can watch the answer grow
  rewrite     a condensing request (system message asking for a "standalone question"):
              "Standalone question: " + REWRITE; any other request: like "echo"
  slowrewrite a condensing request hangs; any other: like "echo"
  badrewrite  a condensing request gets a 500; any other: like "echo"
  emptyrewrite a condensing request gets a blank answer; any other: like "echo"
`closed_url()` is a base URL on a port nothing listens on (connection refused).
The same base URLs serve `/embeddings` too, with the modes of tests/fake_embeddings.py.
"""
from __future__ import annotations

import json
import re
import socket
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count
from typing import Any, Iterator

import pytest

from tests.fake_embeddings import EmbeddingModes

ANSWER = "Refunds take 30 days [1]."
REWRITE = "Within how many days can a monthly plan be refunded?"  # the "rewrite" mode's
PIECES = ["Refunds ", "take 30 ", "days ", "[1]."]  # joined: ANSWER


@dataclass
class Recorded:
    headers: dict[str, str]  # lower-cased names
    body: dict[str, Any]
    at: float = field(default_factory=time.monotonic)  # when the request was read


@dataclass
class FakeLLM:
    port: int
    server: ThreadingHTTPServer
    stop: threading.Event
    _requests: dict[str, list[Recorded]] = field(default_factory=lambda: defaultdict(list))
    _tags: Iterator[int] = field(default_factory=count)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _switch: dict[str, str] = field(default_factory=dict)

    def set_mode(self, base_url: str, mode: str) -> None:
        """For a base URL made by base_url("switch"): answer the next requests like `mode`."""
        self._switch[_key(base_url)] = mode

    def base_url(self, mode: str) -> str:
        return f"http://127.0.0.1:{self.port}/{mode}/t{next(self._tags)}/v1"

    def requests(self, base_url: str) -> list[Recorded]:
        """The requests received under this base URL, in order."""
        with self._lock:
            return list(self._requests[_key(base_url)])

    def attempts(self, base_url: str) -> int:
        return len(self.requests(base_url))

    @staticmethod
    def closed_url() -> str:
        with socket.socket() as sock:  # bind a free port, then release it: nothing listens there
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    def record(self, key: str, request: Recorded) -> int:
        with self._lock:
            self._requests[key].append(request)
            return len(self._requests[key])

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


def _key(base_url: str) -> str:
    """"mode/tag" of a base URL made by `FakeLLM.base_url`."""
    return "/".join(base_url.split("://", 1)[-1].split("/")[1:3])


def _completion(content: str) -> bytes:
    return json.dumps({"id": "chatcmpl-fake", "object": "chat.completion", "model": "fake",
                       "choices": [{"index": 0, "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": content}}]}).encode()


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": "fake",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def _sse_ok(pieces: list[str]) -> bytes:
    return (b": keep-alive\n\n" + _chunk({"role": "assistant"})
            + b"".join(_chunk({"content": p}) for p in pieces[:2]) + b"\n: ping\n\n"
            + b"".join(_chunk({"content": p}) for p in pieces[2:])
            + _chunk({}, "stop") + b"data: [DONE]\n\n")


class _Handler(EmbeddingModes, BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_POST(self) -> None:
        parts = self.path.strip("/").split("/")
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        embeddings = parts[2:] == ["v1", "embeddings"]
        if not embeddings and parts[2:] != ["v1", "chat", "completions"]:
            return self._send(404, b'{"error": {"message": "not found"}}')
        mode, key = parts[0], "/".join(parts[:2])
        try:
            payload = json.loads(body)
        except ValueError:
            return self._send(400, b'{"error": {"message": "request body is not JSON"}}')
        headers = {k.lower(): v for k, v in self.headers.items()}
        attempt = self.server.fake.record(key, Recorded(headers, payload))
        if mode == "switch":
            mode = self.server.fake._switch.get(key, "ok")
        if embeddings:
            return getattr(self, "embed_" + mode, self.mode_unknown)(payload, attempt)
        getattr(self, "mode_" + mode, self.mode_unknown)(payload, bool(payload.get("stream")),
                                                           attempt)

    # -- raw output -------------------------------------------------------------------------

    def _head(self, status: int, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response_only(status)
        self.send_header("Content-Type", content_type)
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.flush()

    def _send(self, status: int, body: bytes, content_type: str = "application/json",
              extra: dict[str, str] | None = None) -> None:
        self._head(status, content_type, {"Content-Length": str(len(body)), **(extra or {})})
        self.wfile.write(body)

    def _send_sse(self, body: bytes, content_type: str = "text/event-stream") -> None:
        self._head(200, content_type, {"Transfer-Encoding": "chunked"})
        for event in body.split(b"\n\n")[:-1]:  # one HTTP chunk per event
            event += b"\n\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
        self.wfile.write(b"0\r\n\r\n")

    def _answer(self, content: str, stream: bool) -> None:
        if stream:
            size = max(1, len(content) // 4)
            pieces = [content[i:i + size] for i in range(0, len(content), size)]
            return self._send_sse(_sse_ok(pieces if content != ANSWER else PIECES))
        self._send(200, _completion(content))

    def _drip(self, stream: bool, interval: float, until: float | None) -> None:
        self.close_connection = True
        self._head(200, "text/event-stream" if stream else "application/json",
                   {"Connection": "close"})
        waited = 0.0
        try:
            while not self.server.fake.stop.wait(interval):
                waited += interval
                if until is not None and waited > until:
                    self.server.fake.stop.wait(60)  # silence, connection open
                    return
                self.wfile.write(b"\n" if stream else b" ")
                self.wfile.flush()
        except OSError:  # the client gave up
            pass

    # -- modes -------------------------------------------------------------------------------

    def mode_unknown(self, payload: dict[str, Any], *args: Any) -> None:
        self._send(404, b'{"error": {"message": "unknown fake mode"}}')

    def mode_ok(self, payload: dict[str, Any], stream: bool, attempt: int) -> None:
        self._answer(ANSWER, stream)

    def mode_plainstream(self, payload: dict[str, Any], stream: bool, attempt: int) -> None:
        if not stream:
            return self._answer(ANSWER, stream)
        self._send_sse(_sse_ok(PIECES), content_type="text/plain")

    def mode_echo(self, payload: dict[str, Any], stream: bool, attempt: int) -> None:
        self._answer(payload["messages"][-1]["content"], stream)

    def mode_http500(self, payload: dict[str, Any], stream: bool, attempt: int) -> None:
        self._send(500, b'{"error": {"message": "internal boom"}}')

    def mode_flaky(self, payload: dict[str, Any], stream: bool, attempt: int) -> None:
        if attempt <= 2:
            return self.mode_http500(payload, stream, attempt)
        self._answer(ANSWER, stream)

    def mode_429(self, payload: dict[str, Any], stream: bool, attempt: int) -> None:
        self._send(429, b'{"error": {"message": "rate limited"}}', extra={"Retry-After": "0"})

    def mode_429long(self, payload: dict[str, Any], stream: bool, attempt: int) -> None:
        self._send(429, b'{"error": {"message": "rate limited"}}', extra={"Retry-After": "3600"})

    def mode_400(self, payload: dict[str, Any], stream: bool, attempt: int) -> None:
        self._send(400, b'{"error": {"message": "context length exceeded"}}')

    def mode_hang(self, payload: dict[str, Any], stream: bool, attempt: int) -> None:
        self.close_connection = True
        self.server.fake.stop.wait(60)

    def mode_drip(self, payload: dict[str, Any], stream: bool, attempt: int) -> None:
        self._drip(stream, 0.5, None)

    def mode_trickle(self, payload: dict[str, Any], stream: bool, attempt: int) -> None:
        self._drip(stream, 0.3, 1.8)

    def mode_malformed(self, payload: dict[str, Any], stream: bool, attempt: int) -> None:
        if stream:
            return self._send_sse(_chunk({"content": "Refunds "}) + b"data: {not json\n\n")
        self._send(200, b'{"choices": [{"message": ')

    def mode_nochoices(self, payload: dict[str, Any], stream: bool, attempt: int) -> None:
        if stream:
            return self._send_sse(b'data: {"id": "x", "object": "chat.completion.chunk"}\n\n'
                                  b"data: [DONE]\n\n")
        self._send(200, b'{"id": "x", "object": "chat.completion"}')

    def mode_nocontent(self, payload: dict[str, Any], stream: bool, attempt: int) -> None:
        if stream:
            return self._send_sse(_chunk({"content": 42}) + b"data: [DONE]\n\n")
        self._send(200, b'{"choices": [{"index": 0, "message": {"role": "assistant"}}]}')

    def mode_cut(self, payload: dict[str, Any], stream: bool, attempt: int) -> None:
        self.close_connection = True
        if not stream:
            body = _completion(ANSWER)
            self._head(200, "application/json", {"Content-Length": str(len(body) + 100)})
            self.wfile.write(body)
            return
        self._head(200, "text/event-stream", {"Connection": "close"})
        self.wfile.write(_chunk({"content": PIECES[0]}) + _chunk({"content": PIECES[1]}))

    def mode_cutchunked(self, payload: dict[str, Any], stream: bool, attempt: int) -> None:
        self.close_connection = True
        self._head(200, "text/event-stream", {"Transfer-Encoding": "chunked"})
        for piece in PIECES[:2]:
            event = _chunk({"content": piece})
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))

    def mode_nodone(self, payload: dict[str, Any], stream: bool, attempt: int) -> None:
        self.close_connection = True
        self._head(200, "text/event-stream", {"Connection": "close"})
        self.wfile.write(b"".join(_chunk({"content": p}) for p in PIECES) + _chunk({}, "stop"))
        self.wfile.flush()
        self.server.fake.stop.wait(60)

    def mode_streamerror(self, payload: dict[str, Any], stream: bool, attempt: int) -> None:
        self._send_sse(_chunk({"content": PIECES[0]})
                       + b'data: {"error": {"message": "model overloaded"}}\n\n')

    # Condensing requests (their system message asks for a "standalone question") meet the
    # fault; answer requests get "echo", so a test sees what was retrieved for the rewrite.
    def _condensing(self, payload: dict[str, Any]) -> bool:
        return "standalone question" in payload["messages"][0]["content"]

    def mode_rewrite(self, payload: dict[str, Any], stream: bool, attempt: int) -> None:
        if self._condensing(payload):
            return self._answer(f"Standalone question: {REWRITE}", False)
        self.mode_echo(payload, stream, attempt)

    def mode_slowrewrite(self, payload: dict[str, Any], stream: bool, attempt: int) -> None:
        if self._condensing(payload):
            return self.mode_hang(payload, stream, attempt)
        self.mode_echo(payload, stream, attempt)

    def mode_badrewrite(self, payload: dict[str, Any], stream: bool, attempt: int) -> None:
        if self._condensing(payload):
            return self.mode_http500(payload, stream, attempt)
        self.mode_echo(payload, stream, attempt)

    def mode_emptyrewrite(self, payload: dict[str, Any], stream: bool, attempt: int) -> None:
        if self._condensing(payload):
            return self._answer("  \n", False)
        self.mode_echo(payload, stream, attempt)

    def mode_halftrue(self, payload: dict[str, Any], stream: bool, attempt: int) -> None:
        prompt = payload["messages"][-1]["content"]
        source = re.search(r'<source n="1"[^>]*>\n(.*?)\n</source>', prompt, re.DOTALL)
        pieces = re.split(r"(?<=[.!?])\s+|\n+", source.group(1) if source else "")
        true = next((s for s in pieces if len(s.split()) >= 8 and s.endswith(".")), "It is.")
        content = f"{true[:-1]} [1]. The moon is made of green cheese [1]."
        if not stream:
            return self._send(200, _completion(content))
        self._head(200, "text/event-stream", {"Transfer-Encoding": "chunked"})
        words = content.split(" ")
        events = [_chunk({"role": "assistant"})]
        events += [_chunk({"content": w + (" " if i < len(words) - 1 else "")})
                   for i, w in enumerate(words)]
        events += [_chunk({}, "stop"), b"data: [DONE]\n\n"]
        for i, event in enumerate(events):
            if i > 1 and self.server.fake.stop.wait(0.1):
                return
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeLLM

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # clients hanging up are normal
            super().handle_error(request, client_address)


def start_fake_llm() -> FakeLLM:
    """Start the server in a background thread; call `.close()` when done."""
    server = _Server(("127.0.0.1", 0), _Handler)
    fake = FakeLLM(port=server.server_address[1], server=server, stop=threading.Event())
    server.fake = fake
    threading.Thread(target=server.serve_forever, name="fake-llm", daemon=True).start()
    return fake


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[FakeLLM]:
    fake = start_fake_llm()
    yield fake
    fake.close()
