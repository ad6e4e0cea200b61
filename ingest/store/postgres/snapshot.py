"""One generation of the index on PostgreSQL, read: `PostgresSnapshot` (ingest.store.reader's
Snapshot). A REPEATABLE READ, READ ONLY transaction on a pooled connection: every lookup through
it (HNSW search, BM25, chunk and document fetches) sees the commit that was the latest when it
opened, even while an ingest commits the next one. Opened per request, closed after it."""
from __future__ import annotations

import json
import threading
from typing import Callable, Sequence

import numpy as np
import psycopg

from ingest.store.bm25 import B, K1, MAX_ROWS, idf, query_terms, rarest, terms
from ingest.store.postgres.connect import qualified, unavailable
from ingest.store.postgres.lexical import glob_regex
from ingest.store.postgres.schema import DOCUMENTS_SQL, hnsw_expr
from ingest.store.records import ChunkFilter, ChunkRecord, DocumentRow, RefusedFile


def where_sql(where: ChunkFilter | None) -> tuple[str, list]:
    """A condition on the documents table `d`, and its arguments."""
    parts, args = [], []
    if where is not None and where.path_glob:
        parts.append("d.path ~ %s")
        args.append(glob_regex(where.path_glob))
    if where is not None and where.kinds:
        parts.append("d.kind = ANY(%s)")
        args.append(list(where.kinds))
    return (" AND ".join(parts) or "true"), args


class SnapshotClosed(RuntimeError):
    """A read on a snapshot after its close()."""


class PostgresSnapshot:
    lexical_in_memory = False  # BM25 is summed in SQL (lexical.py)

    def __init__(self, conn: psycopg.Connection, schema: str, meta: dict[str, str],
                 release: Callable[[psycopg.Connection], None]) -> None:
        self._conn: psycopg.Connection | None = conn
        self._release = release
        self._lock = threading.Lock()
        self._schema = schema
        self.meta = meta
        self.generation = int(meta["generation"])
        self.revision = meta.get("revision") or meta["commit"]
        self.commit = meta["commit"]
        self.index_id = meta["index_id"]
        self.dim = int(meta["dim"])
        self.chunk_count = int(meta.get("chunks") or 0)
        self.document_count = int(meta.get("documents") or 0)
        self._avg_length = int(meta.get("length") or 0) / max(1, self.chunk_count)

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            self._release(conn)

    def __enter__(self) -> "PostgresSnapshot":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _query(self, text: str, args: Sequence = ()) -> list[tuple]:
        with self._lock:
            if self._conn is None:
                raise SnapshotClosed("this snapshot is closed: open (or lease) a new one")
            try:
                return self._conn.execute(qualified(self._schema, text), args).fetchall()
            except psycopg.OperationalError as exc:  # the server went away mid-request
                raise unavailable("", exc) from exc

    def search_dense(self, vector: np.ndarray, k: int,
                     where: ChunkFilter | None = None) -> list[tuple[int, float]]:
        if self.chunk_count == 0 or k <= 0:
            return []
        cond, args = where_sql(where)
        query = np.asarray(vector, dtype=np.float32).ravel()
        join = "JOIN {s}.documents d ON d.id = c.doc_id " if where is not None else ""
        rows = self._query(
            # scored with the full vectors; found through the half-precision HNSW index
            f"SELECT c.id, 1 - (c.embedding <=> %s) FROM {{s}}.chunks c {join}"
            f"WHERE {cond} "
            f"ORDER BY {hnsw_expr(self.dim, 'c.embedding')} <=> %s::halfvec({self.dim}) LIMIT %s",
            (query, *args, query, k))
        # relaxed_order may hand back a few out of order: sort by the exact score
        return sorted(((int(i), float(s)) for i, s in rows), key=lambda r: -r[1])

    def search_lexical(self, query: str, k: int,
                       where: ChunkFilter | None = None) -> list[tuple[int, float]]:
        wanted = query_terms(query)
        if not wanted or self.chunk_count == 0:
            return []
        dfs = self._dfs(wanted)
        kept = rarest(dfs, MAX_ROWS)
        if not kept:
            return []
        weights = [idf(dfs[t], self.chunk_count) for t in kept]
        cond, args = where_sql(where)
        join = ("JOIN {s}.chunks c ON c.id = p.chunk_id JOIN {s}.documents d ON d.id = c.doc_id "
                if where is not None else "")
        rows = self._query(
            "SELECT p.chunk_id, sum(w.idf * p.tf * %s / (p.tf + %s * (1 - %s + %s * p.length / "
            "%s))) AS score FROM unnest(%s::text[], %s::float8[]) AS w(term, idf) "
            f"JOIN {{s}}.postings p ON p.term = w.term {join}WHERE {cond} "
            "GROUP BY p.chunk_id ORDER BY score DESC, p.chunk_id LIMIT %s",
            (K1 + 1, K1, B, B, self._avg_length or 1.0, kept, weights, *args, k))
        return [(int(i), float(s)) for i, s in rows]

    def _dfs(self, wanted: list[str]) -> dict[str, int]:
        found = dict(self._query("SELECT term, df FROM {s}.term_stats WHERE term = ANY(%s)",
                                 (wanted,)))
        return {t: int(found.get(t, 0)) for t in wanted}

    def doc_freq(self, word: str) -> int:
        found = terms(word)
        if not found:
            return 0
        return min(self._dfs(list(dict.fromkeys(found))).values())

    def similarities(self, vector: np.ndarray, ids: Sequence[int]) -> list[float]:
        if not ids:
            return []
        query = np.asarray(vector, dtype=np.float32).ravel()
        found = dict(self._query("SELECT id, 1 - (embedding <=> %s) FROM {s}.chunks "
                                 "WHERE id = ANY(%s)", (query, [int(i) for i in ids])))
        return [float(found[int(i)]) for i in ids]

    def chunks(self, ids: Sequence[int]) -> list[ChunkRecord]:
        if not ids:
            return []
        rows = self._query(
            'SELECT c.id, d.path, c.ordinal, c.start, c."end", c.heading, c.page, c.text '
            "FROM {s}.chunks c JOIN {s}.documents d ON d.id = c.doc_id WHERE c.id = ANY(%s)",
            ([int(i) for i in ids],))
        by_id = {r[0]: ChunkRecord(r[0], r[1], r[2], r[3], r[4], tuple(json.loads(r[5])),
                                   r[6], r[7]) for r in rows}
        return [by_id[i] for i in ids if i in by_id]

    def chunk_ids(self, where: ChunkFilter | None = None) -> list[int]:
        cond, args = where_sql(where)
        return [i for (i,) in self._query(
            "SELECT c.id FROM {s}.chunks c JOIN {s}.documents d ON d.id = c.doc_id "
            f"WHERE {cond} ORDER BY c.id", args)]

    def document_span(self, path: str, start: int, end: int) -> str:
        rows = self._query("SELECT substr(text, %s, %s) FROM {s}.documents WHERE path = %s",
                           (start + 1, max(0, end - start), path))
        return rows[0][0] if rows else ""

    def documents(self) -> list[DocumentRow]:
        return [DocumentRow(*r) for r in self._query(DOCUMENTS_SQL)]

    def failures(self) -> list[RefusedFile]:
        return [RefusedFile(*r) for r in self._query(
            "SELECT path, reason, size FROM {s}.failures ORDER BY path")]
