"""Ingest settings: one pydantic-settings class, read from the environment (prefix RAG_).

The app's Settings extends this class, so a setting means the same thing on both sides.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ingest.chunking import check_overlap
from ingest.errors import SettingsError

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


S = TypeVar("S", bound="IngestSettings")


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

    # Embedding. "sentence-transformers" is the real model; "hashing" is a deterministic,
    # model-free stand-in for fast tests and for building large benchmark indexes.
    embedder: Literal["sentence-transformers", "hashing"] = "sentence-transformers"
    embedding_model: str = DEFAULT_MODEL  # a hub id or a local folder
    allow_model_download: bool = False  # never reach a model hub unless asked to
    embed_batch_size: int = Field(32, ge=1, le=4096)
    # Texts embedded between two commits of their vectors: what a killed run can lose at most.
    embed_checkpoint: int = Field(512, ge=1)

    # Chunking, counted in the embedding model's own tokens (special tokens excluded).
    # The effective size is capped by the model's window, so the model never truncates a chunk.
    chunk_tokens: int = Field(200, ge=16, le=8192)
    chunk_overlap: int = Field(32, ge=0)

    max_file_bytes: int = Field(50_000_000, ge=1)

    @model_validator(mode="after")
    def _overlap_below_size(self) -> "IngestSettings":
        try:
            check_overlap(self.chunk_overlap, self.chunk_tokens)
        except ValueError as exc:
            raise ValueError(f"{exc}; lower RAG_CHUNK_OVERLAP or raise RAG_CHUNK_TOKENS") from None
        return self


def invalid_settings(exc: ValidationError) -> str:
    """A settings error in the variables' own names, for a one-line `error:` message."""
    return "invalid settings: " + "; ".join(
        (f"RAG_{'_'.join(map(str, e['loc'])).upper()}: " if e["loc"] else "") + e["msg"]
        for e in exc.errors())
