"""The HNSW index over the chunks' vectors (pgvector), made or remade inside a run's commit.

Built on `embedding::halfvec(dim)` (an expression index: the column itself has no fixed size, so
one schema serves any model; the index stores half-precision vectors, half the memory) with
cosine distance. Built after a first load's rows are in (much faster than growing it row by
row), then kept up to date by PostgreSQL as chunks come and go. Its parameters (RAG_HNSW_M,
RAG_HNSW_EF_CONSTRUCTION) apply when it is built: they are recorded in meta, and an index
built with other ones is remade at the next commit that changes content."""
from __future__ import annotations

import psycopg
from psycopg import sql

from ingest.store.postgres.schema import HNSW_INDEX, hnsw_expr

BUILD_MEMORY = "1GB"  # maintenance_work_mem for a build: a graph that fits builds in memory


def ensure_hnsw(conn: psycopg.Connection, schema: str, dim: int, m: int,
                ef_construction: int) -> None:
    """Make sure the index exists for this dimension and these parameters (inside the
    caller's transaction)."""
    wanted = f"{dim}:{m}:{ef_construction}"
    meta = sql.Identifier(schema, "meta")
    row = conn.execute(sql.SQL("SELECT value FROM {} WHERE key = 'hnsw'").format(meta)).fetchone()
    exists = conn.execute("SELECT to_regclass(%s)",
                          (sql.Identifier(schema, HNSW_INDEX).as_string(conn),)).fetchone()[0]
    if exists and row and row[0] == wanted:
        return
    conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(schema, HNSW_INDEX)))
    conn.execute(f"SET LOCAL maintenance_work_mem = '{BUILD_MEMORY}'")
    conn.execute(sql.SQL(
        "CREATE INDEX {} ON {} USING hnsw (" + hnsw_expr(dim) + " halfvec_cosine_ops) "
        "WITH (m = {}, ef_construction = {})").format(
        sql.Identifier(HNSW_INDEX), sql.Identifier(schema, "chunks"),
        sql.Literal(int(m)), sql.Literal(int(ef_construction))))
    conn.execute(sql.SQL("INSERT INTO {} (key, value) VALUES ('hnsw', %s) ON CONFLICT (key) "
                         "DO UPDATE SET value = excluded.value").format(meta), (wanted,))
