"""The SQLite index read back out as it is stored (ingest/store/export.py): its identity, then
its documents with their chunks and vectors in batches, for a copy to another store. Read on
the writer's connection, under the ingest lock: no run commits in between."""
from __future__ import annotations

import sqlite3
from typing import Iterator

import numpy as np

from ingest.store.export import CHUNK_COLUMNS, DOCUMENT_COLUMNS, groups, stored_batch, stored_index
from ingest.store.records import StoredBatch, StoredIndex


def read_stored(conn: sqlite3.Connection, where: str) -> StoredIndex:
    failures = conn.execute("SELECT path, reason, size FROM failures ORDER BY path").fetchall()
    return stored_index(dict(conn.execute("SELECT key, value FROM meta")), failures, where)


def read_batches(conn: sqlite3.Connection, where: str,
                 chunks_per_batch: int) -> Iterator[StoredBatch]:
    dim = read_stored(conn, where).dim
    counts = conn.execute("SELECT d.id, COUNT(c.id) FROM documents d LEFT JOIN chunks c "
                          "ON c.doc_id = d.id GROUP BY d.id ORDER BY d.path").fetchall()
    for ids in groups(counts, chunks_per_batch):
        marks = ",".join("?" * len(ids))
        docs = conn.execute(f"SELECT {DOCUMENT_COLUMNS} FROM documents d WHERE d.id IN ({marks})"
                            " ORDER BY d.path", ids).fetchall()
        rows = conn.execute(
            f"SELECT {CHUNK_COLUMNS}, v.vector FROM chunks c LEFT JOIN vectors v "
            f"ON v.key = c.vec_key WHERE c.doc_id IN ({marks}) ORDER BY c.doc_id, c.ordinal", ids)
        yield stored_batch(docs, ((*r[:-1], None if r[-1] is None else
                                   np.frombuffer(r[-1], dtype="<f4")) for r in rows), dim, where)
