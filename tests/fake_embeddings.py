"""The fake server's `/v1/embeddings` (tests/fake_llm.py serves it under the same
"/<mode>/<tag>/v1" base URLs): the faults a real embedding server cannot be made to produce.

Vectors are the hashing embedder's (texts that share words are close), scaled by 3 (a server
need not normalize) and listed in reverse order with their `index` (the client must place them).

Modes:
  ok          EMBED_DIM-number vectors
  http500     always 500
  flaky       500 on the first two attempts, then like "ok"
  429once     429 with "Retry-After: 1" on the first attempt, then like "ok"
  429long     always 429 with "Retry-After: 3600"
  half        like "ok" on the first attempt, then always 500 (a server lost mid-ingest)
  401         always 401 (a wrong key)
  hang        reads the request, never answers
  slow        like "ok", after 0.5 s
  wrongdim    like "ok" with vectors of 2 x EMBED_DIM numbers (another model under the name)
  mixeddim    one vector shorter than the others
  malformed   200 with a body that is not JSON
  nodata      200 with JSON without "data"
  switch      whatever mode `set_mode(url, mode)` last chose for this URL
"""
from __future__ import annotations

import json
from typing import Any

from ingest.embedders import HashingEmbedder

EMBED_DIM = 384
_HASHING = {dim: HashingEmbedder(dim=dim) for dim in (EMBED_DIM, 2 * EMBED_DIM)}


def fake_vectors(texts: list[str], dim: int = EMBED_DIM) -> list[list[float]]:
    """What the "ok" mode answers for `texts`, before the reordering (unnormalized)."""
    return (_HASHING[dim].embed(texts) * 3.0).tolist()


def _answer(vectors: list[list[float]]) -> bytes:
    data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
    return json.dumps({"object": "list", "model": "fake", "data": data[::-1],
                       "usage": {"prompt_tokens": 0, "total_tokens": 0}}).encode()


def _texts(payload: dict[str, Any]) -> list[str]:
    texts = payload.get("input")
    return [texts] if isinstance(texts, str) else list(texts)


class EmbeddingModes:
    """Mixed into the fake server's request handler (whose `_send` writes the answer):
    `embed_<mode>(payload, attempt)`."""

    _send: Any
    server: Any

    def embed_ok(self, payload: dict[str, Any], attempt: int) -> None:
        self._send(200, _answer(fake_vectors(_texts(payload))))

    def embed_http500(self, payload: dict[str, Any], attempt: int) -> None:
        self._send(500, b'{"error": {"message": "internal boom"}}')

    def embed_flaky(self, payload: dict[str, Any], attempt: int) -> None:
        if attempt <= 2:
            return self.embed_http500(payload, attempt)
        self.embed_ok(payload, attempt)

    def embed_half(self, payload: dict[str, Any], attempt: int) -> None:
        if attempt == 1:
            return self.embed_ok(payload, attempt)
        self.embed_http500(payload, attempt)

    def embed_429once(self, payload: dict[str, Any], attempt: int) -> None:
        if attempt == 1:
            return self._send(429, b'{"error": {"message": "rate limited"}}',
                              extra={"Retry-After": "1"})
        self.embed_ok(payload, attempt)

    def embed_429long(self, payload: dict[str, Any], attempt: int) -> None:
        self._send(429, b'{"error": {"message": "rate limited"}}', extra={"Retry-After": "3600"})

    def embed_401(self, payload: dict[str, Any], attempt: int) -> None:
        self._send(401, b'{"error": {"message": "Incorrect API key provided"}}')

    def embed_hang(self, payload: dict[str, Any], attempt: int) -> None:
        self.close_connection = True
        self.server.fake.stop.wait(60)

    def embed_slow(self, payload: dict[str, Any], attempt: int) -> None:
        if not self.server.fake.stop.wait(0.5):
            self.embed_ok(payload, attempt)

    def embed_wrongdim(self, payload: dict[str, Any], attempt: int) -> None:
        self._send(200, _answer(fake_vectors(_texts(payload), 2 * EMBED_DIM)))

    def embed_mixeddim(self, payload: dict[str, Any], attempt: int) -> None:
        vectors = fake_vectors(_texts(payload))
        vectors[0] = vectors[0][:-1]
        self._send(200, _answer(vectors))

    def embed_malformed(self, payload: dict[str, Any], attempt: int) -> None:
        self._send(200, b'{"object": "list", "data": [{"embedding": [0.1, ')

    def embed_nodata(self, payload: dict[str, Any], attempt: int) -> None:
        self._send(200, b'{"object": "list", "model": "fake"}')
