"""Ingest settings: one pydantic-settings class, read from the environment (prefix RAG_).

The app's Settings extends this class, so a setting means the same thing on both sides.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ingest.chunking import check_overlap
from ingest.errors import SettingsError
from ingest.loaders.base import LoadOptions

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


S = TypeVar("S", bound="IngestSettings")


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/ragfirst, or ~/.cache/ragfirst."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ragfirst"


class IngestSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAG_", extra="ignore")

    @classmethod
    def load(cls: type[S], **overrides: Any) -> S:
        """The settings from the environment (and `overrides`). A value that cannot be used
        raises SettingsError with one line that names the RAG_ variable."""
        try:
            return cls(**overrides)
        except ValidationError as exc:
            raise SettingsError(invalid_settings(exc)) from None

    corpus_dir: Path = Path("corpus")
    index_dir: Path = Path("index")
    # Several document sets, each with its own folder and index (ingest/collections.py says the
    # TOML format). Unset: one collection, `default`, on RAG_CORPUS_DIR and RAG_INDEX_DIR.
    collections_file: Path | None = None

    # Embedding. "sentence-transformers" is the real model, in-process; "openai" any
    # OpenAI-compatible /v1/embeddings server (RAG_EMBED_* below); "hashing" a deterministic,
    # model-free stand-in for fast tests and for building large benchmark indexes.
    embedder: Literal["sentence-transformers", "openai", "hashing"] = "sentence-transformers"
    embedding_model: str = DEFAULT_MODEL  # the local model: a hub id or a local folder
    allow_model_download: bool = False  # never reach a model hub unless asked to
    # How the local model runs: "onnx-int8" (ONNX Runtime, weights quantized to int8: ingest
    # 2.4-2.9x torch's speed, SciFact quality held), "onnx" (ONNX Runtime, torch's vectors) or
    # "torch" (sentence-transformers on PyTorch). The ONNX models are exported from the local
    # weights on first use and kept in RAG_EMBED_CACHE_DIR. Part of the index's model identity.
    embed_backend: Literal["torch", "onnx", "onnx-int8"] = "onnx-int8"
    embed_cache_dir: Path = Field(default_factory=lambda: default_cache_dir() / "onnx")
    # Texts per encode, or per request; unset: the backend's own (torch 10: a whole ingest
    # 13-16% faster than with 32 here; ONNX, which runs texts unpadded, and a server 32).
    embed_batch_size: int | None = Field(None, ge=1, le=4096)
    # Texts embedded between two commits of their vectors: what a killed run can lose at most.
    embed_checkpoint: int = Field(512, ge=1)
    # The remote embedder (RAG_EMBEDDER=openai; README, "A remote embedder"). The key is sent
    # as a Bearer token; OPENAI_API_KEY stands in for it only when the URL is OpenAI's own.
    embed_base_url: str | None = None  # e.g. http://gpu-box:8080/v1 (POSTs go to .../embeddings)
    embed_model: str | None = None  # the model name the server knows
    embed_api_key: SecretStr | None = None
    embed_timeout_s: float = Field(60.0, gt=0)  # one batch: its request, retries and backoff
    embed_retries: int = Field(3, ge=0, le=10)  # extra attempts on connection errors, 429, 5xx
    # What counts the model's tokens (chunk sizes, the window): a local tokenizer folder, a hub
    # id in the local cache, or "cl100k_base". Default: the bundled MiniLM's for all-MiniLM-L6-v2,
    # cl100k_base for OpenAI's text-embedding models; other models must name one.
    embed_tokenizer: str | None = None
    # Tokens (special ones excluded) the model reads; default: what the tokenizer says.
    embed_max_tokens: int | None = Field(None, ge=16)

    # Chunking, counted in the embedding model's own tokens (special tokens excluded).
    # The effective size is capped by the model's window, so the model never truncates a chunk.
    chunk_tokens: int = Field(200, ge=16, le=8192)
    chunk_overlap: int = Field(32, ge=0)

    max_file_bytes: int = Field(50_000_000, ge=1)
    # What a small file may grow into (README, "Formats"): an Office file or EPUB is a zip, and
    # one whose entries would inflate past this is refused (a zip bomb); a spreadsheet (.xlsx,
    # .csv, .tsv) with more non-empty cells than this is refused.
    max_unzipped_bytes: int = Field(100_000_000, ge=1)
    max_sheet_cells: int = Field(1_000_000, ge=1)
    # Read PDF pages that have no text layer (scans) with tesseract (Debian's tesseract-ocr).
    ocr: bool = False
    # What reads a PDF's text layer: PDFium (Chrome's engine, ~10x faster) or pypdf (pure
    # Python). The text is the same on the PDFs we measured (ingest/loaders/pdfium.py).
    pdf_reader: Literal["pdfium", "pypdf"] = "pdfium"

    def load_options(self) -> LoadOptions:
        return LoadOptions(max_unzipped_bytes=self.max_unzipped_bytes,
                           max_sheet_cells=self.max_sheet_cells, ocr=self.ocr,
                           pdf_reader=self.pdf_reader)

    # Where the index lives: "sqlite" (embedded: one database file + a FAISS file in
    # RAG_INDEX_DIR) or "postgres" (PostgreSQL with pgvector at RAG_DATABASE_URL, for several
    # API replicas on one database). Tables go in RAG_DATABASE_SCHEMA, created if missing.
    store: Literal["sqlite", "postgres"] = "sqlite"
    database_url: str | None = None  # a libpq URI: postgresql://user:pw@host:5432/db, ?host=/socket
    database_schema: str = Field("ragfirst", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    database_pool_size: int = Field(8, ge=1, le=256)  # connections each process keeps at most
    # The HNSW index (pgvector's, and the SQLite store's FAISS one past RAG_ANN_MIN_CHUNKS):
    # graph degree and build-time candidate list (read when the index is built), and the
    # query-time candidate list (recall against speed, read per search). Unset ef_search: each
    # store's measured default (100 on pgvector, 400 on FAISS: README, "Dense search past a
    # million chunks"), as the same recall needs a different value on each.
    hnsw_m: int = Field(16, ge=2, le=100)
    hnsw_ef_construction: int = Field(64, ge=4, le=1000)
    hnsw_ef_search: int | None = Field(None, ge=1, le=1000)
    # The SQLite store's FAISS index: exhaustive (exact) below this many chunks, HNSW (the
    # RAG_HNSW_* settings above) from there on. README, "Dense search past a million chunks".
    ann_min_chunks: int = Field(250_000, ge=1)
    # The SQLite store's BM25 ranking: "memory" (posting lists held in memory, built in the
    # background after each commit; FTS5 answers until it is ready) or "fts5" (SQLite's own
    # full-text index on every request: no memory, slower on big indexes). README, "Speed".
    lexical_index: Literal["memory", "fts5"] = "memory"

    @field_validator("collections_file", mode="before")
    @classmethod
    def _empty_is_none(cls, v):
        # `RAG_COLLECTIONS_FILE=` (docker-compose's unset variable) means no file, not ".".
        return None if isinstance(v, str) and not v.strip() else v

    @model_validator(mode="after")
    def _overlap_below_size(self) -> "IngestSettings":
        try:
            check_overlap(self.chunk_overlap, self.chunk_tokens)
        except ValueError as exc:
            raise ValueError(f"{exc}; lower RAG_CHUNK_OVERLAP or raise RAG_CHUNK_TOKENS") from None
        return self

    @model_validator(mode="after")
    def _remote_embedder(self) -> "IngestSettings":
        if self.embedder != "openai":
            return self
        if not self.embed_base_url:
            raise ValueError("RAG_EMBEDDER=openai needs RAG_EMBED_BASE_URL (an OpenAI-compatible "
                             "API such as http://gpu-box:8080/v1)")
        if not self.embed_base_url.startswith(("http://", "https://")):
            raise ValueError(f"RAG_EMBED_BASE_URL must be an http:// or https:// URL, not "
                             f"{self.embed_base_url!r}")
        if not self.embed_model:
            raise ValueError("RAG_EMBEDDER=openai needs RAG_EMBED_MODEL (the model name the "
                             "server knows, e.g. text-embedding-3-small)")
        if not (self.embed_tokenizer or known_tokenizer(self.embed_model)):
            raise ValueError(f"RAG_EMBED_TOKENIZER must name the tokenizer of "
                             f"{self.embed_model!r} (a local folder, a hub id in the local cache, "
                             "or cl100k_base): chunks are counted in the model's own tokens")
        at_openai = urlsplit(self.embed_base_url).hostname == "api.openai.com"
        if self.embed_api_key is None and at_openai and os.environ.get("OPENAI_API_KEY"):
            self.embed_api_key = SecretStr(os.environ["OPENAI_API_KEY"])
        return self


    @model_validator(mode="after")
    def _database_for_postgres(self) -> "IngestSettings":
        if self.store == "postgres" and not self.database_url:
            raise ValueError("RAG_STORE=postgres needs RAG_DATABASE_URL (a libpq URI such as "
                             "postgresql://user:password@host:5432/ragfirst)")
        if self.database_url and not self.database_url.startswith(("postgresql://",
                                                                   "postgres://")):
            raise ValueError("RAG_DATABASE_URL must be a postgresql:// URI")
        return self

    @property
    def index_name(self) -> str:
        """The index as messages name it: its folder, or its database (no password)."""
        if self.store == "postgres":
            from ingest.store.postgres.connect import describe
            return describe(self.database_url or "", self.database_schema)
        return str(self.index_dir)


# Models served remotely whose tokenizer is known without a setting: the bundled MiniLM (under
# its hub id, its short name, or Ollama's), and OpenAI's text-embedding models (cl100k_base).
_MINILM_NAMES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2", "all-minilm",
                 "all-minilm:l6-v2", "all-minilm:latest", "all-minilm:22m"}


def known_tokenizer(model: str) -> str | None:
    """RAG_EMBED_TOKENIZER's default for a model served remotely, None when it is unknown."""
    if model.lower() in _MINILM_NAMES:
        return DEFAULT_MODEL
    if model.startswith(("text-embedding-3-", "text-embedding-ada-002")):
        return "cl100k_base"
    return None


def invalid_settings(exc: ValidationError) -> str:
    """A settings error in the variables' own names, for a one-line `error:` message."""
    return "invalid settings: " + "; ".join(
        (f"RAG_{'_'.join(map(str, e['loc'])).upper()}: " if e["loc"] else "") + e["msg"]
        for e in exc.errors())
