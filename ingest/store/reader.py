"""The reader side of the store: the seam the service reads the index through, whatever holds it
(SQLite + FAISS today; a database server later). app/ uses only what is declared here.

A `Snapshot` is one committed generation, fixed when it is opened: every call on it (dense and
lexical search, chunk and document fetches, listings) sees that generation even while an ingest
commits the next one. It is a read transaction (on SQLite; on a database server, a
repeatable-read transaction on a pooled connection), opened per request and closed after it, so
no reader holds the store back between requests.

An `IndexReader` opens snapshots of the latest commit, reusing what has not changed since the
previous one. A snapshot's revision changes whenever anything a reader can see changes (the
refused files included); its generation only when the indexed content does; its index_id only
when the index is built anew from nothing.
"""
from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from ingest.store.records import ChunkFilter, ChunkRecord, DocumentRow, RefusedFile


class Snapshot(Protocol):
    generation: int  # moves when the indexed content changes
    revision: str  # moves when anything a reader can see changes
    index_id: str  # names the index: a new one (built from nothing) gets a new id
    chunk_count: int
    document_count: int
    # BM25 is answered from memory (fast, but holding the GIL) rather than by the store
    lexical_in_memory: bool

    def search_dense(self, vector: np.ndarray, k: int,
                     where: ChunkFilter | None = None) -> list[tuple[int, float]]:
        """(chunk id, cosine similarity) of the k nearest chunks, best first."""
        ...

    def search_lexical(self, query: str, k: int,
                       where: ChunkFilter | None = None) -> list[tuple[int, float]]:
        """(chunk id, BM25 score), best first. Any word of the query may match (OR); the
        query is words, never a query language."""
        ...

    def doc_freq(self, word: str) -> int:
        """Chunks containing `word` (as the lexical index folds and stems it). May stop
        counting at a cap for very common words."""
        ...

    def similarities(self, vector: np.ndarray, ids: Sequence[int]) -> list[float]:
        """Cosine similarity of `vector` to each chunk's stored vector, in the order asked."""
        ...

    def chunks(self, ids: Sequence[int]) -> list[ChunkRecord]:
        """The chunks with these ids, in the order asked (unknown ids left out)."""
        ...

    def chunk_ids(self, where: ChunkFilter | None = None) -> list[int]:
        """Every chunk's id (that `where` allows), ascending."""
        ...

    def document_span(self, path: str, start: int, end: int) -> str:
        """The document's extracted text between start and end ("" for an unknown path)."""
        ...

    def documents(self) -> list[DocumentRow]:
        """What is indexed, by path."""
        ...

    def failures(self) -> list[RefusedFile]:
        """Files the last run refused, by path."""
        ...

    def close(self) -> None: ...


class IndexReader(Protocol):
    def open(self, previous: Snapshot | None = None) -> Snapshot:
        """A snapshot of the latest committed generation: a read transaction, to be closed
        when done (one request's reads). `previous`, a snapshot of this reader (closed or
        not), lets the backend reuse what has not changed since. Raises IndexNotFoundError
        (nothing committed yet), IndexMismatchError (built with other parameters than the
        reader expects) or IndexDamagedError (the store is damaged); each message says what to
        do."""
        ...

    def storage(self) -> dict[str, int]:
        """Bytes the index takes, by part (backend-specific names), for /metrics."""
        ...

    def close(self) -> None: ...
