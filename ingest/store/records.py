"""What the store holds and hands out, the same for every backend: the parameters an index is
built with, documents to write, and the rows a reader returns."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np

from ingest.chunking import Chunk
from ingest.errors import IndexMismatchError


@dataclass(frozen=True)
class IndexParams:
    """What an index is built with. Opening it with different values is refused."""

    model_id: str
    chunk_tokens: int
    chunk_overlap: int

    def as_meta(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.__dict__.items()}

    @classmethod
    def from_meta(cls, meta: dict[str, str]) -> "IndexParams":
        """The parameters an index records (as_meta's inverse)."""
        return cls(meta["model_id"], int(meta["chunk_tokens"]), int(meta["chunk_overlap"]))


def check_params(meta: dict[str, str], params: IndexParams, where: str,
                 elsewhere: str = "or point RAG_INDEX_DIR at another folder") -> None:
    """Refuse an index built with other parameters, saying how to rebuild it. `where` names
    the index in the message (its folder, or its database); `elsewhere`, the other way out."""
    wanted = params.as_meta()
    diffs = [f"{k}: index has {meta.get(k)!r}, settings ask for {v!r}"
             for k, v in wanted.items() if meta.get(k) != v]
    if diffs:
        raise IndexMismatchError(
            f"the index in {where} was built with other settings ({'; '.join(diffs)}). "
            "Rebuild it with `python -m ingest --rebuild` (or `make ingest ARGS=--rebuild`), "
            f"{elsewhere}."
        )


def vector_key(model_id: str, text: str) -> str:
    """The key a chunk's vector is stored under: identical text is embedded once per model."""
    return hashlib.sha256(f"{model_id}\0{text}".encode()).hexdigest()


@dataclass(frozen=True)
class NewDocument:
    """A document to (re)write in a run: its text and chunks, with each chunk's vector key."""

    path: str
    sha256: str
    size: int
    kind: str
    text: str
    chunks: Sequence[Chunk]
    vec_keys: Sequence[str]
    ingested_at: float | None = None  # seconds since the epoch; None: the commit's time


@dataclass(frozen=True)
class DocumentRow:
    """An indexed document, as listings show it."""

    path: str
    sha256: str
    size: int
    kind: str
    chunks: int
    ingested_at: float  # seconds since the epoch


class RefusedFile(NamedTuple):
    """A corpus file the last run refused, and why."""

    path: str
    reason: str
    size: int | None  # bytes, if known


@dataclass(frozen=True)
class ChunkRecord:
    id: int
    path: str
    ordinal: int
    start: int
    end: int
    heading: tuple[str, ...]
    page: int | None
    text: str


@dataclass(frozen=True)
class ChunkFilter:
    """Which documents a search may return: a path glob (fnmatch-style, e.g. "guides/*.md":
    `*` and `?` match across folders, `[...]` is a character class), and/or document kinds
    ("markdown", "text", "html", "pdf", "pdf-ocr", "docx", "pptx", "xlsx", "csv", "epub"). Each backend renders it in its own query language."""

    path_glob: str | None = None
    kinds: tuple[str, ...] | None = None


@dataclass(frozen=True)
class StoredIndex:
    """What a committed index is, besides its documents: what a copy to another store keeps
    (the same parameters, generation and id: the same index, somewhere else)."""

    params: IndexParams
    generation: int
    index_id: str
    dim: int
    failures: tuple[RefusedFile, ...]


@dataclass(frozen=True)
class StoredBatch:
    """Some whole documents of an index, as stored, with the vectors their chunks use:
    `vectors[i]` is stored under `keys[i]` (distinct keys, float32)."""

    documents: Sequence[NewDocument]
    keys: Sequence[str]
    vectors: np.ndarray
