"""Generator for any OpenAI-compatible chat-completions endpoint (OpenAI, Ollama, vLLM, llama.cpp's
server, LM Studio), over a synchronous httpx client: the service calls generators from threads.

One deadline (`llm_timeout_s`) bounds a whole call, retries and backoff included. httpx's
timeouts are capped by the time left; the body is read chunk by chunk with the deadline checked
after every chunk; and a watchdog shuts the socket at the deadline, so a server that stalls
mid-body cannot hold a read past it. For `stream()` the time the caller spends between pieces
counts too. Retries (at most `llm_retries`, exponential backoff with jitter) happen only on
connection errors, 429 and 5xx, and in streaming only before the first piece was yielded.
Only GeneratorFailed (502) and GeneratorTimeout (504) escape `generate()` and `stream()`.
"""
from __future__ import annotations

import json
import logging
import random
import socket
import threading
import time
from typing import Any, Iterator, Sequence

import httpx

from app.errors import GeneratorFailed, GeneratorTimeout
from app.prompting import build_messages
from app.settings import Settings
from app.sources import Source

log = logging.getLogger(__name__)

BACKOFF_BASE_S = 0.25
BACKOFF_CAP_S = 4.0
EXCERPT_CHARS = 200


class _Retryable(Exception):
    """A failure worth another attempt: connection error, 429, 5xx, stream lost before any text."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _DeadlinePassed(Exception):
    pass


class OpenAIGenerator:
    name = "openai"

    def __init__(self, settings: Settings, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        self.model: str | None = settings.openai_model
        self._transport = transport
        self._client: httpx.Client | None = None
        base = httpx.URL(settings.openai_base_url.rstrip("/"))
        self._url = f"{base}/chat/completions"
        self._where = str(base.copy_with(username=None, password=None))  # safe to show

    def warm_up(self) -> None:
        """Create the HTTP client (no network call: the backend may come up later)."""
        if self._client is None:
            headers = {"User-Agent": "ragfirst"}
            key = self.settings.openai_api_key
            if key is not None and key.get_secret_value():
                headers["Authorization"] = f"Bearer {key.get_secret_value()}"
            self._client = httpx.Client(headers=headers, transport=self._transport)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def generate(self, question: str, sources: Sequence[Source]) -> str:
        return "".join(self._run(question, sources, stream=False))

    def stream(self, question: str, sources: Sequence[Source]) -> Iterator[str]:
        return self._run(question, sources, stream=True)

    def _run(self, question: str, sources: Sequence[Source], stream: bool) -> Iterator[str]:
        timeout, retries = self.settings.llm_timeout_s, self.settings.llm_retries
        deadline = time.monotonic() + timeout
        messages, _ = build_messages(question, sources, self.settings.context_window,
                                     self.settings.max_answer_tokens)
        payload = {"model": self.settings.openai_model, "messages": messages, "stream": stream,
                   "max_tokens": self.settings.max_answer_tokens,
                   "temperature": self.settings.temperature}
        self.warm_up()
        attempt = 0
        while True:
            yielded = False
            try:
                for piece in self._attempt(payload, deadline):
                    yielded = True
                    yield piece
                return
            except GeneratorFailed:
                raise
            except Exception as exc:  # noqa: BLE001 - nothing else may escape
                if isinstance(exc, (_DeadlinePassed, httpx.TimeoutException)) \
                        or time.monotonic() >= deadline:
                    raise GeneratorTimeout(
                        f"LLM backend did not answer within {timeout:g} s") from None
                if not isinstance(exc, _Retryable):
                    raise GeneratorFailed(f"LLM backend call failed: {exc!r}") from exc
                tries = f"(after {attempt + 1} attempt{'s' if attempt else ''})"
                if yielded or attempt >= retries:
                    raise GeneratorFailed(f"{exc} {tries}") from None
                delay = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** attempt) * random.uniform(0.5, 1.5)
                delay = max(delay, exc.retry_after or 0.0)
                if time.monotonic() + delay >= deadline:  # no time left for another attempt
                    raise GeneratorFailed(f"{exc} {tries}; no time left to retry") from None
                log.warning("LLM attempt %d failed (%s); retrying in %.2f s", attempt + 1, exc, delay)
                time.sleep(delay)
                attempt += 1

    def _attempt(self, payload: dict[str, Any], deadline: float) -> Iterator[str]:
        """One HTTP request; raises _Retryable, GeneratorFailed, _DeadlinePassed or httpx errors."""
        assert self._client is not None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _DeadlinePassed
        try:
            with self._client.stream("POST", self._url, json=payload,
                                     timeout=httpx.Timeout(remaining)) as response:
                watchdog = _watchdog(response, deadline)
                try:
                    if not response.is_success:
                        self._raise_for_status(response, deadline)
                    if payload["stream"] and "json" not in response.headers.get(
                            "content-type", ""):
                        yield from _read_sse(response, deadline)
                    else:  # also a server that ignored "stream": true and sent one JSON answer
                        yield _parse_completion(_read_body(response, deadline))
                finally:
                    if watchdog is not None:
                        watchdog.cancel()
        except httpx.ConnectError as exc:
            raise _Retryable(f"cannot connect to the LLM backend at {self._where}: {exc}") from None
        except (httpx.TimeoutException, httpx.UnsupportedProtocol):
            raise
        except httpx.TransportError as exc:
            raise _Retryable(f"connection to the LLM backend at {self._where} failed: "
                             f"{exc or type(exc).__name__}") from None

    def _raise_for_status(self, response: httpx.Response, deadline: float) -> None:
        text = _read_body(response, deadline, limit=4096).decode("utf-8", "replace")
        excerpt = " ".join(text.split())[:EXCERPT_CHARS]
        message = f"LLM backend answered HTTP {response.status_code} at {self._where}: {excerpt}"
        if response.status_code == 429 or response.status_code >= 500:
            raise _Retryable(message, _retry_after(response))
        raise GeneratorFailed(message)


def _watchdog(response: httpx.Response, deadline: float) -> threading.Timer | None:
    """Shut the response's socket at the deadline: a blocked read then returns at once."""
    network_stream = response.extensions.get("network_stream")
    sock = network_stream.get_extra_info("socket") if network_stream is not None else None
    if not isinstance(sock, socket.socket):
        return None  # e.g. a test transport: the per-chunk deadline checks still apply

    def cut() -> None:
        try:  # on a duplicate descriptor: safe for TLS sockets and for the reading thread
            with socket.fromfd(sock.fileno(), sock.family, sock.type) as dup:
                dup.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    timer = threading.Timer(max(0.0, deadline - time.monotonic()) + 0.01, cut)
    timer.daemon = True
    timer.start()
    return timer


def _chunks(response: httpx.Response, deadline: float) -> Iterator[bytes]:
    for chunk in response.iter_bytes():
        if time.monotonic() >= deadline:
            raise _DeadlinePassed
        yield chunk
    if time.monotonic() >= deadline:  # the watchdog's shutdown reads as a clean end of body
        raise _DeadlinePassed


def _read_body(response: httpx.Response, deadline: float, limit: int | None = None) -> bytes:
    body = bytearray()
    for chunk in _chunks(response, deadline):
        body += chunk
        if limit is not None and len(body) >= limit:
            break
    return bytes(body)


def _parse_completion(body: bytes) -> str:
    try:
        content = json.loads(body)["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        content = None
    if not isinstance(content, str):
        raise GeneratorFailed(f"LLM backend returned malformed JSON (no choices[0].message."
                              f"content): {body[:EXCERPT_CHARS].decode('utf-8', 'replace')!r}")
    return content


def _sse_events(response: httpx.Response, deadline: float) -> Iterator[str]:
    """The data of each server-sent event; comments, other fields and keep-alives skipped."""
    buffer, data = b"", []
    for chunk in _chunks(response, deadline):
        *lines, buffer = (buffer + chunk).split(b"\n")
        for raw in lines:
            line = raw.rstrip(b"\r").decode("utf-8", "replace")
            if line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
            elif not line and data:  # a blank line ends the event
                yield "\n".join(data)
                data = []
    if buffer.startswith(b"data:"):  # lenient: a last event without its blank line
        data.append(buffer[5:].decode("utf-8", "replace").strip())
    if data:
        yield "\n".join(data)


def _read_sse(response: httpx.Response, deadline: float) -> Iterator[str]:
    """Text deltas of a chat.completion.chunk stream, until [DONE] or a finish_reason."""
    chars = 0
    try:
        for event in _sse_events(response, deadline):
            if event.strip() == "[DONE]":
                return
            piece, finished = _parse_chunk(event)
            if piece:
                chars += len(piece)
                yield piece
            if finished:
                return
    except httpx.TransportError as exc:
        if isinstance(exc, httpx.TimeoutException):
            raise
        raise _Retryable(f"LLM stream was cut off after {chars} characters: {exc}") from None
    raise _Retryable(f"LLM stream was cut off after {chars} characters (no [DONE])")


def _parse_chunk(event: str) -> tuple[str, bool]:
    """(text delta, finished) of one streamed chat.completion.chunk."""
    try:
        chunk = json.loads(event)
    except ValueError:
        chunk = None
    if isinstance(chunk, dict) and "error" in chunk:
        raise GeneratorFailed(f"LLM backend reported an error mid-stream: {str(chunk['error'])[:200]}")
    try:
        choices = chunk["choices"]  # type: ignore[index]
        if not choices:  # e.g. a final usage-only chunk
            return "", False
        content = (choices[0].get("delta") or {}).get("content") or ""
        if not isinstance(content, str):
            raise TypeError
        return content, bool(choices[0].get("finish_reason"))
    except (KeyError, IndexError, TypeError, AttributeError):
        raise GeneratorFailed(f"LLM backend returned malformed stream data: "
                              f"{event[:EXCERPT_CHARS]!r}") from None


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds (the HTTP-date form is ignored)."""
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return None
