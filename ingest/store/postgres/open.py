"""The PostgreSQL store opened for one run: a connection of its own holding the index's advisory
lock (released when the connection closes, also if the process dies), the server's errors as
ours."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import psycopg

from ingest.settings import IngestSettings
from ingest.store.postgres.connect import connect, describe, translate
from ingest.store.postgres.lock import take_ingest_lock
from ingest.store.postgres.store import PostgresStore
from ingest.store.records import IndexParams


@contextmanager
def postgres_store(settings: IngestSettings, params: IndexParams | None, *,
                   rebuild: bool = False) -> Iterator[PostgresStore]:
    url, schema = settings.database_url or "", settings.database_schema
    conn = connect(url)
    try:
        take_ingest_lock(conn, schema, describe(url, schema))
        yield PostgresStore(conn, schema, params, rebuild=rebuild, where=describe(url, schema),
                            hnsw=(settings.hnsw_m, settings.hnsw_ef_construction))
    except psycopg.Error as exc:
        fault = translate(exc, url, schema)
        if fault is None:
            raise
        raise fault from exc
    finally:
        conn.close()
