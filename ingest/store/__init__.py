"""The index store. `reader.py` is the seam the service reads through, `writer.py` the one an
ingest run writes through, `records.py` what crosses them. Backends: `sqlite/` (embedded, the
default) and `postgres/` (PostgreSQL + pgvector, for several replicas on one database), chosen by
RAG_STORE. `open_reader` and `open_store` pick the backend."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from ingest.settings import IngestSettings
from ingest.store.reader import IndexReader, Snapshot
from ingest.store.records import (ChunkFilter, ChunkRecord, DocumentRow, IndexParams,
                                  NewDocument, RefusedFile, StoredBatch, StoredIndex)
from ingest.store.writer import IndexStore

__all__ = ["ChunkFilter", "ChunkRecord", "DocumentRow", "IndexParams", "IndexReader",
           "IndexStore", "NewDocument", "RefusedFile", "Snapshot", "StoredBatch", "StoredIndex",
           "open_reader", "open_store"]


def open_reader(settings: IngestSettings, expect: IndexParams | None = None) -> IndexReader:
    """A reader of the index the settings name. `expect`: the parameters the caller's embedder
    and chunking need (a snapshot of an index built otherwise is refused with the fix)."""
    if settings.store == "postgres":
        from ingest.store.postgres.reader import EF_SEARCH, PostgresReader

        return PostgresReader(settings.database_url or "", settings.database_schema, expect,
                              pool_size=settings.database_pool_size,
                              ef_search=settings.hnsw_ef_search or EF_SEARCH)
    from ingest.store.sqlite.dense import DenseParams
    from ingest.store.sqlite.reader import SqliteReader

    return SqliteReader(settings.index_dir, expect, dense=DenseParams.of(settings),
                        lexical=settings.lexical_index == "memory")


@contextmanager
def open_store(settings: IngestSettings, params: IndexParams | None, *,
               rebuild: bool = False) -> Iterator[IndexStore]:
    """The writer of the index the settings name, holding its one-writer lock (a second run
    waits, saying so) until the block ends. Storage faults come out as IndexStorageError,
    IndexDamagedError or IndexUnavailableError, whose messages say what to do. `params` None
    opens the index as it is, with its own parameters (a copy's source): IndexNotFoundError
    when there is none, and nothing is created."""
    if settings.store == "postgres":
        from ingest.store.postgres.open import postgres_store as backend
    else:
        from ingest.store.sqlite.open import sqlite_store as backend
    with backend(settings, params, rebuild=rebuild) as store:
        yield store
