"""The remote embedder: any OpenAI-compatible `POST {base_url}/embeddings` (OpenAI, Ollama, vLLM,
TEI, Infinity, llama.cpp's server), so the model can run on a GPU server while ingest and the
service run anywhere.

- Batches of `batch_size` texts per request, sent one after another.
- One deadline (`timeout_s`) per batch bounds its request, every retry and backoff: a
  question (one batch) waits at most that long, and an ingest's checkpoint of 512 texts is not
  failed for being many batches (llama.cpp's server on this 2-core machine embedded 29 chunks a
  second when it was quiet, 2.4 when it was busy: 512 then take 3.5 minutes). Retries (at most `retries` per batch) on connection
  errors, 429 and 5xx, with jittered exponential backoff; a Retry-After is honoured, unless it
  ends past the deadline (then the call fails at once, saying so). Nothing else is retried: 4xx and unusable answers fail.
- Answers are checked: JSON, one embedding per text (placed by its `index` field), all of one
  size (the size of the first answer this embedder got), finite and non-zero. Rows are
  L2-normalized here: servers differ (llama.cpp's returns raw mean-pooled vectors).
- The window: tokens are counted on this side with the model's tokenizer (tokenizers.py); a
  text over `max_tokens` is cut to it before sending, and logged (an ingest also reports it
  under "truncated"), so a server never truncates silently. Chunks never are: the chunker caps
  them at `max_tokens`.
- `urgent` needs no lane of its own: each call goes out on its caller's thread and connection,
  so a question never waits behind an ingest's batches here (the server schedules both).
Every failure is an EmbedderUnavailableError (a size that changed: IndexMismatchError), one
line that names the URL; the index is untouched, since ingest commits only embedded vectors.
"""
from __future__ import annotations

import base64
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import httpx
import numpy as np

from ingest.embedders.tokenizers import Tokenizer, load_tokenizer
from ingest.errors import EmbedderUnavailableError, IndexMismatchError
from ingest.remote_http import (DeadlinePassed, backoff_s, connection_reason, read_body,
                                retry_after_s, watchdog)

log = logging.getLogger("ragfirst.ingest")

EXCERPT_CHARS = 200
MAX_BODY_BYTES = 512 * 1024 * 1024  # an answer bigger than this is not embeddings
_HINTS = {401: "; check RAG_EMBED_API_KEY", 403: "; check RAG_EMBED_API_KEY",
          404: "; check RAG_EMBED_BASE_URL (it ends in /v1) and RAG_EMBED_MODEL"}


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def embeddings_url(base_url: str) -> str:
    """Where the embeddings are asked for, as messages name it (no credentials)."""
    base = httpx.URL(base_url.rstrip("/"))
    return str(base.copy_with(username=None, password=None)) + "/embeddings"


def model_id_for(base_url: str, model: str) -> str:
    """What the index records: the model's name at its server's address (host and port, no
    scheme, path or credentials). A name alone would let two servers that serve different
    models under one name ("embed", "default") share an index."""
    url = httpx.URL(base_url)
    port = f":{url.port}" if url.port else ""
    return f"openai:{model}@{url.host}{port}"


@dataclass(frozen=True)
class RemoteOptions:
    """What the remote embedder needs (the settings RAG_EMBED_*), checked when built."""

    base_url: str
    model: str
    tokenizer: str  # what load_tokenizer loads: a folder, a hub id, or cl100k_base
    api_key: str | None = field(default=None, repr=False)  # sent as a Bearer token
    max_tokens: int | None = None  # None: the tokenizer's
    batch_size: int = 32
    timeout_s: float = 60.0  # per batch, retries included
    retries: int = 3  # extra attempts per batch
    allow_download: bool = False  # the tokenizer from the hub, if not cached

    def __post_init__(self) -> None:
        if self.timeout_s <= 0 or self.retries < 0 or self.batch_size < 1:
            raise ValueError("timeout_s and batch_size must be positive, retries at least 0")


class OpenAIEmbedder:
    uses_all_cores = False  # the server embeds

    def __init__(self, options: RemoteOptions) -> None:
        self.options = options
        self.url = embeddings_url(options.base_url)  # as messages name it
        self._post_url = options.base_url.rstrip("/") + "/embeddings"  # with credentials
        self.model_id = model_id_for(options.base_url, options.model)
        self._tokenizer: Tokenizer | None = None
        self._client: httpx.Client | None = None
        self._dim: int | None = None  # learnt from the first answer
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        """Load the tokenizer and make the HTTP client (no network call: the server may come up
        later)."""
        with self._lock:
            if self._tokenizer is None:
                tokenizer = load_tokenizer(self.options.tokenizer,
                                           allow_download=self.options.allow_download)
                if self.options.max_tokens is None and tokenizer.default_max_tokens is None:
                    raise EmbedderUnavailableError(
                        f"the tokenizer {self.options.tokenizer!r} does not say how many tokens "
                        f"{self.options.model!r} reads: set RAG_EMBED_MAX_TOKENS")
                headers = {"User-Agent": "ragfirst"}
                if self.options.api_key:
                    headers["Authorization"] = f"Bearer {self.options.api_key}"
                self._client = httpx.Client(headers=headers)
                self._tokenizer = tokenizer

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    @property
    def tokenizer(self) -> Tokenizer:
        self.warm_up()
        assert self._tokenizer is not None
        return self._tokenizer

    @property
    def max_tokens(self) -> int:
        window = self.options.max_tokens or self.tokenizer.default_max_tokens
        assert window is not None  # warm_up refuses a tokenizer that does not say
        return window

    @property
    def dim(self) -> int:
        if self._dim is None:
            self.embed(["dimension probe"])
        assert self._dim is not None
        return self._dim

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.tokenizer.count(texts)

    def embed(self, texts: Sequence[str], *, urgent: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        texts = self._within_window(list(texts))
        size, timeout_s = self.options.batch_size, self.options.timeout_s
        parts = [self._request(texts[i:i + size], time.monotonic() + timeout_s)
                 for i in range(0, len(texts), size)]
        return np.ascontiguousarray(np.vstack(parts), dtype=np.float32)

    def _within_window(self, texts: list[str]) -> list[str]:
        """Texts over the window cut to it here, never by the server unseen."""
        limit = self.max_tokens
        over = [i for i, n in enumerate(self.count_tokens(texts)) if n > limit]
        for i in over:
            texts[i] = self.tokenizer.cut(texts[i], limit)
        if over:
            log.warning("%d text(s) over the %d-token window of %s were cut to it before "
                        "embedding", len(over), limit, self.model_id)
        return texts

    def _request(self, batch: list[str], deadline: float) -> np.ndarray:
        """One batch, retried as the module says; (len(batch), dim) normalized rows."""
        attempt = 0
        while True:
            try:
                return self._check(self._attempt(batch, deadline), len(batch))
            except _Retryable as exc:
                if time.monotonic() >= deadline:  # e.g. the watchdog cut the connection
                    raise self._timeout() from None
                tries = f"after {attempt + 1} attempt{'s' if attempt else ''}"
                if attempt >= self.options.retries:
                    raise self._error(f"{exc} ({tries})") from None
                delay = backoff_s(attempt, exc.retry_after)
                if time.monotonic() + delay >= deadline:
                    raise self._error(f"{exc} ({tries}; retrying in {delay:.1f} s would pass "
                                      f"the {self.options.timeout_s:g} s deadline)") from None
                log.warning("embedding at %s failed (%s); retrying in %.2f s", self.url, exc,
                            delay)
                time.sleep(delay)
                attempt += 1
            except (DeadlinePassed, httpx.TimeoutException):
                raise self._timeout() from None

    def _timeout(self) -> EmbedderUnavailableError:
        return self._error(f"no answer within the {self.options.timeout_s:g} s deadline "
                           "(RAG_EMBED_TIMEOUT_S)")

    def _error(self, what: str) -> EmbedderUnavailableError:
        return EmbedderUnavailableError(f"embedding server {self.url}: {what}")

    def _attempt(self, batch: list[str], deadline: float) -> Any:
        """One POST: the parsed JSON answer, or _Retryable, EmbedderUnavailableError,
        DeadlinePassed, httpx.TimeoutException."""
        self.warm_up()
        assert self._client is not None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlinePassed
        payload = {"model": self.options.model, "input": batch}
        try:
            with self._client.stream("POST", self._post_url, json=payload,
                                     timeout=httpx.Timeout(remaining)) as response:
                timer = watchdog(response, deadline)
                try:
                    body = read_body(response, deadline, limit=MAX_BODY_BYTES)
                finally:
                    if timer is not None:
                        timer.cancel()
        except httpx.TimeoutException:
            raise
        except httpx.UnsupportedProtocol as exc:
            raise self._error(f"cannot be reached: {exc}") from None
        except httpx.ConnectError as exc:
            raise _Retryable(f"cannot connect: {connection_reason(exc)}") from None
        except httpx.TransportError as exc:
            raise _Retryable(f"connection failed: {exc or type(exc).__name__}") from None
        if not response.is_success:
            self._refuse(response, body)
        try:
            return json.loads(body)
        except ValueError:
            raise self._error(f"answered malformed JSON: {_excerpt(body)!r}") from None

    def _refuse(self, response: httpx.Response, body: bytes) -> None:
        status = response.status_code
        message = f"answered HTTP {status}: {_excerpt(body)}"
        if status == 429 or status >= 500:
            raise _Retryable(message, retry_after_s(response))
        raise self._error(message + _HINTS.get(status, ""))

    def _check(self, answer: Any, n: int) -> np.ndarray:
        """The answer's vectors in input order, checked and normalized."""
        rows = _rows(answer, n)
        if isinstance(rows, str):
            raise self._error(f"answered JSON without usable embeddings: {rows}")
        sizes = sorted({len(r) for r in rows})
        if len(sizes) > 1:
            raise self._error(f"answered vectors of different sizes {sizes} in one answer")
        with self._lock:
            if self._dim is None:
                self._dim = sizes[0]
        if sizes[0] != self._dim:
            raise IndexMismatchError(
                f"embedding server {self.url} now answers vectors of {sizes[0]} numbers where "
                f"it answered {self._dim}: the model {self.options.model!r} changed under its "
                "name. Restart with the model the index was built with, or rebuild the index "
                "with `python -m ingest --rebuild`.")
        vectors = np.asarray(rows, dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        if not np.all(np.isfinite(norms)) or np.any(norms == 0):
            raise self._error("answered a vector that is zero or not finite")
        return vectors / norms


def _rows(answer: Any, n: int) -> list[list[float]] | str:
    """The `data[*].embedding` lists placed by their `index` (list order if none has one), or
    what is wrong with the answer."""
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, list) or len(data) != n:
        got = f"{len(data)} items" if isinstance(data, list) else "no data list"
        return f"{got} for {n} texts"
    if all(isinstance(d, dict) and "index" not in d for d in data):
        data = [{**d, "index": i} for i, d in enumerate(data)]
    rows: list[Any] = [None] * n
    for item in data:
        index = item.get("index") if isinstance(item, dict) else None
        vector = item.get("embedding") if isinstance(item, dict) else None
        if isinstance(vector, str):  # encoding_format "base64": little-endian float32
            try:
                vector = np.frombuffer(base64.b64decode(vector), dtype="<f4").tolist()
            except ValueError:  # not base64, or not whole float32s
                vector = None
        if not (isinstance(index, int) and 0 <= index < n and rows[index] is None
                and isinstance(vector, list) and vector
                and all(isinstance(x, (int, float)) for x in vector)):
            return f"item {_excerpt(json.dumps(item).encode())!r}"
        rows[index] = vector
    return rows


def _excerpt(body: bytes) -> str:
    return " ".join(body[:EXCERPT_CHARS * 2].decode("utf-8", "replace").split())[:EXCERPT_CHARS]
