"""Writer side of the index on PostgreSQL (ingest.store.writer's IndexStore).

Every run's changes land in ONE transaction (`commit_run`): documents, chunks with their
vectors, BM25 postings and term statistics, the refused files and the meta row, and the HNSW
index is updated inside it, so a reader sees the previous generation or the new one, never a mix;
a SIGKILL (or a lost connection) at any instant rolls back to the last commit. Only
`put_vectors` commits earlier: vectors no reader looks up until a run commits.

One writer at a time: the caller holds the index's advisory lock (lock.py) on `conn`.
"""
from __future__ import annotations

import json
import secrets
import time
from collections import Counter
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from ingest.errors import IndexMismatchError
from ingest.store.export import no_index
from ingest.store.postgres.connect import qualified
from ingest.store.postgres.dense import ensure_hnsw
from ingest.store.postgres.export import read_batches, read_stored
from ingest.store.bm25 import postings
from ingest.store.postgres.schema import DDL, DOCUMENTS_SQL, SCHEMA_VERSION
from ingest.store.records import (DocumentRow, IndexParams, NewDocument, StoredBatch, StoredIndex,
                                  check_params)

RETRY_HINT = "or set RAG_DATABASE_SCHEMA to another schema"
# A run that changed at least this share of the chunks, and this many (a first load, a rebuild),
# refreshes the planner's statistics itself when it publishes, as autovacuum would up to a
# minute later (its default autovacuum_analyze_scale_factor is 0.1); smaller runs are left to
# autovacuum.
ANALYZE_SHARE, ANALYZE_MIN_CHUNKS = 0.1, 1000


class PostgresStore:
    """`params` None opens the index as it is, with its own parameters (a copy's source),
    creating nothing."""

    def __init__(self, conn: psycopg.Connection, schema: str, params: IndexParams | None, *,
                 rebuild: bool = False, where: str = "", hnsw: tuple[int, int] = (16, 64)) -> None:
        self.conn, self.schema, self.rebuild = conn, schema, rebuild
        self.where, self.hnsw = where or schema, hnsw
        self.moved_aside = None  # nothing to move aside: the server keeps its own files whole
        self._maybe_orphans: set[str] = set()  # vectors this run stored or unreferenced
        self._changed = 0  # chunks the last commit added or dropped
        if params is None:
            params = self._existing_params()
        else:
            with conn.transaction():
                conn.execute(self._sql(DDL))
        self.params = params
        register_vector(conn)
        meta = self.meta
        if "model_id" not in meta:  # a new index: what it is built with, and its name
            self._write_meta({"schema": str(SCHEMA_VERSION), "generation": "0",
                              "commit": "none", "index_id": secrets.token_hex(8),
                              "documents": "0", "chunks": "0", "length": "0",
                              **params.as_meta()})
        elif not rebuild:  # a rebuild rewrites the parameters in its own commit
            check_params(meta, params, self.where, RETRY_HINT)

    def _existing_params(self) -> IndexParams:
        found = self.conn.execute("SELECT to_regclass(%s)", (
            psycopg.sql.Identifier(self.schema, "meta").as_string(self.conn),)).fetchone()[0]
        meta = dict(self._rows("SELECT key, value FROM {s}.meta")) if found else {}
        if "model_id" not in meta:
            raise no_index(self.where)
        return IndexParams.from_meta(meta)

    def _sql(self, text: str):
        return qualified(self.schema, text)

    def _rows(self, text: str, args: Sequence = ()) -> list[tuple]:
        return self.conn.execute(self._sql(text), args).fetchall()

    @property
    def meta(self) -> dict[str, str]:
        return dict(self._rows("SELECT key, value FROM {s}.meta"))

    def _write_meta(self, values: dict[str, str]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(self._sql(
                "INSERT INTO {s}.meta (key, value) VALUES (%s, %s) ON CONFLICT (key) "
                "DO UPDATE SET value = excluded.value"), list(values.items()))

    def documents(self) -> dict[str, DocumentRow]:
        return {r[0]: DocumentRow(*r) for r in self._rows(DOCUMENTS_SQL)}

    def missing_vectors(self, keys: Iterable[str]) -> list[str]:
        wanted = list(dict.fromkeys(keys))
        have = {k for (k,) in self._rows("SELECT key FROM {s}.vectors WHERE key = ANY(%s)",
                                         (wanted,))}
        return [k for k in wanted if k not in have]

    def put_vectors(self, keys: Sequence[str], vectors: np.ndarray, *,
                    replace: bool = False) -> None:
        """Store embedded vectors in their own small commit (a checkpoint a rerun reuses)."""
        if vectors.ndim != 2 or vectors.shape[0] != len(keys):
            raise ValueError(f"expected {len(keys)} vectors, got an array of {vectors.shape}")
        action = "UPDATE SET embedding = excluded.embedding" if replace else "NOTHING"
        self._maybe_orphans.update(keys)
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.executemany(self._sql(
                "INSERT INTO {s}.vectors (key, embedding) VALUES (%s, %s) "
                f"ON CONFLICT (key) DO {action}"),
                [(k, np.asarray(v, dtype=np.float32)) for k, v in zip(keys, vectors)])

    def stored(self) -> StoredIndex:
        return read_stored(self.conn, self.schema, self.where)

    def stored_batches(self, chunks_per_batch: int = 1000) -> Iterator[StoredBatch]:
        return read_batches(self.conn, self.schema, self.where, chunks_per_batch)

    def commit_run(self, upserts: Sequence[NewDocument], deletes: Sequence[str],
                   failures: Sequence[tuple[str, str, int | None]],
                   model_dim: Callable[[], int],
                   before_commit: Callable[[], None] = lambda: None, *,
                   copy_of: StoredIndex | None = None) -> tuple[int, str]:
        """Apply one run atomically; returns the (generation, commit id) readers now see.
        Same meaning as the SQLite store's commit_run (`copy_of` included)."""
        with self.conn.transaction():
            meta = self.meta
            generation, commit = int(meta["generation"]), meta["commit"]
            if upserts or deletes or self.rebuild or copy_of:
                generation, commit = generation + 1, secrets.token_hex(8)
            if copy_of:
                generation = copy_of.generation
            counts = self._drop([*deletes, *(d.path for d in upserts)], meta)
            kept_old = counts["chunks"] > 0
            self._changed = int(meta.get("chunks") or 0) - counts["chunks"] + sum(
                len(d.chunks) for d in upserts)
            dim = self._insert(upserts, generation, counts, lambda new_dims: self._dimension(
                meta, new_dims, kept_old, model_dim))
            self._collect_vectors()
            failures_changed = self._replace_failures(failures)
            values = {"generation": str(generation), "commit": commit, "dim": str(dim),
                      **{k: str(v) for k, v in counts.items()}}
            if self.rebuild:
                values.update(self.params.as_meta())
            if copy_of:
                values["index_id"] = copy_of.index_id
            if commit != meta["commit"] or failures_changed:
                values["revision"] = secrets.token_hex(8)  # what readers see has changed
            self._write_meta(values)
            if counts["chunks"]:
                ensure_hnsw(self.conn, self.schema, dim, *self.hnsw)
            before_commit()
        return generation, commit

    def _collect_vectors(self) -> None:
        """Drop the vectors no chunk refers to any more. Only the candidates are looked at
        (those this run stored and those of the chunks it removed), not every vector: a
        one-file commit must not read the whole table. A rebuild looks at all of them."""
        cond = "" if self.rebuild else "v.key = ANY(%s) AND "
        args = () if self.rebuild else (sorted(self._maybe_orphans),)
        self.conn.execute(self._sql(
            f"DELETE FROM {{s}}.vectors v WHERE {cond}NOT EXISTS "
            "(SELECT 1 FROM {s}.chunks c WHERE c.vec_key = v.key)"), args)
        self._maybe_orphans.clear()

    def _drop(self, paths: Sequence[str], meta: dict[str, str]) -> dict[str, int]:
        """Remove the paths' old versions (everything, on a rebuild) with their postings and
        term statistics; returns the counts left (documents, chunks, length)."""
        if self.rebuild:
            self.conn.execute(self._sql("DELETE FROM {s}.documents"))
            self.conn.execute(self._sql("DELETE FROM {s}.term_stats"))
            return {"documents": 0, "chunks": 0, "length": 0}
        counts = {k: int(meta.get(k) or 0) for k in ("documents", "chunks", "length")}
        if not paths:
            return counts
        docs, chunks, length = self._rows(
            "SELECT count(DISTINCT d.id), count(c.id), coalesce(sum(c.length), 0) FROM "
            "{s}.documents d LEFT JOIN {s}.chunks c ON c.doc_id = d.id WHERE d.path = ANY(%s)",
            (list(paths),))[0]
        self.conn.execute(self._sql(
            "UPDATE {s}.term_stats t SET df = t.df - x.n FROM (SELECT p.term, count(*) AS n "
            "FROM {s}.postings p JOIN {s}.chunks c ON c.id = p.chunk_id JOIN {s}.documents d "
            "ON d.id = c.doc_id WHERE d.path = ANY(%s) GROUP BY p.term) x WHERE t.term = x.term"),
            (list(paths),))
        self.conn.execute(self._sql("DELETE FROM {s}.term_stats WHERE df <= 0"))
        self._maybe_orphans.update(k for (k,) in self._rows(
            "SELECT c.vec_key FROM {s}.chunks c JOIN {s}.documents d ON d.id = c.doc_id "
            "WHERE d.path = ANY(%s)", (list(paths),)))
        self.conn.execute(self._sql("DELETE FROM {s}.documents WHERE path = ANY(%s)"),
                          (list(paths),))
        return {"documents": counts["documents"] - docs, "chunks": counts["chunks"] - chunks,
                "length": counts["length"] - int(length)}

    def _insert(self, upserts: Sequence[NewDocument], generation: int, counts: dict[str, int],
                dimension: Callable[[list[int]], int]) -> int:
        """Insert the new versions (chunks get their vectors from `vectors`, server-side) and
        their postings; updates `counts`. `dimension` is given the distinct sizes of the new
        vectors before any chunk is written (it refuses a mix); returns what it returns."""
        if not upserts:
            return dimension([])
        now, conn = time.time(), self.conn
        with conn.cursor() as cur:
            cur.executemany(self._sql(
                "INSERT INTO {s}.documents (path, sha256, size, kind, text, ingested_at, "
                "generation) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id"),
                [(d.path, d.sha256, d.size, d.kind, d.text,
                  now if d.ingested_at is None else d.ingested_at, generation) for d in upserts],
                returning=True)
            doc_ids = []
            while True:
                doc_ids.append(cur.fetchone()[0])
                if not cur.nextset():
                    break
        total = sum(len(d.chunks) for d in upserts)
        ids = [i for (i,) in self._rows(
            "SELECT nextval(pg_get_serial_sequence('{s}.chunks', 'id')) "
            "FROM generate_series(1, %s)", (total,))]
        conn.execute("CREATE TEMP TABLE new_chunks (id bigint, doc_id bigint, ordinal int, "
                     "start int, \"end\" int, heading text, page int, tokens int, text text, "
                     "vec_key text, length int) ON COMMIT DROP")
        terms, df, length = self._copy_chunks(upserts, doc_ids, ids)
        dim = dimension([n for (n,) in conn.execute(
            self._sql("SELECT DISTINCT vector_dims(v.embedding) FROM new_chunks n JOIN "
                      "{s}.vectors v ON v.key = n.vec_key")).fetchall()])
        inserted = conn.execute(self._sql(
            "INSERT INTO {s}.chunks SELECT n.*, v.embedding FROM new_chunks n JOIN {s}.vectors v "
            "ON v.key = n.vec_key")).rowcount
        if inserted != total:
            raise RuntimeError(f"{total - inserted} chunks have no vector; refusing to commit")
        self._copy_postings(terms, ids)
        self._add_term_stats(df)
        counts["documents"] += len(upserts)
        counts["chunks"] += total
        counts["length"] += length
        return dim

    def _copy_chunks(self, upserts, doc_ids, ids) -> tuple[list[Counter], Counter, int]:
        """COPY the new chunks into the transaction's staging table; returns each new chunk's
        term frequencies, the terms' document frequencies and the chunks' total length."""
        terms, df, length, n = [], Counter(), 0, 0
        with self.conn.cursor().copy("COPY new_chunks FROM STDIN") as copy:
            for doc, doc_id in zip(upserts, doc_ids):
                for chunk, key in zip(doc.chunks, doc.vec_keys):
                    tf, size = postings(chunk.text)
                    terms.append(tf)
                    df.update(tf.keys())
                    length += size
                    copy.write_row((ids[n], doc_id, chunk.ordinal, chunk.start, chunk.end,
                                    json.dumps(list(chunk.heading)), chunk.page, chunk.tokens,
                                    chunk.text, key, size))
                    n += 1
        return terms, df, length

    def _copy_postings(self, terms: list[Counter], ids: list[int]) -> None:
        with self.conn.cursor().copy(self._sql(
                "COPY {s}.postings (term, chunk_id, tf, length) FROM STDIN")) as copy:
            for tf, chunk_id in zip(terms, ids):
                size = sum(tf.values())
                for term, count in tf.items():
                    copy.write_row((term, chunk_id, count, size))

    def _add_term_stats(self, df: Counter) -> None:
        self.conn.execute("CREATE TEMP TABLE new_terms (term text, df int) ON COMMIT DROP")
        with self.conn.cursor().copy("COPY new_terms FROM STDIN") as copy:
            for term, count in df.items():
                copy.write_row((term, count))
        self.conn.execute(self._sql(
            "INSERT INTO {s}.term_stats (term, df) SELECT term, df FROM new_terms "
            "ON CONFLICT (term) DO UPDATE SET df = {s}.term_stats.df + excluded.df"))

    def _dimension(self, meta: dict[str, str], new_dims: list[int], kept_old: bool,
                   model_dim: Callable[[], int]) -> int:
        """The size of every chunk's vector. Refuses vectors of mixed sizes: new ones of
        another size than the chunks already there (a model changed under the same name, or a
        remote one that answers with another size)."""
        old = {int(meta["dim"])} if kept_old and "dim" in meta else set()
        sizes = sorted(set(new_dims) | old)
        if len(sizes) > 1:
            raise IndexMismatchError(
                f"the model {self.params.model_id!r} gave vectors of sizes {sizes}: it "
                "changed under the same name. Rebuild with `python -m ingest --rebuild`.")
        if sizes:
            return sizes[0]
        return int(meta.get("dim") or model_dim())

    def _replace_failures(self, failures: Sequence[tuple[str, str, int | None]]) -> bool:
        old = self._rows("SELECT path, reason, size FROM {s}.failures ORDER BY path")
        self.conn.execute(self._sql("DELETE FROM {s}.failures"))
        if failures:
            with self.conn.cursor() as cur:
                cur.executemany(self._sql(
                    "INSERT INTO {s}.failures (path, reason, size) VALUES (%s, %s, %s)"),
                    list(failures))
        return old != sorted(map(tuple, failures))

    def publish(self, commit: str) -> None:
        """The HNSW index was updated inside the commit. After a run that changed much of the
        index (a first load, a rebuild), the planner's statistics and the visibility map are
        refreshed now (VACUUM cannot run inside the run's transaction): until then the
        planner takes the new tables for nearly empty and searches the postings with a full
        scan, and a filtered dense search without the HNSW index (measured at 100,000
        chunks: tests/bench/bench_ask.py, README "PostgreSQL figures")."""
        chunks = int(self.meta.get("chunks") or 0)
        if self._changed >= max(ANALYZE_MIN_CHUNKS, ANALYZE_SHARE * chunks):
            self.conn.execute(self._sql(
                "VACUUM (ANALYZE) {s}.documents, {s}.chunks, {s}.postings, {s}.term_stats"))
        self._changed = 0

    def checkpoint(self) -> None:
        """Nothing to do: the server manages its own write-ahead log."""

    def close(self) -> None:
        self.conn.close()
