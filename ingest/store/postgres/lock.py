"""One ingest per index at a time, across processes and machines: a PostgreSQL session advisory
lock keyed by the schema's name, held on the writer's connection for the whole run and released
by the server when that connection ends (the process exits, or dies)."""
from __future__ import annotations

import sys

import psycopg

NAMESPACE = "ragfirst.ingest:"


def lock_key(schema: str) -> str:
    return NAMESPACE + schema


def take_ingest_lock(conn: psycopg.Connection, schema: str, where: str) -> None:
    """Take the index's lock on `conn` (autocommit), waiting (and saying so) while another
    process has it."""
    key = lock_key(schema)
    if not conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))",
                        (key,)).fetchone()[0]:
        print(f"waiting for another ingest of {where} to finish...", file=sys.stderr)
        conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (key,))

