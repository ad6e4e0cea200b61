"""A deterministic, model-free embedder for fast tests and benchmark stand-ins."""
from __future__ import annotations

import hashlib
import re
from typing import Sequence

import numpy as np

_TOKEN_RE = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_WORD_RE = re.compile(r"\w+", re.UNICODE)


class HashingEmbedder:
    """Feature hashing of lower-cased word tokens: deterministic, fast, no model.

    Texts that share words get similar vectors, which is enough for tests of the pipeline.
    Tokens are words and punctuation marks; a word longer than 16 characters counts as one
    token per 16 characters, roughly like a word-piece tokenizer would split it.
    """
    uses_all_cores = False

    model_id = "hashing-v1"

    def __init__(self, dim: int = 384, max_tokens: int = 254) -> None:
        self._dim = dim
        self._max_tokens = max_tokens

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [sum(-(-len(t) // 16) for t in _TOKEN_RE.findall(text)) for text in texts]

    def embed(self, texts: Sequence[str], *, urgent: bool = False) -> np.ndarray:
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in _WORD_RE.findall(text.lower()):
                h = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")
                out[row, h % self._dim] += 1.0 if (h >> 63) else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return out / norms
