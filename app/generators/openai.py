"""Generator for any OpenAI-compatible chat-completions endpoint (OpenAI, Ollama, vLLM, llama.cpp's
server, LM Studio), over a synchronous httpx client: the service calls generators from threads.

One deadline (`llm_timeout_s`) bounds a whole call, retries and backoff included. httpx's
timeouts are capped by the time left; a JSON body is read chunk by chunk with the deadline
checked after every chunk, a stream (parsed by httpx-sse) after every event; and a watchdog
shuts the socket at the deadline, so a server that stalls or drips bytes mid-body cannot hold a
read past it. For `stream()` the time the caller spends between pieces counts too. Retries (at most `llm_retries`, exponential backoff with jitter) happen only on
connection errors, 429 and 5xx, and in streaming only before the first piece was yielded. A
stream must be a `text/event-stream` whose events end with a blank line, as the SSE standard
(and httpx-sse) has it: every server we name sends that; one labelled otherwise fails at once.
Only GeneratorFailed (502) and GeneratorTimeout (504) escape `generate()` and `stream()`.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import httpx
from httpx_sse import EventSource, SSEError

from app.errors import GeneratorFailed, GeneratorTimeout
from app.conversation import Turn
from app.generators import TextStream
from app.prompting import CONDENSE_TOKENS, build_messages, condense_messages
from app.sources import Source
from ingest.remote_http import (DeadlinePassed, backoff_s, connection_reason, read_body,
                                retry_after_s, watchdog)

if TYPE_CHECKING:
    from app.settings import Settings

log = logging.getLogger(__name__)

# Less time left than this after a backoff: another attempt could not answer, so the call fails
# with the error it met rather than with a timeout that hides it.
MIN_ATTEMPT_S = 0.1
EXCERPT_CHARS = 200


class _Retryable(Exception):
    """A failure worth another attempt: connection error, 429, 5xx, stream lost before any text."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class OpenAIOptions:
    """What the generator needs: where the endpoint is, which model, how long to wait, and
    the prompt's budget (the settings RAG_OPENAI_*, RAG_LLM_*, RAG_CONTEXT_WINDOW...)."""

    base_url: str
    model: str
    timeout_s: float  # the whole call, retries included
    retries: int  # extra attempts on connection errors, 429 and 5xx
    context_window: int
    max_answer_tokens: int
    temperature: float
    api_key: str | None = field(default=None, repr=False)  # sent as a Bearer token

    def __post_init__(self) -> None:
        if self.timeout_s <= 0 or self.retries < 0:
            raise ValueError("timeout_s must be positive and retries at least 0")

    @classmethod
    def from_settings(cls, s: "Settings") -> "OpenAIOptions":
        key = s.openai_api_key.get_secret_value() if s.openai_api_key else None
        return cls(base_url=s.openai_base_url, model=s.openai_model, timeout_s=s.llm_timeout_s,
                   retries=s.llm_retries, context_window=s.context_window,
                   max_answer_tokens=s.max_answer_tokens, temperature=s.temperature,
                   api_key=key or None)


class OpenAIGenerator:
    name = "openai"

    def __init__(self, options: OpenAIOptions,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.options = options
        self.model: str | None = options.model
        self._transport = transport
        self._client: httpx.Client | None = None
        base = httpx.URL(options.base_url.rstrip("/"))
        self._url = f"{base}/chat/completions"
        # for the log only: a client is told "the LLM backend", never its internal address
        self._where = str(base.copy_with(username=None, password=None))

    def warm_up(self) -> None:
        """Create the HTTP client (no network call: the backend may come up later)."""
        if self._client is None:
            headers = {"User-Agent": "ragfirst"}
            if self.options.api_key:
                headers["Authorization"] = f"Bearer {self.options.api_key}"
            self._client = httpx.Client(headers=headers, transport=self._transport)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def generate(self, question: str, sources: Sequence[Source],
                 deadline: float | None = None, history: Sequence[Turn] = ()) -> str:
        return "".join(self._answer(question, sources, deadline, history, stream=False))

    def stream(self, question: str, sources: Sequence[Source], deadline: float | None = None,
               history: Sequence[Turn] = ()) -> TextStream:
        return self._answer(question, sources, deadline, history, stream=True)

    def _answer(self, question: str, sources: Sequence[Source], deadline: float | None,
                history: Sequence[Turn], stream: bool) -> TextStream:
        o = self.options
        messages, _ = build_messages(question, sources, o.context_window, o.max_answer_tokens,
                                     history)
        payload = {"model": o.model, "messages": messages, "stream": stream,
                   "max_tokens": o.max_answer_tokens, "temperature": o.temperature}
        return self._run(payload, deadline or time.monotonic() + o.timeout_s, o.retries)

    def condense(self, question: str, history: Sequence[Turn], deadline: float) -> str:
        """The follow-up rewritten as a standalone question (one attempt, no retry: the
        model-free rewrite is the fallback, and the answer still needs the time left)."""
        payload = {"model": self.options.model, "stream": False, "max_tokens": CONDENSE_TOKENS,
                   "temperature": 0.0, "messages": condense_messages(question, history)}
        return "".join(self._run(payload, deadline, retries=0))

    def _run(self, payload: dict[str, Any], deadline: float, retries: int) -> TextStream:
        timeout = round(max(0.0, deadline - time.monotonic()), 1)
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
                if isinstance(exc, (DeadlinePassed, httpx.TimeoutException)) \
                        or time.monotonic() >= deadline:
                    raise GeneratorTimeout(
                        f"LLM backend did not answer within {timeout:g} s") from None
                if not isinstance(exc, _Retryable):
                    # the type and a short message: an encoding error's repr holds the prompt
                    raise GeneratorFailed(f"LLM backend call failed: {type(exc).__name__}: "
                                          f"{str(exc)[:200]}") from exc
                tries = f"(after {attempt + 1} attempt{'s' if attempt else ''})"
                if yielded or attempt >= retries:
                    raise GeneratorFailed(f"{exc} {tries}") from None
                delay = backoff_s(attempt, exc.retry_after)
                if time.monotonic() + delay + MIN_ATTEMPT_S >= deadline:  # no time to retry
                    raise GeneratorFailed(f"{exc} {tries}; no time left to retry") from None
                log.warning("LLM attempt %d failed (%s); retrying in %.2f s", attempt + 1, exc, delay)
                time.sleep(delay)
                attempt += 1

    def _attempt(self, payload: dict[str, Any], deadline: float) -> Iterator[str]:
        """One HTTP request; raises _Retryable, GeneratorFailed, DeadlinePassed or httpx errors."""
        assert self._client is not None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlinePassed
        try:
            with self._client.stream("POST", self._url, json=payload,
                                     timeout=httpx.Timeout(remaining)) as response:
                timer = watchdog(response, deadline)
                try:
                    if not response.is_success:
                        self._raise_for_status(response, deadline)
                    if payload["stream"] and "json" not in response.headers.get(
                            "content-type", ""):
                        yield from _read_sse(response, deadline)
                    else:  # also a server that ignored "stream": true and sent one JSON answer
                        yield _parse_completion(read_body(response, deadline))
                finally:
                    if timer is not None:
                        timer.cancel()
        except httpx.ConnectError as exc:
            log.warning("cannot connect to the LLM backend at %s: %s", self._where, exc)
            raise _Retryable(f"cannot connect to the LLM backend: "
                             f"{connection_reason(exc)}") from None
        except (httpx.TimeoutException, httpx.UnsupportedProtocol):
            raise
        except httpx.TransportError as exc:
            log.warning("connection to the LLM backend at %s failed: %s", self._where, exc)
            raise _Retryable(f"connection to the LLM backend failed: "
                             f"{exc or type(exc).__name__}") from None

    def _raise_for_status(self, response: httpx.Response, deadline: float) -> None:
        text = read_body(response, deadline, limit=4096).decode("utf-8", "replace")
        excerpt = " ".join(text.split())[:EXCERPT_CHARS]
        log.warning("the LLM backend at %s answered HTTP %d", self._where, response.status_code)
        message = f"LLM backend answered HTTP {response.status_code}: {excerpt}"
        if response.status_code == 429 or response.status_code >= 500:
            raise _Retryable(message, retry_after_s(response))
        raise GeneratorFailed(message)


def _parse_completion(body: bytes) -> str:
    try:
        content = json.loads(body)["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        content = None
    if not isinstance(content, str):
        raise GeneratorFailed(f"LLM backend returned malformed JSON (no choices[0].message."
                              f"content): {body[:EXCERPT_CHARS].decode('utf-8', 'replace')!r}")
    return content


def _read_sse(response: httpx.Response, deadline: float) -> Iterator[str]:
    """Text deltas of a chat.completion.chunk stream, until [DONE] or a finish_reason. Events
    are parsed by httpx-sse (comments and keep-alives skipped); the deadline is checked after
    each one, and the watchdog ends a read that would run past it."""
    chars = 0
    try:
        for event in EventSource(response).iter_sse():
            if time.monotonic() >= deadline:
                raise DeadlinePassed
            if event.data.strip() == "[DONE]":
                return
            piece, finished = _parse_chunk(event.data)
            if piece:
                chars += len(piece)
                yield piece
            if finished:
                return
    except SSEError as exc:  # not an event stream after all
        raise GeneratorFailed(f"LLM backend did not answer with an event stream: {exc}") from None
    except httpx.TransportError as exc:
        if isinstance(exc, httpx.TimeoutException):
            raise
        raise _Retryable(f"LLM stream was cut off after {chars} characters: {exc}") from None
    if time.monotonic() >= deadline:  # the watchdog's shutdown reads as a clean end of body
        raise DeadlinePassed
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
