"""The reader side of the store: the seam the service reads the index through, whatever holds it
(SQLite + FAISS today; a database server later). app/ uses only what is declared here.

A `Snapshot` is one committed generation, fixed when it is opened: every call on it (dense and
lexical search, chunk and document fetches, listings) sees that generation even while an ingest
commits the next one. On SQLite it is an open read transaction; on a database server it would be
a repeatable-read transaction on a connection of its own. Close it to let the store move on.

An `IndexReader` says cheaply which revision is the latest (so a long-running reader knows when
to open a new snapshot) and opens snapshots. A revision changes whenever anything a reader can
see changes (the refused files included); the generation only when the indexed content does.
"""
from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from ingest.store.records import ChunkFilter, ChunkRecord, DocumentRow, RefusedFile


class Snapshot(Protocol):
    generation: int  # moves when the indexed content changes
    revision: str  # moves when anything a reader can see changes
    chunk_count: int
    document_count: int

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
    def latest(self) -> str | None:
        """The revision a snapshot opened now would read (the same one again while nothing
        was committed), or None when there is nothing to open yet: no index, or the latest
        commit is not readable yet (keep the snapshot you have). Cheap: called before every
        question."""
        ...

    def open(self, previous: Snapshot | None = None) -> Snapshot:
        """A snapshot of the latest committed generation. `previous` (a snapshot of this
        reader) lets the backend reuse what has not changed since. Raises
        IndexNotFoundError (nothing committed yet) or IndexMismatchError (built with other
        parameters than the reader expects; the message says how to rebuild)."""
        ...

    def close(self) -> None: ...
