"""The index on PostgreSQL, read: `PostgresReader` (ingest.store.reader's IndexReader).

Each `open()` takes a connection from a psycopg pool and starts a REPEATABLE READ, READ ONLY
transaction whose first read is the meta row: that is the revision check. A replica therefore
answers from the latest commit, whoever made it (`make ingest`, another replica's POST /ingest or
watcher), from its next request on, with no notification to miss and nothing to restart; it costs
one pooled round trip per request (measured in `make bench-ask`). Nothing is cached between
snapshots but the meta of the last one.
"""
from __future__ import annotations

import threading

import psycopg
from pgvector.psycopg import register_vector
from psycopg_pool import ConnectionPool, PoolTimeout

from ingest.errors import IndexNotFoundError, IndexUnavailableError
from ingest.store.postgres.connect import CONNECT_TIMEOUT_S, describe, qualified, translate, unavailable
from ingest.store.postgres.snapshot import PostgresSnapshot
from ingest.store.reader import Snapshot
from ingest.store.records import IndexParams, check_params
from ingest.store.postgres.store import RETRY_HINT

# hnsw.ef_search when RAG_HNSW_EF_SEARCH is unset: recall@10 0.982 at 100k (bench_hnsw).
EF_SEARCH = 100
POOL_WAIT_S = 3.0  # how long a request waits for a free (or new) connection


def _snapshot_connection(ef_search: int):
    """How a pooled connection is set up, once: its transactions are snapshots (psycopg starts
    each one itself with BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY before its first
    statement; a BEGIN of our own after that implicit one would cost a round trip and log a
    WARNING per request), and its HNSW searches use `ef_search` candidates with iterative
    scans, so a filtered search still finds k chunks (pgvector 0.8). Session settings, so no
    search pays a round trip to make them (they are kept as placeholders until pgvector loads)."""
    def configure(conn: psycopg.Connection) -> None:
        conn.execute("SELECT set_config('hnsw.ef_search', %s, false), "
                     "set_config('hnsw.iterative_scan', 'relaxed_order', false)",
                     (str(ef_search),))
        conn.commit()
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
    return configure


class PostgresReader:
    def __init__(self, url: str, schema: str, expect: IndexParams | None = None, *,
                 pool_size: int = 8, ef_search: int = EF_SEARCH) -> None:
        self.url, self.schema, self.expect = url, schema, expect
        self.where = describe(url, schema)
        self._lock = threading.Lock()
        self._pool = ConnectionPool(url, min_size=0, max_size=pool_size, open=False,
                                    kwargs={"autocommit": False,
                                            "connect_timeout": CONNECT_TIMEOUT_S},
                                    configure=_snapshot_connection(ef_search),
                                    reconnect_timeout=0, name=f"ragfirst-{schema}")
        self._opened = False

    def _connection(self) -> psycopg.Connection:
        with self._lock:
            if not self._opened:
                self._pool.open(wait=False)
                self._opened = True
        try:
            return self._pool.getconn(timeout=POOL_WAIT_S)
        except PoolTimeout as exc:
            raise unavailable(self.url, exc, self.schema) from exc

    def _release(self, conn: psycopg.Connection) -> None:
        try:
            conn.rollback()  # end the read transaction
        except psycopg.Error:
            pass  # a broken connection: the pool checks and discards it
        self._pool.putconn(conn)

    def open(self, previous: Snapshot | None = None) -> PostgresSnapshot:
        conn = self._connection()
        try:
            # the first statement: psycopg begins the transaction (_snapshot_connection)
            meta = dict(conn.execute(qualified(self.schema, "SELECT key, value FROM {s}.meta"))
                        .fetchall())
            if "dim" not in meta:
                raise IndexNotFoundError(f"the index in {self.where} is not initialised: run "
                                         "`make ingest` first")
            if self.expect is not None:
                check_params(meta, self.expect, self.where, RETRY_HINT)
            if conn.adapters.types.get("vector") is None:  # it exists once meta does
                register_vector(conn)
        except BaseException as exc:
            self._release(conn)
            mapped = translate(exc, self.url, self.schema) if isinstance(exc, psycopg.Error) \
                else None
            if mapped is not None:
                raise mapped from exc
            raise
        return PostgresSnapshot(conn, self.schema, meta, self._release)

    def storage(self) -> dict[str, int]:
        """Bytes the index's tables and indexes take on the server, by part."""
        parts = {"documents": ("documents", "chunks", "vectors", "failures", "meta"),
                 "lexical": ("postings", "term_stats")}
        sizes: dict[str, int] = {}
        try:
            conn = self._connection()  # opens the pool if no snapshot has yet
        except IndexUnavailableError:
            return {}
        try:
            for part, tables in parts.items():
                sizes[part] = sum(conn.execute(
                    "SELECT coalesce(pg_total_relation_size(to_regclass(%s)), 0)",
                    (f'"{self.schema}"."{t}"',)).fetchone()[0] for t in tables)
            sizes["dense"] = conn.execute(
                "SELECT coalesce(pg_relation_size(to_regclass(%s)), 0)",
                (f'"{self.schema}"."chunks_hnsw"',)).fetchone()[0]
            sizes["documents"] -= sizes["dense"]  # counted once, as its own part
        except psycopg.Error:
            return {}
        finally:
            self._release(conn)
        return sizes

    def close(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, False
        if opened:
            self._pool.close()

    def __enter__(self) -> "PostgresReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
