"""The Embedder seam: text -> normalized float32 vectors, plus the tokenizer chunking counts with.

Backends (RAG_EMBEDDER):
- `SentenceTransformerEmbedder` ("sentence-transformers", local.py): the real model, in-process,
  on PyTorch (RAG_EMBED_BACKEND=torch); `OnnxEmbedder` (onnx.py): the same model exported to ONNX
  Runtime, fp32 or int8 (RAG_EMBED_BACKEND=onnx, onnx-int8: the default).
- `OpenAIEmbedder` ("openai", openai.py): any OpenAI-compatible /v1/embeddings server, with
  the model's tokenizer on this side (tokenizers.py) to count and keep within its window.
- `HashingEmbedder` ("hashing", hashing.py): deterministic and model-free, for fast tests and
  benchmark stand-ins.

Models load in `warm_up()` (called lazily on first use), never at import time.
"""
from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from ingest.embedders.hashing import HashingEmbedder
from ingest.embedders.local import EncodeQueue, SentenceTransformerEmbedder, resolve_model_path
from ingest.embedders.onnx import OnnxEmbedder
from ingest.embedders.openai import OpenAIEmbedder, RemoteOptions
from ingest.settings import IngestSettings, known_tokenizer

__all__ = ["Embedder", "EncodeQueue", "HashingEmbedder", "OnnxEmbedder", "OpenAIEmbedder",
           "RemoteOptions",
           "SentenceTransformerEmbedder", "build_embedder", "resolve_model_path"]


class Embedder(Protocol):
    model_id: str  # what the index records; opening it with another id is refused
    # True when embedding one text keeps every core busy (torch's OpenMP team): the service
    # then runs no other work of the question beside its embedding.
    uses_all_cores: bool

    @property
    def dim(self) -> int: ...

    @property
    def max_tokens(self) -> int:
        """Tokens of text (special tokens excluded) the model reads before it truncates."""
        ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text, special tokens excluded, as the model would see them."""
        ...

    def embed(self, texts: Sequence[str], *, urgent: bool = False) -> np.ndarray:
        """A (len(texts), dim) float32 matrix of L2-normalized rows. `urgent`: a user waits
        for it (a question, an answer's check), so a backend may serve it ahead of bulk work
        (an ingest)."""
        ...


def build_embedder(settings: IngestSettings) -> Embedder:
    """The embedder the settings name."""
    batch = {"batch_size": settings.embed_batch_size} if settings.embed_batch_size else {}
    if settings.embedder == "hashing":
        return HashingEmbedder()
    if settings.embedder == "openai":
        assert settings.embed_base_url and settings.embed_model  # the settings check them
        key = settings.embed_api_key.get_secret_value() if settings.embed_api_key else None
        return OpenAIEmbedder(RemoteOptions(
            settings.embed_base_url, settings.embed_model,
            tokenizer=settings.embed_tokenizer or known_tokenizer(settings.embed_model) or "",
            api_key=key or None, max_tokens=settings.embed_max_tokens, **batch,
            timeout_s=settings.embed_timeout_s,
            retries=settings.embed_retries, allow_download=settings.allow_model_download))
    if settings.embed_backend == "torch":
        return SentenceTransformerEmbedder(settings.embedding_model, **batch,
                                           allow_download=settings.allow_model_download)
    return OnnxEmbedder(settings.embedding_model, quantized=settings.embed_backend == "onnx-int8",
                        cache_dir=settings.embed_cache_dir, **batch,
                        allow_download=settings.allow_model_download)
