"""The index on PostgreSQL read back out as it is stored (ingest/store/export.py): its identity,
then its documents with their chunks and vectors in batches, for a copy to another store. The
vectors are the chunks' own (what searches read). Read on the writer's connection, under the
ingest lock: no run commits in between."""
from __future__ import annotations

from typing import Iterator

import psycopg

from ingest.store.export import CHUNK_COLUMNS, DOCUMENT_COLUMNS, groups, stored_batch, stored_index
from ingest.store.postgres.connect import qualified
from ingest.store.records import StoredBatch, StoredIndex


def _rows(conn: psycopg.Connection, schema: str, text: str, args=(), *,
          binary: bool = False) -> list[tuple]:
    """The rows of a query; `binary`: in binary format (vectors come as their float32 bytes)."""
    with conn.cursor(binary=binary) as cur:
        return cur.execute(qualified(schema, text), args).fetchall()


def read_stored(conn: psycopg.Connection, schema: str, where: str) -> StoredIndex:
    meta = dict(_rows(conn, schema, "SELECT key, value FROM {s}.meta"))
    failures = _rows(conn, schema, "SELECT path, reason, size FROM {s}.failures ORDER BY path")
    return stored_index(meta, failures, where)


def read_batches(conn: psycopg.Connection, schema: str, where: str,
                 chunks_per_batch: int) -> Iterator[StoredBatch]:
    dim = read_stored(conn, schema, where).dim
    counts = _rows(conn, schema, "SELECT d.id, count(c.id) FROM {s}.documents d LEFT JOIN "
                                 "{s}.chunks c ON c.doc_id = d.id GROUP BY d.id ORDER BY d.path")
    for ids in groups(counts, chunks_per_batch):
        docs = _rows(conn, schema, f"SELECT {DOCUMENT_COLUMNS} FROM {{s}}.documents d "
                                   "WHERE d.id = ANY(%s) ORDER BY d.path", (ids,))
        rows = _rows(conn, schema, f"SELECT {CHUNK_COLUMNS}, c.embedding FROM {{s}}.chunks c "
                                   "WHERE c.doc_id = ANY(%s) ORDER BY c.doc_id, c.ordinal", (ids,),
                     binary=True)
        yield stored_batch(docs, ((*r[:-1], r[-1].to_numpy()) for r in rows), dim, where)
