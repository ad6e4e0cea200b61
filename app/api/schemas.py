"""Request models of /ask and /ingest, and the response of /documents. /ask's response is the
Answer (app.answer)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.retrieval import KIND_ALIASES, Mode


class AskFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(None, max_length=500,
                             description='a path prefix ("guides/") or glob ("guides/*.md")')
    type: list[str] | None = Field(None, description='file types, e.g. ["pdf", "md"]')

    @field_validator("type", mode="before")
    @classmethod
    def _one_or_many(cls, v):
        return [v] if isinstance(v, str) else v

    @field_validator("type")
    @classmethod
    def _known_types(cls, v):
        for t in v or []:
            if t.lower().lstrip(".") not in KIND_ALIASES:
                raise ValueError(f"unknown file type {t!r}; use one of "
                                 f"{', '.join(sorted(KIND_ALIASES))}")
        return v


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=2000)
    top_k: int | None = Field(None, ge=1, le=50)
    mode: Mode = Mode.HYBRID
    filters: AskFilters | None = None
    stream: bool = False

    @field_validator("question")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("question is blank")
        return v


class IngestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rebuild: bool = Field(False, description="re-chunk and re-embed everything (needed after "
                                             "changing the model or chunking settings)")


class IndexedDocument(BaseModel):
    path: str
    sha256: str
    size: int
    kind: str
    chunks: int
    ingested_at: str  # ISO 8601, UTC


class RefusedFile(BaseModel):
    path: str
    reason: str
    size: int | None


class DocumentsResponse(BaseModel):
    index_generation: int
    documents: list[IndexedDocument]
    refused: list[RefusedFile]
